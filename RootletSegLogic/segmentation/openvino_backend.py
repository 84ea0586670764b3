"""The network call of nnU-Net's sliding window on OpenVINO (CPU, fp32), converted from the PyTorch module itself.

`OpenVINONetwork` stands in for the PyTorch network inside nnU-Net's predictor: nnU-Net still pads, tiles, weights
each tile with its gaussian, ensembles the folds (its `load_state_dict(params)` per fold now selects that fold's
compiled network) and exports; only `network(tile)` runs on OpenVINO. Every tile has the patch size, so each fold is
converted once with a static input shape (1, channels, *patch).

Precision is fp32 throughout: the weights are saved uncompressed (OpenVINO's `save_model` would halve them) and
the CPU plugin is told to infer in f32 (on CPUs with bf16 instructions it would otherwise pick bf16).

Cache (per user, beside the models: `<cache>/openvino/<key>/`): the converted model of each fold as OpenVINO IR
(`fold_<f>.xml` / `.bin`), and OpenVINO's own compiled-blob cache (`compiled/`). The key hashes the weights (the
checkpoint files' sha256 when they come from files, else the tensors themselves), the network's description from plans.json, the number of outputs, the patch size, the
OpenVINO version and `CONVERSION_VERSION`, so a changed model, patch or OpenVINO never reuses a stale conversion.
Entries are written to a temporary folder and moved into place, so a crash leaves no half-written entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

CACHE_FOLDER = "openvino"
_KEY_LENGTH = 24  # hex digits of the cache key used as the folder name
CONVERSION_VERSION = 2  # part of the cache key: raise it when the conversion itself changes (2: static input shape)


def openvino_version() -> str:
    import openvino

    return openvino.get_version()


def cache_folder() -> Path:
    """`<cache>/openvino` under the per-user RootletSeg cache (`registry.cache_root`)."""
    from RootletSegLogic.segmentation.registry import cache_root

    return cache_root() / CACHE_FOLDER


def cache_key(fold_parameters: Sequence[dict], architecture: dict, num_outputs: int,
              patch_size: Sequence[int], weights_sha256: Optional[Sequence[str]] = None) -> str:
    """Hex digest naming one model + patch + OpenVINO version (see the module docstring). `weights_sha256`: the
    sha256 of each fold's checkpoint file when known (the sidecar records them anyway), which stand for the
    weights, so the tensors need not be hashed again (0.17 s for the full-size network's 120 MB)."""
    digest = hashlib.sha256()  # 1.5x faster than blake2b on the CI machine (0.17 s vs 0.26 s for 120 MB)
    digest.update(json.dumps({"conversion": CONVERSION_VERSION, "architecture": architecture,
                              "outputs": int(num_outputs), "patch": [int(p) for p in patch_size],
                              "openvino": openvino_version(), "folds": len(fold_parameters)}, sort_keys=True, default=str).encode())
    if weights_sha256 is not None:
        if len(weights_sha256) != len(fold_parameters):
            raise ValueError("one checkpoint digest per fold is needed")
        digest.update(json.dumps({"checkpoint_sha256": list(weights_sha256)}).encode())
        return digest.hexdigest()[:_KEY_LENGTH]
    for parameters in fold_parameters:
        for name in sorted(parameters):
            tensor = parameters[name]
            digest.update(name.encode())
            digest.update(str(tuple(tensor.shape)).encode())
            # hashed through the buffer protocol: no byte copy of the weights (a float16 checkpoint is widened once)
            digest.update(tensor.detach().cpu().float().contiguous().numpy())
    return digest.hexdigest()[:_KEY_LENGTH]


def _compile(core, xml_path: Path, threads: int):
    return core.compile_model(core.read_model(str(xml_path)), "CPU", {
        "INFERENCE_NUM_THREADS": int(threads),
        "INFERENCE_PRECISION_HINT": "f32",
        "PERFORMANCE_HINT": "LATENCY",
    })


def _convert_into(folder: Path, network, fold_parameters: Sequence[dict], input_shape: Sequence[int]) -> None:
    """Convert `network` with each fold's weights into `folder`/fold_<i>.xml (fp32 IR)."""
    import openvino
    import torch

    example = torch.zeros(tuple(int(v) for v in input_shape), dtype=torch.float32)
    for index, parameters in enumerate(fold_parameters):
        network.load_state_dict(parameters)
        network.eval()
        # tracing warns about shape checks made in Python (instance norm); the input shape is static, so they hold
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", DeprecationWarning)  # PyTorch's note on the tracer OpenVINO uses
            model = openvino.convert_model(network, example_input=example)
        model.reshape(list(example.shape))  # every tile has the patch size: a static shape
        openvino.save_model(model, str(folder / f"fold_{index}.xml"), compress_to_fp16=False)


class OpenVINONetwork:
    """A callable replacing nnU-Net's network: `load_state_dict(params)` picks the fold whose parameter dict is
    `params` (by identity, as nnU-Net hands back its own `list_of_parameters`), `__call__(x)` runs it on a torch
    tensor (1, c, *patch) and returns a torch tensor of logits (1, classes, *patch).

    Build with `OpenVINONetwork.create`; `cache_hit` tells whether the conversion came from the cache.
    """

    def __init__(self, compiled: List, fold_parameters: Sequence[dict], cache_path: Path, cache_hit: bool,
                 input_shape: Sequence[int]):
        self._compiled = compiled
        self._fold_of = {id(parameters): index for index, parameters in enumerate(fold_parameters)}
        self._current = 0
        self.cache_path = cache_path
        self.cache_hit = cache_hit
        self.input_shape = tuple(int(v) for v in input_shape)

    @classmethod
    def create(cls, network, fold_parameters: Sequence[dict], architecture: dict, num_outputs: int,
               patch_size: Sequence[int], num_inputs: int = 1, threads: int = 1,
               cache_dir: Optional[Path] = None,
               weights_sha256: Optional[Sequence[str]] = None) -> "OpenVINONetwork":
        """Convert (or read from the cache) and compile every fold. Any failure raises; the caller falls back.
        `weights_sha256`: each fold's checkpoint file digest, when the weights come from files (`cache_key`)."""
        import openvino

        cache_dir = Path(cache_dir) if cache_dir is not None else cache_folder()
        input_shape = (1, int(num_inputs), *(int(p) for p in patch_size))
        key = cache_key(fold_parameters, architecture, num_outputs, patch_size, weights_sha256)
        entry = cache_dir / key
        cache_hit = all((entry / f"fold_{i}.xml").is_file() and (entry / f"fold_{i}.bin").is_file()
                        for i in range(len(fold_parameters)))
        if not cache_hit:
            cache_dir.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".staging-{key}-", dir=cache_dir))
            try:
                _convert_into(staging, network, fold_parameters, input_shape)
                (staging / "conversion.json").write_text(json.dumps({
                    "openvino": openvino_version(), "patch_size": list(input_shape[2:]),
                    "folds": len(fold_parameters), "precision": "f32"}, indent=2) + "\n", encoding="utf-8")
                if entry.exists():  # a stale or partial entry (e.g. a fold file deleted by hand)
                    shutil.rmtree(entry, ignore_errors=True)
                try:
                    os.replace(staging, entry)
                except OSError:  # another process put the same entry in place first: use theirs
                    if not (entry / "fold_0.xml").is_file():
                        raise
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        core = openvino.Core()
        try:
            core.set_property({"CACHE_DIR": str(entry / "compiled")})
        except Exception:  # a read-only cache still converts; only compilation is repeated
            pass
        compiled = [_compile(core, entry / f"fold_{i}.xml", threads) for i in range(len(fold_parameters))]
        network_call = cls(compiled, fold_parameters, entry, cache_hit, input_shape)
        if not cache_hit:  # checked once, when converted (a PyTorch tile costs as much as a tenth of a volume)
            try:
                for parameters in fold_parameters:
                    network_call._check(network, parameters)
            except BaseException:
                shutil.rmtree(entry, ignore_errors=True)  # a conversion that failed its check is never reused
                raise
            finally:
                network.load_state_dict(fold_parameters[0])
        return network_call

    def _check(self, network, parameters: dict) -> None:
        """Conversion-time check of one fold: a random tile through OpenVINO and PyTorch must agree closely (a
        conversion that silently changes the network must not pass for a working backend, nor enter the cache as
        one: a failed check raises before `create` returns, and the caller falls back to PyTorch)."""
        import torch

        rng = np.random.default_rng(0)
        tile = torch.from_numpy(rng.standard_normal(self.input_shape).astype(np.float32))
        network.load_state_dict(parameters)
        network.eval()
        with torch.no_grad():
            expected = network(tile)
        self.load_state_dict(parameters)
        got = self(tile)
        scale = float(expected.abs().max()) or 1.0
        difference = float((got - expected).abs().max()) / scale
        if not np.isfinite(difference) or difference > 1e-3:
            raise RuntimeError(f"OpenVINO's output differs from PyTorch's by {difference:.2e} (relative)")

    # --- what nnU-Net's predictor calls on its network
    def load_state_dict(self, parameters: dict, *args, **kwargs):
        if id(parameters) not in self._fold_of:
            raise RuntimeError("OpenVINONetwork got weights it was not converted with")
        self._current = self._fold_of[id(parameters)]

    def to(self, *args, **kwargs) -> "OpenVINONetwork":
        return self

    def eval(self) -> "OpenVINONetwork":
        return self

    def __call__(self, x):
        import torch

        array = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        if array.shape != self.input_shape:
            raise RuntimeError(f"OpenVINO network converted for {self.input_shape}, got a tile of {array.shape}")
        # the tile is read in place (share_inputs); the logits come back in a fresh array of their own
        # (share_outputs=False), which nnU-Net may scale in place: no further copy is needed
        result = self._compiled[self._current](array, share_inputs=True)[0]
        return torch.from_numpy(result)

    def release_memory(self) -> None:
        """Give back OpenVINO's intermediate buffers (the activations of a tile) until the next call: nnU-Net's
        export, which follows the sliding window, then peaks without them."""
        for compiled in self._compiled:
            compiled.release_memory()

    @property
    def record(self) -> Dict[str, object]:
        """For the sidecar: OpenVINO version, precision, the cache entry and whether it was reused."""
        return {"openvino": openvino_version(), "precision": "f32", "cache": str(self.cache_path),
                "cache_hit": self.cache_hit}

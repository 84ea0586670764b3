"""Which engine runs the network inside nnU-Net's sliding window: PyTorch or OpenVINO (CPU).

`segment --backend auto|torch|openvino`:
- `auto`: OpenVINO when the network runs on the CPU and the `openvino` package is installed, PyTorch otherwise
  (GPUs and Apple MPS always run PyTorch, as nnU-Net does). On the CPU, OpenVINO is set up only once a volume
  needs `AUTO_OPENVINO_MIN_TILES` sliding-window tiles per fold or more (`sliding_window_tiles`): a one-tile volume
  runs on PyTorch, where OpenVINO's setup (library, cached network) costs more time and memory than it saves.
- `torch`: nnU-Net's own PyTorch path, exactly what SCT runs.
- `openvino`: the CPU only; a UserError when OpenVINO is not installed or the device is not the CPU.

Only the network call changes: nnU-Net's preprocessing, sliding window, gaussian weighting, fold ensembling and
export stay nnU-Net's (`openvino_backend.OpenVINONetwork`). A network OpenVINO cannot convert or compile falls back
to PyTorch with a warning (`Segmenter`).
"""

from __future__ import annotations

import importlib.util

import numpy as np

from RootletSegLogic.errors import UserError

BACKENDS = ("auto", "torch", "openvino")
# Measured on a 2-core CPU, 1 thread, demo model: on the default phantom (one tile) OpenVINO ran up to 0.2 s slower
# and peaked 45 MiB higher than PyTorch; on the 64x320x320 phantom (40 tiles) it ran 1.4x faster, 17 MiB lower.
AUTO_OPENVINO_MIN_TILES = 2


def openvino_available() -> bool:
    """True when the `openvino` package can be imported (checked without importing it)."""
    return importlib.util.find_spec("openvino") is not None


def check_backend(name: str) -> str:
    """The backend name, lower case; UserError for an unknown one."""
    backend = (name or "auto").strip().lower()
    if backend not in BACKENDS:
        raise UserError(f"The backend '{name}' is not known: use one of {', '.join(BACKENDS)}.")
    return backend


def choose_backend(requested: str, device_type: str) -> str:
    """"torch" or "openvino" for a requested backend and a torch device type ("cpu", "cuda", "mps")."""
    backend = check_backend(requested)
    if backend == "torch":
        return "torch"
    if backend == "auto":
        return "openvino" if device_type == "cpu" and openvino_available() else "torch"
    if device_type != "cpu":
        raise UserError(f"The OpenVINO backend runs on the CPU only, not on '{device_type}': "
                        "use --device cpu, or --backend torch (or auto) for the GPU.")
    if not openvino_available():
        raise UserError("The OpenVINO backend is not installed: install it with 'pip install openvino' "
                        "(or run 'make install'), or use --backend torch.")
    return "openvino"


def sliding_window_tiles(shape_zyx, spacing_zyx, configuration, transpose_forward, step: float) -> int:
    """How many tiles nnU-Net's sliding window runs per fold on an image of `shape_zyx` voxels at `spacing_zyx` mm
    (NumPy order, as handed to nnU-Net): transposed as the plans say, resampled to the configuration's spacing,
    padded up to the patch, stepped by `step` x patch (nnU-Net's own functions). nnU-Net's crop to the non-zero
    region can only lower it."""
    from nnunetv2.inference.sliding_window_prediction import compute_steps_for_sliding_window
    from nnunetv2.preprocessing.resampling.default_resampling import compute_new_shape

    shape = [int(shape_zyx[axis]) for axis in transpose_forward]
    spacing = [float(spacing_zyx[axis]) for axis in transpose_forward]
    patch = [int(p) for p in configuration.patch_size]  # 3D: only 3d_fullres models are accepted (model_folder)
    resampled = compute_new_shape(shape, spacing, list(configuration.spacing))
    steps = compute_steps_for_sliding_window([max(int(s), p) for s, p in zip(resampled, patch)], patch, step)
    return int(np.prod([len(s) for s in steps]))

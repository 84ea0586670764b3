"""The network backends (segmentation/backends.py, openvino_backend.py): choice, agreement, cache, fallback.

Real nnU-Net predictors and real OpenVINO conversions of a tiny untrained network (and of the demo model); no mocks.
Speed is measured by bench/bench_vs_reference.py, never here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from model_factory import make_model_folder, small_plans  # noqa: E402

from RootletSegLogic.errors import UserError  # noqa: E402
from RootletSegLogic.segmentation.backends import (  # noqa: E402
    AUTO_OPENVINO_MIN_TILES,
    BACKENDS,
    check_backend,
    choose_backend,
)
from RootletSegLogic.segmentation.model_folder import load_model_folder  # noqa: E402
from RootletSegLogic.segmentation.openvino_backend import OpenVINONetwork, cache_folder  # noqa: E402
from RootletSegLogic.segmentation.predictor import Segmenter  # noqa: E402


@pytest.fixture(scope="module")
def two_fold_model(tmp_path_factory):
    """A tiny untrained model with two folds (the ensemble must use each fold's own converted network)."""
    return load_model_folder(make_model_folder(tmp_path_factory.mktemp("model"), small_plans(), folds=(0, 1), seed=3))


def textured_image(shape_xyz=(40, 36, 30), spacing=(0.9, 1.0, 1.1), seed=0) -> sitk.Image:
    rng = np.random.default_rng(seed)
    nx, ny, nz = shape_xyz
    z, y, x = np.mgrid[0:nz, 0:ny, 0:nx]
    array = 3 * x + 2 * y + z + 80 * (((x - 14) ** 2 + (y - 12) ** 2 + (z - 10) ** 2) < 30)
    image = sitk.GetImageFromArray((array + rng.normal(0, 4, array.shape)).astype(np.float32))
    image.SetSpacing(spacing)
    image.SetDirection((0, 0, 1, -1, 0, 0, 0, -1, 0))  # not the model's orientation
    return image


def test_backend_choice():
    assert BACKENDS == ("auto", "torch", "openvino")
    assert choose_backend("auto", "cpu") == "openvino"  # openvino is a dependency, so it is installed here
    assert choose_backend("AUTO", "cuda") == "torch" and choose_backend("auto", "mps") == "torch"
    assert choose_backend("torch", "cpu") == "torch"
    assert choose_backend("openvino", "cpu") == "openvino"
    with pytest.raises(UserError, match="CPU only"):
        choose_backend("openvino", "cuda")
    with pytest.raises(UserError, match="not known"):
        check_backend("tensorrt")
    with pytest.raises(UserError, match="not known"):  # the Segmenter checks it too, before loading anything
        Segmenter(None, device="cpu", backend="onnx")


def test_openvino_ensemble_agrees_with_pytorch_and_is_recorded(two_fold_model):
    image = textured_image()
    on_torch = Segmenter(two_fold_model, device="cpu", threads=1, backend="torch")
    on_openvino = Segmenter(two_fold_model, device="cpu", threads=1, backend="auto")
    assert on_torch.backend == "torch" and on_torch.openvino is None
    # "auto" sets OpenVINO up at the first volume of several tiles, not before
    assert on_openvino.backend == "torch" and on_openvino.openvino is None
    # the same folds, the same sliding window: logits agree to float rounding, so the labels agree almost everywhere
    a = sitk.GetArrayFromImage(on_torch.segment(image))
    b = sitk.GetArrayFromImage(on_openvino.segment(image))
    assert on_openvino.backend == "openvino"
    assert isinstance(on_openvino.predictor.network, OpenVINONetwork)
    assert a.shape == b.shape
    assert (a != b).mean() < 1e-3, (a != b).sum()
    settings = on_openvino.settings
    assert settings["backend"] == "openvino" and settings["backend_requested"] == "auto"
    assert settings["openvino"]["precision"] == "f32" and settings["openvino"]["cache_hit"] is False
    assert on_torch.settings["backend"] == "torch" and on_torch.settings["openvino"] is None


def test_auto_keeps_pytorch_for_a_one_tile_volume(two_fold_model):
    segmenter = Segmenter(two_fold_model, device="cpu", threads=1, backend="auto")
    small = textured_image(shape_xyz=(14, 14, 14), spacing=(1.0, 1.0, 1.0))  # fits in one (16, 32, 32) patch
    labels = segmenter.segment(small)
    assert segmenter.predictor._tiles_per_fold == 1 < AUTO_OPENVINO_MIN_TILES  # what nnU-Net really ran
    assert labels.GetSize() == small.GetSize()
    assert segmenter.backend == "torch" and segmenter.openvino is None
    assert not isinstance(segmenter.predictor.network, OpenVINONetwork)
    assert segmenter.settings["backend"] == "torch" and segmenter.settings["backend_requested"] == "auto"


@pytest.mark.parametrize("shape_xyz, spacing", [((24, 20, 14), (1.0, 1.0, 1.0)), ((40, 36, 30), (0.9, 1.0, 1.1)),
                                                ((70, 33, 17), (0.5, 1.7, 2.3)), ((16, 64, 90), (1.2, 0.8, 0.6))])
def test_the_tile_count_before_preprocessing_is_the_count_nnunet_runs(two_fold_model, shape_xyz, spacing):
    segmenter = Segmenter(two_fold_model, device="cpu", threads=1, backend="torch")
    image = textured_image(shape_xyz=shape_xyz, spacing=spacing)
    from RootletSegLogic.images.orientation import Reorientation

    oriented = Reorientation(image, segmenter.orientation).apply(image)
    expected = segmenter.tiles_per_fold(sitk.GetArrayViewFromImage(oriented).shape, oriented.GetSpacing()[::-1])
    segmenter.segment(image)
    assert segmenter.predictor._tiles_per_fold == expected


def test_each_fold_runs_its_own_converted_network(two_fold_model):
    segmenter = Segmenter(two_fold_model, device="cpu", threads=1, backend="openvino")
    network = segmenter.predictor.network
    tile = torch.from_numpy(np.random.default_rng(1).standard_normal(network.input_shape).astype(np.float32))
    outputs = []
    for parameters in segmenter.predictor.list_of_parameters:
        torch_network = segmenter.predictor.network  # nnU-Net's own call sequence: load_state_dict, then call
        torch_network.load_state_dict(parameters)
        outputs.append(torch_network(tile))
    assert not torch.allclose(outputs[0], outputs[1])  # two folds, two different networks
    with pytest.raises(RuntimeError, match="not converted with"):
        network.load_state_dict({})


_CACHE_CHECK = """
import json, sys
sys.path.insert(0, sys.argv[1])
from model_factory import make_model_folder, small_plans
from RootletSegLogic.segmentation.model_folder import load_model_folder
from RootletSegLogic.segmentation.openvino_backend import cache_folder
from RootletSegLogic.segmentation.predictor import Segmenter
from pathlib import Path
work = Path(sys.argv[2])
model = load_model_folder(make_model_folder(work / "model", small_plans(), folds=(0, 1), seed=3))
def run(folder):
    ov = Segmenter(folder, device="cpu", threads=1, backend="openvino").openvino
    return {"hit": ov.cache_hit, "path": str(ov.cache_path)}
result = {"root": str(cache_folder()), "first": run(model), "second": run(model)}
result["xml"] = sorted(p.name for p in Path(result["first"]["path"]).glob("fold_*.xml"))
other = load_model_folder(make_model_folder(work / "other", small_plans(patch_size=(16, 16, 32)), folds=(0, 1), seed=3))
result["other"] = run(other)
(Path(result["first"]["path"]) / "fold_1.bin").unlink()
result["again"] = run(model)
result["bin_back"] = (Path(result["first"]["path"]) / "fold_1.bin").is_file()
result["staging"] = [p.name for p in cache_folder().glob(".staging-*")]
print(json.dumps(result))
"""


def test_the_conversion_is_cached_per_model_and_patch_size(tmp_path):
    # its own process: in one pytest process, several conversions followed by another test's self-sent SIGTERM
    # crashed the interpreter (OpenVINO / TorchScript state); `segment` processes convert at most once per model
    env = dict(os.environ, ROOTLETSEG_HOME=str(tmp_path / "home"),
               PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    done = subprocess.run([sys.executable, "-c", _CACHE_CHECK, str(Path(__file__).resolve().parent), str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    first, second, other, again = result["first"], result["second"], result["other"], result["again"]
    assert not first["hit"] and Path(first["path"]).parent == Path(result["root"]) == tmp_path / "home" / "openvino"
    assert result["xml"] == ["fold_0.xml", "fold_1.xml"]
    assert second["hit"] and second["path"] == first["path"]
    # another patch size is another entry (the converted network has a static input shape)
    assert not other["hit"] and other["path"] != first["path"]
    # a damaged entry (a weight file removed) is converted again, not used
    assert not again["hit"] and again["path"] == first["path"] and result["bin_back"]
    assert result["staging"] == []  # no temporary folder left behind


def test_a_failed_conversion_falls_back_to_pytorch_with_a_warning(tmp_path, monkeypatch, two_fold_model):
    # the cache cannot be created (its parent is a file): OpenVINO cannot be set up, PyTorch runs the network
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("ROOTLETSEG_HOME", str(blocker))
    warnings = []
    segmenter = Segmenter(two_fold_model, device="cpu", threads=1, backend="openvino", warn=warnings.append)
    assert segmenter.backend == "torch" and segmenter.openvino is None
    assert isinstance(segmenter.predictor.network, torch.nn.Module)
    assert len(warnings) == 1 and "PyTorch runs it instead" in warnings[0]
    assert segmenter.settings["backend"] == "torch" and segmenter.settings["backend_requested"] == "openvino"
    reference = Segmenter(two_fold_model, device="cpu", threads=1, backend="torch")
    image = textured_image(seed=2)
    assert np.array_equal(sitk.GetArrayFromImage(segmenter.segment(image)),
                          sitk.GetArrayFromImage(reference.segment(image)))


class _NotConvertible(torch.nn.Module):
    """A real module OpenVINO cannot convert: its output is a Python string, not a tensor."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(1))

    def forward(self, x):
        return f"{float(x.sum() * self.scale):.3f}"


def test_create_raises_on_a_network_openvino_cannot_convert(tmp_path):
    module = _NotConvertible()
    with pytest.raises(Exception):
        OpenVINONetwork.create(module, [module.state_dict()], {"class": "NotConvertible"}, 2, (8, 8, 8),
                               cache_dir=tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("*/fold_0.xml"))  # nothing half-written is left as an entry


def test_the_slicer_install_plan_brings_openvino_with_nnunetv2(tmp_path):
    from RootletSegLogic.slicer import dependencies

    plan = dependencies.install_plan(["nnunetv2"], True, torch_version="2.5.1+cu121", openvino_missing=True)
    assert [(s.package, s.how) for s in plan.steps] == [("nnunetv2", "pip"), ("openvino", "pip")]
    assert "openvino>=2024.4" in plan.message and "optional" in plan.message
    # openvino alone missing never asks: PyTorch runs the network without it
    assert not dependencies.install_plan([], True, openvino_missing=True).needed
    installed = dependencies.install_plan(["nnunetv2"], True, torch_version="2.5.1+cu121", openvino_missing=False)
    assert [s.package for s in installed.steps] == ["nnunetv2"]
    # the openvino step is one pip call with the constraints that keep torch, SimpleITK and requests
    with_extension = dependencies.install_plan(["nnunetv2"], True, torch_version="2.5.1+cu121",
                                               nnunet_extension_available=True, openvino_missing=True)
    calls, extension = [], []
    dependencies.run_plan(with_extension, calls.append, nnunet_extension_install=lambda r: extension.append(r) or True)
    assert extension == ["nnunetv2>=2.5,<2.9"]
    assert len(calls) == 1 and calls[0][:2] == ["openvino>=2024.4", "--constraint"]


def test_the_conversion_check_catches_an_openvino_network_that_is_not_the_pytorch_one(tmp_path, two_fold_model):
    """`create` checks each converted fold against the PyTorch network on one tile (and removes the cache entry when
    a check fails); here fold 1's compiled network is replaced by fold 0's, a real mismatch the check must see."""
    segmenter = Segmenter(two_fold_model, device="cpu", threads=1, backend="torch")
    network = segmenter.predictor.network
    folds = segmenter.predictor.list_of_parameters
    converted = OpenVINONetwork.create(network, folds, {"case": "check"}, 10, (16, 32, 32), threads=1,
                                       cache_dir=tmp_path / "cache")
    converted._check(network, folds[1])  # the real conversion passes
    converted._compiled = [converted._compiled[0], converted._compiled[0]]
    with pytest.raises(RuntimeError, match="differs from PyTorch"):
        converted._check(network, folds[1])


def test_a_fallback_at_the_first_big_volume_warns_the_run_of_that_volume(tmp_path, monkeypatch, two_fold_model):
    # a batch worker keeps one network for many images: with "auto", OpenVINO is set up (here: fails) at the first
    # volume of several tiles, so its warning belongs to that image's run, and is repeated to later runs
    from RootletSegLogic.pipeline.models import LoadedModels

    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("ROOTLETSEG_HOME", str(blocker))
    models = LoadedModels(model=two_fold_model, device="cpu", threads=1, backend="auto")
    first, second, third = [], [], []
    models.segmenter(warn=first.append).segment(textured_image(shape_xyz=(14, 14, 14)))  # one tile: PyTorch
    segmenter = models.segmenter(warn=second.append)
    segmenter.segment(textured_image())  # several tiles: OpenVINO is tried and cannot be set up
    models.segmenter(warn=third.append)
    assert first == [] and len(second) == 1 and "PyTorch runs it instead" in second[0]
    assert third == second
    assert segmenter.backend == "torch" and segmenter.openvino is None


def test_the_cache_key_stands_on_the_checkpoint_digests_when_the_weights_come_from_files(two_fold_model):
    from RootletSegLogic.images.files import file_sha256
    from RootletSegLogic.segmentation.openvino_backend import cache_key

    segmenter = Segmenter(two_fold_model, device="cpu", threads=1, backend="torch")
    paths = list(two_fold_model.checkpoints.values())
    assert list(segmenter.checkpoint_sha256.values()) == [file_sha256(path) for path in paths]
    weights = segmenter.predictor.list_of_parameters
    digests = list(segmenter.checkpoint_sha256.values())
    key = cache_key(weights, {"a": 1}, 10, (16, 32, 32), digests)
    assert key == cache_key([{}, {}], {"a": 1}, 10, (16, 32, 32), digests)  # the tensors are not read again
    assert key != cache_key(weights, {"a": 1}, 10, (16, 32, 32), digests[::-1])  # another file, another key
    assert key != cache_key(weights, {"a": 1}, 10, (16, 32, 32))  # the tensors' own digest
    with pytest.raises(ValueError):
        cache_key(weights, {"a": 1}, 10, (16, 32, 32), digests[:1])

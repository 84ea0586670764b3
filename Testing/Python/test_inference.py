"""Inference core: real nnU-Net inference (tiny untrained network; the demo model too when present), no mocks.

The key property: the segmentation does not depend on how the image is stored. The same voxels written in any of
the 48 axis-aligned orientations, or with an oblique direction, give the same label map once mapped back, and the
label map always lies on exactly the input grid.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parent))

from model_factory import dataset_json, make_model_folder, small_plans  # noqa: E402

from RootletSegLogic.errors import UserError  # noqa: E402
from RootletSegLogic.images.files import file_sha256
from RootletSegLogic.images.grid import same_grid
from RootletSegLogic.images.orientation import (
    ALL_AXCODES,
    axcodes_of,
    direction_matrix,
    reorient,
)
from RootletSegLogic.segmentation.model_folder import load_model_folder  # noqa: E402
from RootletSegLogic.segmentation.predictor import (
    Segmenter,
    model_orientation,
    resolve_device,
    segment_image,
)
from RootletSegLogic.segmentation.workflow import (
    default_output_path,
    segment_file,
    sidecar_path_for,
)

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "RootletSegLogic" / "synthetic" / "models" / "demo"


def asymmetric_image(shape_xyz=(22, 18, 26), spacing=(0.9, 1.1, 1.3), origin=(12.5, -40.25, 7.0)) -> sitk.Image:
    """A small volume with no mirror symmetry (gradients along all axes + off-centre blobs), in LPS, float32."""
    nx, ny, nz = shape_xyz
    z, y, x = np.mgrid[0:nz, 0:ny, 0:nx].astype(np.float32)
    rng = np.random.default_rng(7)
    array = (3 * x + 2 * y + z + 60.0 * (((x - 6) ** 2 + (y - 5) ** 2 + (z - 8) ** 2) < 16)
             + 35.0 * (((x - 15) ** 2 + (y - 12) ** 2 + (z - 19) ** 2) < 9) + rng.normal(0, 4, x.shape))
    image = sitk.GetImageFromArray(array.astype(np.float32))
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    return image


@pytest.fixture(scope="module")
def model_root(tmp_path_factory):
    """A tiny untrained model (fast, deterministic, not flip-equivariant): the full orientation sweep runs on it."""
    return make_model_folder(tmp_path_factory.mktemp("model"), small_plans(), seed=0)


@pytest.fixture(scope="module")
def segmenter(model_root):
    return Segmenter(load_model_folder(model_root), device="cpu", threads=1)


def grid(image: sitk.Image):
    return image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection()


def rotation(angles_deg) -> np.ndarray:
    ax, ay, az = (math.radians(a) for a in angles_deg)
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def test_all_48_orientations_and_oblique_give_the_same_segmentation(segmenter):
    base = asymmetric_image()
    reference = segmenter.segment(base)
    assert grid(reference) == grid(base)
    assert reference.GetPixelID() == sitk.sitkUInt8
    ref_array = sitk.GetArrayFromImage(reference)
    # the check has teeth: several labels, and no flip of the image gives the same labels
    assert len(np.unique(ref_array)) >= 2
    for axis in range(3):
        assert not np.array_equal(ref_array, np.flip(ref_array, axis))

    for code in ALL_AXCODES:
        stored = reorient(base, code)
        assert axcodes_of(stored) == code
        labels = segmenter.segment(stored)
        assert grid(labels) == grid(stored), code  # exactly the input grid, bit for bit
        back = reorient(labels, axcodes_of(base))
        assert same_grid(back, base)
        assert np.array_equal(sitk.GetArrayFromImage(back), ref_array), code

    # oblique: rotate the direction by a few degrees (closest axis-aligned reading unchanged) -> same voxels labelled
    for code, angles in (("LPS", (8, -5, 12)), ("PSR", (-10, 7, 3)), ("IRA", (4, 11, -9))):
        stored = reorient(base, code)
        expected = sitk.GetArrayFromImage(segmenter.segment(stored))
        oblique = sitk.Image(stored)
        oblique.SetDirection(tuple((rotation(angles) @ direction_matrix(stored)).ravel()))
        assert axcodes_of(oblique) == code
        labels = segmenter.segment(oblique)
        assert grid(labels) == grid(oblique)
        assert np.array_equal(sitk.GetArrayFromImage(labels), expected), code


def test_demo_model_on_the_phantom_in_several_orientations():
    """The embedded demo model (1 tile of 128x48x48 per run, ~1.5 s on 2 cores): a subset of orientations + oblique."""
    from RootletSegLogic.synthetic.phantom import make_phantom

    image = make_phantom(seed=3).image
    demo = Segmenter(load_model_folder(DEMO), device="cpu", threads=1)
    reference = sitk.GetArrayFromImage(demo.segment(image))
    assert len(np.unique(reference)) >= 3  # a trained model finds several levels in the phantom
    code = axcodes_of(image)
    for other in ("LPS", "PSR", "IRP", "ASL"):
        labels = demo.segment(reorient(image, other))
        assert np.array_equal(sitk.GetArrayFromImage(reorient(labels, code)), reference), other
    oblique = sitk.Image(image)
    oblique.SetDirection(tuple((rotation((6, -4, 9)) @ direction_matrix(image)).ravel()))
    labels = demo.segment(oblique)
    assert grid(labels) == grid(oblique)
    assert np.array_equal(sitk.GetArrayFromImage(labels), reference)


def test_model_orientation_is_honoured(tmp_path):
    plans = small_plans()
    lpi = load_model_folder(make_model_folder(tmp_path / "lpi", plans, dataset_json(image_orientation="LPI")))
    none = load_model_folder(make_model_folder(tmp_path / "none", plans, dataset_json()))
    rpi = load_model_folder(make_model_folder(tmp_path / "rpi", plans, dataset_json(image_orientation="RPI")))
    assert model_orientation(lpi) == model_orientation(none) == "RAS"
    assert model_orientation(rpi) == "LAS"
    image = reorient(asymmetric_image(), "PIL")
    a, b, c = (sitk.GetArrayFromImage(segment_image(image, m, device="cpu", threads=1)) for m in (lpi, none, rpi))
    assert np.array_equal(a, b)  # SCT's default "LPI" is this project's "RAS"
    assert not np.array_equal(a, c)  # the network sees x flipped: an untrained net is not flip-equivariant
    # and the RPI model still maps back exactly: same result from any storage orientation
    again = segment_image(reorient(image, "SAR"), rpi, device="cpu", threads=1)
    assert np.array_equal(sitk.GetArrayFromImage(reorient(again, "PIL")), c)


def test_progress_counts_every_tile_of_every_fold(tmp_path):
    model = load_model_folder(make_model_folder(tmp_path / "m", small_plans(), folds=(0, 1), seed=3))
    assert model.folds == [0, 1]
    events = []
    image = asymmetric_image((40, 20, 20))
    labels = segment_image(image, model, device="cpu", progress=events.append, threads=1)
    stages = [e.stage for e in events]
    assert stages[0] == "load" and stages[-1] == "export"
    order = ["load", "preprocess", "predict", "export"]
    assert [s for i, s in enumerate(stages) if i == 0 or stages[i - 1] != s] == order
    predict = [e for e in events if e.stage == "predict"]
    total = predict[0].total
    assert total % 2 == 0 and total >= 4  # tiles x 2 folds
    assert [e.done for e in predict] == list(range(0, total + 1))
    assert all(e.total == total for e in predict)
    # the ensemble is not fold 0 alone (both folds were used)
    single = segment_image(image, model.select_folds([0]), device="cpu", threads=1)
    assert grid(single) == grid(labels)
    assert not np.array_equal(sitk.GetArrayFromImage(single), sitk.GetArrayFromImage(labels))


def test_step_and_device_errors(segmenter):
    with pytest.raises(UserError, match="tile step"):
        Segmenter(segmenter.model, device="cpu", step=0)
    with pytest.raises(UserError, match="device 'tpu'"):
        resolve_device("tpu")
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="CUDA"):
            resolve_device("cuda")
    assert resolve_device("cpu").type == "cpu"


def test_segment_file_writes_label_map_and_sidecar(tmp_path, model_root):
    image = reorient(asymmetric_image(), "RPI")
    source = tmp_path / "sub-01_T2w_0000.nii"
    sitk.WriteImage(image, str(source))
    outputs = segment_file(source, model=str(model_root), device="cpu", warn=lambda _m: None, threads=1)
    seg_path = tmp_path / "sub-01_T2w_rootlets.nii.gz"
    side_path = tmp_path / "sub-01_T2w_rootlets.json"
    assert default_output_path(source) == seg_path and sidecar_path_for(seg_path) == side_path
    assert outputs == {"segmentation": str(seg_path), "sidecar": str(side_path)}
    written = sitk.ReadImage(str(seg_path))
    original = sitk.ReadImage(str(source))
    assert grid(written) == grid(original)
    assert written.GetPixelID() == sitk.sitkUInt8
    sidecar = json.loads(side_path.read_text())
    assert sidecar["input"]["sha256"] == file_sha256(source)
    assert sidecar["settings"]["step"] == 0.5 and sidecar["settings"]["tta"] is False
    assert sidecar["orientation"]["used"] == "RAS" and sidecar["orientation"]["input"] == "RPI"
    assert set(sidecar["model"]["checkpoints"]) == {"0"}
    assert len(sidecar["model"]["checkpoints"]["0"]["sha256"]) == 64
    assert sidecar["software"]["nnunetv2"] and sidecar["software"]["torch"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_segment_file_refuses_existing_outputs_before_loading_the_model(tmp_path):
    source = tmp_path / "t2.nii.gz"
    sitk.WriteImage(asymmetric_image(), str(source))
    (tmp_path / "t2_rootlets.json").write_text("{}")
    # the model does not exist: the output check must come first
    with pytest.raises(UserError, match="already exists"):
        segment_file(source, model=str(tmp_path / "no_such_model"), device="cpu", threads=1)
    assert (tmp_path / "t2_rootlets.json").read_text() == "{}"
    assert not (tmp_path / "t2_rootlets.nii.gz").exists()
    with pytest.raises(UserError, match="image suffix"):
        segment_file(source, tmp_path / "out.txt", model=str(tmp_path / "no_such_model"))


def test_tta_mirrors_and_is_recorded(segmenter):
    image = asymmetric_image()
    events = []
    tta = Segmenter(segmenter.model, device="cpu", tta=True, threads=1)
    labels = tta.segment(image, events.append)
    assert tta.settings["tta"] is True and tta.settings["mirror_axes"] == [0, 1, 2]
    assert grid(labels) == grid(image)
    plain = sitk.GetArrayFromImage(segmenter.segment(image))
    assert not np.array_equal(sitk.GetArrayFromImage(labels), plain)  # the mirrored passes changed the result
    predict = [e for e in events if e.stage == "predict"]
    assert predict[-1].done == predict[-1].total  # one event per tile, mirrors included in the tile

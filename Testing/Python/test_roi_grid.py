"""The cord's box grown onto the model's grid (segmentation/roi_grid.py).

Checked against nnU-Net's own functions: its tile placement, its new-shape rule, its resampling (the crop's samples
must be the whole volume's), the axis mapping in all 48 orientations, and, with the demo model, that the grown crop
gives the whole volume's labels where the box as cut does not.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import REPO_ROOT

from RootletSegLogic.images.orientation import ALL_AXCODES, Reorientation
from RootletSegLogic.segmentation.roi import DEFAULT_ROI_MARGIN_MM, RoiBox, cord_box, crop, paste_back
from RootletSegLogic.segmentation.roi_grid import (
    SAMPLE_OFFSET_TOLERANCE_VOXELS,
    ModelAxis,
    align_axis,
    align_box,
    planned_slicers,
    resampled_length,
    tile_starts,
    whole_tile_plan,
)
from RootletSegLogic.synthetic.phantom import LEVELS, make_phantom


def test_tile_starts_are_nnunets_sliding_window_steps_and_padding():
    from nnunetv2.inference.sliding_window_prediction import compute_steps_for_sliding_window

    for patch in (16, 48, 192, 224):
        for step in (0.5, 0.3, 1.0):
            for size in range(1, 500, 7):
                expected = compute_steps_for_sliding_window((max(size, patch),), (patch,), step)[0]
                if size < patch:  # nnU-Net pads evenly (pad_nd_image): its one tile starts before voxel 0
                    expected = [-((patch - size) // 2)]
                assert tile_starts(size, patch, step) == expected, (size, patch, step)


def test_resampled_length_is_nnunets_new_shape():
    from nnunetv2.preprocessing.resampling.default_resampling import compute_new_shape

    for length in range(1, 400, 3):
        for spacing, model_spacing in ((0.8, 1.0), (1.0, 0.8), (0.5, 0.7), (2.7, 1.0), (1.0, 1.0)):
            axis = ModelAxis(spacing, model_spacing, 48, 0.5)
            assert resampled_length(length, axis) == compute_new_shape([length], [spacing], [model_spacing])[0]


def _resampled_ramp(length: int, spacing: float, model_spacing: float, start: int = 0) -> np.ndarray:
    """nnU-Net's resampling (linear, so that a value is its sample's input coordinate) of input voxels
    start..start+length-1, along one axis."""
    from nnunetv2.preprocessing.resampling.default_resampling import compute_new_shape, resample_data_or_seg_to_shape

    ramp = np.arange(start, start + length, dtype=np.float64)[None, :, None, None] * np.ones((1, 1, 2, 2))
    shape = compute_new_shape((length, 2, 2), (spacing, 1.0, 1.0), (model_spacing, 1.0, 1.0))
    resampled = resample_data_or_seg_to_shape(ramp, shape, (spacing, 1.0, 1.0), (model_spacing, 1.0, 1.0),
                                              is_seg=False, order=1, order_z=0, force_separate_z=False)
    return resampled[0, :, 0, 0]


@pytest.mark.parametrize("length, spacing, model_spacing, start, stop", [
    (320, 0.8, 1.0, 117, 200),  # the 64x320x320 phantom's A-P axis, box + 25 mm
    (320, 0.8, 1.0, 99, 218),
    (64, 0.8, 1.0, 5, 60),  # a scale (64 -> 51) a crop can only approach
    (300, 1.0, 0.8, 40, 130),
    (257, 0.7, 1.0, 100, 150),
])
def test_the_grown_crop_is_sampled_where_the_whole_volume_is(length, spacing, model_spacing, start, stop):
    axis = ModelAxis(spacing, model_spacing, 48, 0.5)
    whole = _resampled_ramp(length, spacing, model_spacing)
    choice = align_axis(start, stop, length, axis)
    assert choice.start <= start and choice.stop >= stop and 0 <= choice.start and choice.stop <= length
    plain_tiles = len(tile_starts(resampled_length(stop - start, axis), 48, 0.5))
    assert choice.tiles <= plain_tiles + 1

    def offset_to_whole(first: int, last: int) -> float:
        crop = _resampled_ramp(last - first, spacing, model_spacing, first)[1:-1]  # the ends are clamped
        index = int(np.argmin(np.abs(whole - crop[0])))
        return float(np.max(np.abs(crop - whole[index:index + len(crop)])))

    measured = offset_to_whole(choice.start, choice.stop)
    assert measured <= choice.sample_offset_voxels + 1e-9
    assert choice.sample_offset_voxels <= SAMPLE_OFFSET_TOLERANCE_VOXELS
    if (length, start) == (320, 117):  # the box as cut lies off the grid: what the growing is for
        assert offset_to_whole(start, stop) > 0.2 and measured == 0.0 and choice.tiles_shared


def test_an_axis_without_resampling_gets_whole_volume_tiles_at_no_extra_tile():
    axis = ModelAxis(0.8, 0.8, 224, 0.5)  # the full-size network's A-P axis: 320 voxels, tiles at 0 and 96
    choice = align_axis(130, 210, 320, axis)
    assert (choice.start, choice.stop) in {(0, 224), (96, 320)} and choice.tiles == 1 and choice.tiles_shared
    assert choice.sample_offset_voxels == 0.0


def test_a_crop_whose_own_steps_miss_the_whole_volumes_tiles_gets_them_by_plan():
    # the 64x320x320 phantom's A-P axis, box + 40 mm: 100 model voxels from the whole volume's voxel 76; nnU-Net's
    # own 4 steps (0, 17, 35, 52) miss the whole volume's tiles (0, 23, 46, 69, 92, 116, ...), the plan takes them
    axis = ModelAxis(0.8, 1.0, 48, 0.5)
    choice = align_axis(99, 218, 320, axis)
    assert (choice.start, choice.stop) == (95, 220) and choice.sample_offset_voxels == 0.0
    assert not choice.tiles_shared and choice.tile_starts == (0, 16, 40, 52) and choice.tiles == 4
    whole = set(tile_starts(256, 48, 0.5))
    assert {76 + start for start in choice.tile_starts[1:-1]} <= whole
    # no whole-volume tile inside, a crop shorter than a patch, or more tiles than its own steps: no plan
    assert whole_tile_plan(1, 48, whole, 48, 1) is None
    assert whole_tile_plan(0, 40, whole, 48, 1) is None
    assert whole_tile_plan(88, 80, whole, 48, 3) is None  # (0, 4, 28, 32) would be a fourth tile


def test_planned_slicers_are_nnunets_slicers_with_the_planned_starts_or_none():
    from nnunetv2.inference.sliding_window_prediction import compute_steps_for_sliding_window

    patch, size = (192, 48, 48), (256, 100, 51)
    own = compute_steps_for_sliding_window(size, patch, 0.5)
    slicers = planned_slicers(size, patch, 0.5, (None, (0, 16, 40, 52), None))
    assert len(slicers) == len(own[0]) * 4 * len(own[2])
    assert sorted({s[2].start for s in slicers}) == [0, 16, 40, 52]
    assert sorted({s[1].start for s in slicers}) == own[0] and all(s[2].stop - s[2].start == 48 for s in slicers)
    assert planned_slicers(size, patch, 0.5, None) is None
    for wrong in ((0, 16, 40, 50), (4, 16, 40, 52), (0, 60, 52)):  # not flush with the end, a gap, a step back
        assert planned_slicers(size, patch, 0.5, (None, wrong, None)) is None


def _physical_box(image: sitk.Image, box: RoiBox) -> np.ndarray:
    """The box's corner voxel centres in LPS mm, sorted per axis (the same region gives the same array)."""
    corners = []
    for corner in np.ndindex(2, 2, 2):
        index = [int(s + (n - 1) * c) for s, n, c in zip(box.start, box.size, corner)]
        corners.append(image.TransformIndexToPhysicalPoint(index))
    corners = np.array(corners)
    return np.stack([corners.min(axis=0), corners.max(axis=0)])


def test_the_grown_box_is_the_same_physical_region_in_all_48_orientations():
    # a different spacing, model spacing and patch per axis, and a transposing plan, so that a mixed-up axis shows
    spacing, model_spacing, patch, transpose = (0.9, 0.8, 1.3), (1.1, 0.7, 1.0), (24, 40, 16), (1, 0, 2)
    expected = None
    for code in ALL_AXCODES:
        phantom = make_phantom(seed=7, shape=(40, 60, 90), spacing=spacing, orientation=code)
        cut = cord_box(phantom.image, phantom.cord, 6.0)
        reorientation = Reorientation(phantom.image, "RAS")
        grown = align_box(phantom.image, cut, reorientation.order, reorientation.flips, transpose,
                          model_spacing, patch, 0.5)
        assert all(g <= c for g, c in zip(grown.start, cut.start)), code
        assert all(g + n >= c + m for g, n, c, m in zip(grown.start, grown.size, cut.start, cut.size)), code
        region = _physical_box(phantom.image, grown)
        if expected is None:
            expected = region
            assert grown.size != cut.size  # something was grown, or the comparison shows nothing
        assert np.allclose(region, expected, atol=1e-6), code
        assert grown.record()["model_grid"]["cut_size_ijk"] == list(cut.size)


def _dice(a: np.ndarray, b: np.ndarray, level: int) -> float:
    x, y = a == level, b == level
    total = x.sum() + y.sum()
    return 1.0 if total == 0 else 2.0 * float((x & y).sum()) / float(total)


def test_with_the_demo_model_the_grown_crop_gives_the_whole_volumes_labels():
    """Real nnU-Net inference (demo model, PyTorch, 2 threads) on a 64x240x240 phantom at 0.8 mm, which the model
    resamples to 1 mm: the box as cut moves thin rootlets; grown onto the grid it gives the whole volume's labels."""
    from RootletSegLogic.segmentation.model_folder import load_model_folder
    from RootletSegLogic.segmentation.predictor import Segmenter

    model = load_model_folder(REPO_ROOT / "RootletSegLogic" / "synthetic" / "models" / "demo")
    segmenter = Segmenter(model, device="cpu", threads=2, backend="torch")
    phantom = make_phantom(seed=1005, shape=(64, 240, 240), spacing=(0.8, 0.8, 0.8), orientation="LAS")
    image = phantom.image
    whole = sitk.GetArrayFromImage(segmenter.segment(image))
    cut = cord_box(image, phantom.cord, DEFAULT_ROI_MARGIN_MM)
    grown = segmenter.align_roi(image, cut)
    assert grown != cut and not grown.covers_image
    assert segmenter.tiles_per_fold(crop(image, grown).GetSize()[::-1], (0.8,) * 3) <= \
        segmenter.tiles_per_fold(crop(image, cut).GetSize()[::-1], (0.8,) * 3) + 1

    def labels_in(box: RoiBox) -> np.ndarray:
        return sitk.GetArrayFromImage(paste_back(segmenter.segment(crop(image, box)), image, box))

    grown_dice = [_dice(labels_in(grown), whole, level) for level in LEVELS]
    cut_dice = [_dice(labels_in(cut), whole, level) for level in LEVELS]
    assert min(grown_dice) >= 0.99, grown_dice
    assert min(cut_dice) < min(grown_dice), (cut_dice, grown_dice)


def test_with_the_demo_model_a_planned_crop_gives_the_whole_volumes_labels():
    """Real inference (demo model, PyTorch) on the 64x320x320 0.8 mm phantom with the cord's box + 40 mm, where the
    crop's own steps miss the whole volume's tiles: with the plan it gives the whole volume's labels, without it
    not (the same box, the same 4 tiles along A-P)."""
    from RootletSegLogic.segmentation.model_folder import load_model_folder
    from RootletSegLogic.segmentation.predictor import Segmenter

    segmenter = Segmenter(load_model_folder(REPO_ROOT / "RootletSegLogic" / "synthetic" / "models" / "demo"),
                          device="cpu", threads=2, backend="torch")
    phantom = make_phantom(seed=1000, shape=(64, 320, 320), spacing=(0.8, 0.8, 0.8), orientation="LAS")
    image = phantom.image
    whole = sitk.GetArrayFromImage(segmenter.segment(image))
    box = segmenter.align_roi(image, cord_box(image, phantom.cord, 40.0))
    assert box.tile_starts is not None and box.record()["model_grid"]["tile_starts_model_axes"][1] == [0, 16, 40, 52]

    def dice_in(tile_plan) -> list:
        labels = paste_back(segmenter.segment(crop(image, box), tile_starts=tile_plan), image, box)
        return [_dice(sitk.GetArrayFromImage(labels), whole, level) for level in LEVELS]

    planned, own = dice_in(box.tile_starts), dice_in(None)
    assert min(planned) >= 0.99, planned
    assert min(own) < 0.97, own

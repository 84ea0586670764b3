"""The region of interest around the cord (segmentation/roi.py): box, crop and paste-back on exactly the input grid.

No network here: the crop/paste round trip is checked with label maps whose values are known at every voxel (the
phantom's truth, and an index image), in all 48 axis-aligned orientations and an oblique direction.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk

from RootletSegLogic.errors import UserError
from RootletSegLogic.images.orientation import ALL_AXCODES
from RootletSegLogic.segmentation.roi import (
    DEFAULT_ROI_MARGIN_MM,
    check_margin,
    cord_box,
    crop,
    paste_back,
    plan_roi,
    read_cord,
)
from RootletSegLogic.synthetic.phantom import make_phantom

SMALL_SHAPE = (30, 36, 48)  # R-L, A-P, S-I voxels
SMALL_SPACING = (1.6, 1.4, 2.7)  # mm: a different spacing per axis, so a mixed-up axis shows


@pytest.fixture(scope="module")
def phantoms():
    return {code: make_phantom(seed=3, shape=SMALL_SHAPE, spacing=SMALL_SPACING, orientation=code)
            for code in ALL_AXCODES}


def index_image(reference: sitk.Image) -> sitk.Image:
    """A uint32 image on `reference`'s grid whose value is the voxel's flat index + 1."""
    size = reference.GetSize()
    array = (np.arange(int(np.prod(size)), dtype=np.uint32) + 1).reshape(tuple(reversed(size)))
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(reference)
    return image


def assert_exact_grid(image: sitk.Image, reference: sitk.Image) -> None:
    assert image.GetSize() == reference.GetSize()
    assert image.GetSpacing() == reference.GetSpacing()
    assert image.GetOrigin() == reference.GetOrigin()
    assert image.GetDirection() == reference.GetDirection()


def test_the_cord_box_is_the_cord_extent_plus_the_margin_in_mm_along_each_axis():
    phantom = make_phantom(seed=3, shape=SMALL_SHAPE, spacing=SMALL_SPACING, orientation="PSR")
    margin = 4.0
    box = cord_box(phantom.image, phantom.cord, margin)
    cord_kji = sitk.GetArrayFromImage(phantom.cord) > 0
    for axis in range(3):
        hits = np.nonzero(cord_kji.any(axis=tuple(a for a in range(3) if a != 2 - axis)))[0]
        voxels = math.ceil(margin / phantom.image.GetSpacing()[axis])
        assert box.start[axis] == max(hits[0] - voxels, 0)
        assert box.start[axis] + box.size[axis] == min(hits[-1] + voxels + 1, phantom.image.GetSize()[axis])
    assert 0 < box.voxel_fraction < 1
    record = box.record()
    assert record["margin_mm"] == margin and record["index_start_ijk"] == list(box.start)


def test_crop_and_paste_back_land_on_the_exact_grid_in_all_48_orientations(phantoms):
    for code, phantom in phantoms.items():
        image = phantom.image
        box = cord_box(image, phantom.cord, 15.0)
        assert not box.covers_image, code
        cropped = crop(image, box)
        # the crop keeps spacing and direction, and its first voxel is where the box starts
        assert cropped.GetSpacing() == image.GetSpacing() and cropped.GetDirection() == image.GetDirection()
        assert np.allclose(cropped.GetOrigin(), image.TransformIndexToPhysicalPoint(box.start), atol=1e-9), code
        # an index image survives crop + paste exactly inside the box and is 0 outside
        indices = index_image(image)
        pasted = paste_back(crop(indices, box), image, box)
        assert_exact_grid(pasted, image)
        expected = sitk.GetArrayFromImage(indices)
        inside = np.zeros(expected.shape, dtype=bool)
        inside[tuple(slice(s, s + n) for s, n in zip(reversed(box.start), reversed(box.size)))] = True
        got = sitk.GetArrayFromImage(pasted)
        assert np.array_equal(got[inside], expected[inside]), code
        assert not got[~inside].any(), code
        # the rootlets lie within 15 mm of the cord: cropping them and pasting back gives the truth, bit for bit
        rootlets = paste_back(crop(phantom.rootlets, box), image, box)
        assert np.array_equal(sitk.GetArrayFromImage(rootlets), sitk.GetArrayFromImage(phantom.rootlets)), code


def test_crop_and_paste_back_on_an_oblique_grid():
    phantom = make_phantom(seed=4, shape=SMALL_SHAPE, spacing=SMALL_SPACING)
    angle = np.deg2rad(17.0)
    rotation = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    oblique = {}
    for name in ("image", "cord", "rootlets"):
        image = sitk.Image(getattr(phantom, name))
        image.SetDirection(tuple((rotation @ np.array(image.GetDirection()).reshape(3, 3)).ravel()))
        oblique[name] = image
    box = cord_box(oblique["image"], oblique["cord"], 15.0)
    pasted = paste_back(crop(oblique["rootlets"], box), oblique["image"], box)
    assert_exact_grid(pasted, oblique["image"])
    assert np.array_equal(sitk.GetArrayFromImage(pasted), sitk.GetArrayFromImage(oblique["rootlets"]))


def test_a_cord_on_another_grid_gives_the_same_physical_box():
    phantom = make_phantom(seed=5, shape=SMALL_SHAPE, spacing=SMALL_SPACING)
    box = cord_box(phantom.image, phantom.cord, 10.0)
    # the same cord stored in another orientation: resampled by nearest neighbour onto the image grid
    other = make_phantom(seed=5, shape=SMALL_SHAPE, spacing=SMALL_SPACING, orientation="ILP")
    assert cord_box(phantom.image, other.cord, 10.0) == box


def test_margin_checks_and_no_crop_cases():
    phantom = make_phantom(seed=6, shape=SMALL_SHAPE, spacing=SMALL_SPACING)
    assert DEFAULT_ROI_MARGIN_MM >= 20
    for bad in (-1, float("nan"), float("inf"), "wide"):
        with pytest.raises(UserError, match="ROI margin"):
            check_margin(bad)
    assert plan_roi(phantom.image, None) is None
    assert plan_roi(phantom.image, phantom.cord, enabled=False) is None
    assert plan_roi(phantom.image, phantom.cord, margin_mm=500.0) is None  # the box would be the whole image
    empty = sitk.Image(phantom.cord.GetSize(), phantom.cord.GetPixelID())
    empty.CopyInformation(phantom.cord)
    with pytest.raises(UserError, match="no voxel inside the image"):
        cord_box(phantom.image, empty)


def test_read_cord_takes_an_image_or_a_path(tmp_path):
    phantom = make_phantom(seed=6, shape=SMALL_SHAPE, spacing=SMALL_SPACING)
    assert read_cord(phantom.cord) is phantom.cord
    path = tmp_path / "cord.nii.gz"
    sitk.WriteImage(phantom.cord, str(path))
    from_file = read_cord(path)
    assert cord_box(phantom.image, from_file, 20.0) == cord_box(phantom.image, phantom.cord, 20.0)

"""Landmark postprocessing (landmarks/postprocess.py) on step-1 label maps made by the tests, no network.

The official TotalSpineSeg weights cannot be downloaded here, so its postprocessing is tested on label maps that
follow its step-1 scheme: the phantom's `spine` truth (which has a C1/C2 disc, as the phantom draws one) and maps
edited to look like real anatomy (no disc above C2/C3; only the C7/T1 landmark; a missed disc; specks).
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from RootletSegLogic.errors import UserError
from RootletSegLogic.landmarks import scheme
from RootletSegLogic.landmarks.evaluation import score_landmarks
from RootletSegLogic.landmarks.postprocess import landmarks_from_step1
from RootletSegLogic.levels.discs import landmarks_from_label_image
from RootletSegLogic.synthetic.phantom import make_phantom


def _edited(spine: sitk.Image, array: np.ndarray) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(spine)
    return image


def _same_grid(a: sitk.Image, b: sitk.Image) -> bool:
    return (a.GetSize() == b.GetSize() and a.GetSpacing() == b.GetSpacing() and a.GetOrigin() == b.GetOrigin()
            and a.GetDirection() == b.GetDirection())


@pytest.mark.parametrize("orientation", ["RAS", "LPS", "PSR", "IAL"])
def test_truth_labels_give_the_truth_cord_and_named_discs_on_the_input_grid(orientation):
    phantom = make_phantom(seed=2010, orientation=orientation)
    found = landmarks_from_step1(phantom.spine)
    assert _same_grid(found.cord, phantom.image) and _same_grid(found.discs, phantom.image)
    assert np.array_equal(sitk.GetArrayViewFromImage(found.cord), sitk.GetArrayViewFromImage(phantom.cord))
    score = score_landmarks(found, phantom)
    assert score["names_right"] and score["discs_found"] == 8
    assert score["max_disc_error_3d_mm"] <= 2.0 and score["max_disc_error_S_mm"] <= 1.0
    # one voxel per disc, each on the cord mask's centerline slice
    discs = sitk.GetArrayViewFromImage(found.discs)
    assert sorted(np.unique(discs[discs > 0]).tolist()) == list(range(2, 10))
    assert np.count_nonzero(discs) == 8
    # what `levels --discs` reads from the written image is what the result holds
    read_back, pmj = landmarks_from_label_image(found.discs)
    assert pmj is None
    assert [(p.value, p.position_ras) for p in read_back] == [(p.value, p.position_ras) for p in found.disc_points]
    assert found.summary()["pmj"] is None


def test_anisotropic_grid():
    phantom = make_phantom(seed=2011, shape=(40, 40, 90), spacing=(1.2, 1.1, 1.4), orientation="LIP")
    found = landmarks_from_step1(phantom.spine)
    score = score_landmarks(found, phantom)
    assert score["cord_dice"] == 1.0 and score["names_right"]
    assert score["max_disc_error_3d_mm"] <= 2.0


def test_real_anatomy_without_a_c1_c2_disc_places_c1_c2_from_the_vertebrae():
    """TotalSpineSeg has no C1/C2 disc: C1/C2 is the midpoint between the top of C2 (under C1) and C2/C3."""
    phantom = make_phantom(seed=2012)
    labels = sitk.GetArrayFromImage(phantom.spine)
    s_of_slice = 64.0 + (np.arange(labels.shape[0]) - 63.5)  # RAS default grid: slice k at S = k + 0.5 mm
    c1_c2_s = phantom.truth["discs"]["2"]["position_ras"][2]
    c1_c2_disc = (labels == scheme.DISC) & (np.abs(s_of_slice - c1_c2_s)[:, None, None] <= 3)
    labels[c1_c2_disc] = scheme.VERTEBRA  # the dens of C2 reaches up into C1
    found = landmarks_from_step1(_edited(phantom.spine, labels))
    values = [p.value for p in found.disc_points]
    assert values == list(range(2, 10))
    points = {p.value: p.position_ras for p in found.disc_points}
    c1_bottom = s_of_slice[np.nonzero((labels == scheme.VERTEBRA_C1).any(axis=(1, 2)))[0].min()]
    assert points[3][2] < points[2][2] < c1_bottom + 1.0
    # C2's top is the highest vertebra voxel under C1's top: the midpoint lies halfway to C2/C3
    top_of_c2 = s_of_slice[np.nonzero((labels == scheme.VERTEBRA).any(axis=(1, 2)))[0].max()]
    assert abs(points[2][2] - 0.5 * (top_of_c2 + points[3][2])) <= 1.5
    # no C1 vertebra visible: no C1/C2
    labels[labels == scheme.VERTEBRA_C1] = 0
    found = landmarks_from_step1(_edited(phantom.spine, labels))
    assert [p.value for p in found.disc_points] == list(range(3, 10))


def test_discs_are_named_from_the_c7_t1_landmark_alone():
    phantom = make_phantom(seed=2013)
    labels = sitk.GetArrayFromImage(phantom.spine)
    labels[labels == scheme.DISC_C2_C3] = scheme.DISC
    found = landmarks_from_step1(_edited(phantom.spine, labels))
    score = score_landmarks(found, phantom)
    assert score["names_right"] and score["max_disc_error_3d_mm"] <= 2.0


def test_a_missed_disc_between_landmarks_is_reported():
    phantom = make_phantom(seed=2014)
    labels = sitk.GetArrayFromImage(phantom.spine)
    s_of_slice = 64.0 + (np.arange(labels.shape[0]) - 63.5)
    c4_c5 = phantom.truth["discs"]["5"]["position_ras"][2]
    labels[(labels == scheme.DISC) & (np.abs(s_of_slice - c4_c5)[:, None, None] <= 3)] = scheme.VERTEBRA
    found = landmarks_from_step1(_edited(phantom.spine, labels))
    assert any("a disc was missed or split" in w for w in found.warnings)
    values = {p.value for p in found.disc_points}
    assert 3 in values and 8 in values  # the landmarks keep their names


def test_specks_are_ignored_and_said():
    phantom = make_phantom(seed=2015)
    labels = sitk.GetArrayFromImage(phantom.spine)
    labels[5, 2, 2] = scheme.DISC  # one stray voxel far from the spine
    labels[60, 45, 45] = scheme.DISC_C2_C3  # a stray landmark voxel must not rename anything
    found = landmarks_from_step1(_edited(phantom.spine, labels))
    assert any("fragment" in w for w in found.warnings)
    assert score_landmarks(found, phantom)["names_right"]


def test_cord_is_the_largest_component():
    phantom = make_phantom(seed=2016)
    labels = sitk.GetArrayFromImage(phantom.spine)
    labels[2:5, 2:5, 2:5] = scheme.CORD  # a blob far from the cord
    found = landmarks_from_step1(_edited(phantom.spine, labels))
    assert np.array_equal(sitk.GetArrayViewFromImage(found.cord), sitk.GetArrayViewFromImage(phantom.cord))


@pytest.mark.parametrize("edit, message", [
    (lambda a: np.where(a == scheme.CORD, scheme.CANAL, a), "no spinal cord"),
    (lambda a: np.where(np.isin(a, scheme.DISC_VALUES_STEP1), scheme.VERTEBRA, a), "no intervertebral disc"),
    (lambda a: np.where(np.isin(a, scheme.DISC_VALUES_STEP1), scheme.DISC, a), "no landmark disc"),
])
def test_what_cannot_be_found_is_one_sentence(edit, message):
    phantom = make_phantom(seed=2017)
    labels = edit(sitk.GetArrayFromImage(phantom.spine)).astype(np.uint8)
    with pytest.raises(UserError, match=message):
        landmarks_from_step1(_edited(phantom.spine, labels))


def test_phantom_spine_labels_follow_the_step1_scheme():
    phantom = make_phantom(seed=3)
    labels = sitk.GetArrayViewFromImage(phantom.spine)
    assert set(np.unique(labels).tolist()) == {0, 1, 2, 3, 6, 7, 8, 9}
    assert np.array_equal(labels == scheme.CORD, sitk.GetArrayViewFromImage(phantom.cord) > 0)
    rootlets = sitk.GetArrayViewFromImage(phantom.rootlets) > 0
    assert np.all(labels[rootlets] == scheme.CANAL)  # rootlets lie in the CSF of the canal, outside the cord
    assert _same_grid(phantom.spine, phantom.image)

"""The embedded demo-spine model, run for real (nnU-Net on CPU), on phantoms whose seeds it never saw (it was
trained on seeds 0..99): cord Dice >= 0.9, every disc within 2 mm of truth with the right name, the cord on exactly
the input grid in every orientation; and the landmark-model checks that fail before any inference.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from RootletSegLogic.errors import UserError
from RootletSegLogic.landmarks.evaluation import score_landmarks
from RootletSegLogic.pipeline.landmarks import resolve_landmark_model
from RootletSegLogic.segmentation.landmark_inference import LandmarkDetector
from RootletSegLogic.segmentation.registry import EMBEDDED_DEMO_SPINE_PATH, lookup
from RootletSegLogic.synthetic.phantom import make_phantom

HELD_OUT = (2100, 2101, 2102)
ORIENTATIONS = ("LPS", "PIR", "SAL")


@pytest.fixture(scope="module")
def detector():
    return LandmarkDetector(resolve_landmark_model("demo-spine"), device="cpu", threads=1)


def _same_grid(a: sitk.Image, b: sitk.Image) -> bool:
    return (a.GetSize() == b.GetSize() and a.GetSpacing() == b.GetSpacing() and a.GetOrigin() == b.GetOrigin()
            and a.GetDirection() == b.GetDirection())


@pytest.mark.parametrize("seed", HELD_OUT)
def test_cord_and_discs_on_held_out_phantoms(detector, seed):
    phantom = make_phantom(seed=seed)
    score = score_landmarks(detector.detect(phantom.image), phantom)
    assert score["cord_dice"] >= 0.9, score
    assert score["discs_found"] == score["discs_expected"] == 8 and score["names_right"], score
    assert score["max_disc_error_3d_mm"] <= 2.0, score


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_cord_is_on_the_exact_input_grid_in_every_orientation(detector, orientation):
    phantom = make_phantom(seed=2103, orientation=orientation)
    found = detector.detect(phantom.image)
    assert _same_grid(found.cord, phantom.image) and _same_grid(found.discs, phantom.image)
    assert found.cord.GetPixelID() == sitk.sitkUInt8
    score = score_landmarks(found, phantom)
    assert score["cord_dice"] >= 0.9 and score["names_right"] and score["max_disc_error_3d_mm"] <= 2.0, score


def test_registry_lists_both_landmark_models():
    assert lookup("totalspineseg").kind == "landmarks" and lookup("tss").name == "totalspineseg"
    assert lookup("totalspineseg").url.endswith("Dataset101_TotalSpineSeg_step1_r20260730.zip")
    assert lookup("demo-spine").embedded and EMBEDDED_DEMO_SPINE_PATH.is_dir()
    assert lookup("demo").kind == "rootlets"


def test_a_rootlet_model_is_refused_as_landmark_model(tmp_path):
    with pytest.raises(UserError, match="rootlet model, not a landmark model"):
        resolve_landmark_model("demo")
    with pytest.raises(UserError, match="not a spine landmark model"):
        resolve_landmark_model(lookup("demo").embedded_path)


def test_a_missing_or_damaged_landmark_model_is_one_sentence(tmp_path):
    with pytest.raises(UserError):
        resolve_landmark_model(tmp_path / "nowhere")
    import shutil

    damaged = tmp_path / "damaged"
    shutil.copytree(EMBEDDED_DEMO_SPINE_PATH, damaged)
    checkpoint = next(damaged.rglob("checkpoint_final.pth"))
    checkpoint.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="damaged"):
        LandmarkDetector(resolve_landmark_model(damaged), device="cpu", threads=1)


def test_demo_spine_labels_are_the_step1_scheme():
    dataset = json.loads(next(EMBEDDED_DEMO_SPINE_PATH.rglob("dataset.json")).read_text())
    assert dataset["labels"]["cord"] == 9 and dataset["labels"]["canal"] == 8
    assert dataset["labels"]["disc_C2_C3"] == 2 and dataset["labels"]["disc_C7_T1"] == 3
    assert np.all(np.diff(sorted(dataset["labels"].values())) == 1)

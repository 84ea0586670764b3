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


# TotalSpineSeg's step-1 dataset.json (neuropoly/totalspineseg resources/datasets/dataset_step1.json): region-based
TSS_STEP1_DATASET = {
    "channel_names": {"0": "MRI"},
    "labels": {"background": 0, "disc": [1, 2, 3, 4, 5], "disc_C2_C3": 2, "disc_C7_T1": 3, "disc_T12_L1": 4,
               "disc_L5_S": 5, "vertebrae": [6, 7], "vertebrae_C1": 7, "canal": [8, 9], "cord": 9},
    "regions_class_order": [1, 2, 3, 4, 5, 6, 7, 8, 9],
    "numTraining": 0,
    "file_ending": ".nii.gz",
}


def test_a_model_shaped_like_totalspineseg_step1_loads_and_writes_step1_values(tmp_path):
    """The official weights cannot be downloaded here: an untrained network in the official folder's shape (region
    labels, trainer nnUNetTrainerDAExt, fold_0 with checkpoint_best and checkpoint_final) goes through the same
    checks and predictor, and its output holds step-1 values only, on exactly the input grid."""
    import sys
    from pathlib import Path

    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from model_factory import build_network, small_plans

    plans = small_plans(patch_size=(32, 32, 32))
    trainer_dir = tmp_path / "Dataset101_TotalSpineSeg_step1" / "nnUNetTrainerDAExt__nnUNetPlans__3d_fullres"
    (trainer_dir / "fold_0").mkdir(parents=True)
    (trainer_dir / "plans.json").write_text(json.dumps(plans))
    (trainer_dir / "dataset.json").write_text(json.dumps(TSS_STEP1_DATASET))
    regions = {f"region{i}": i for i in range(9)}  # nine sigmoid heads, one per region
    for name in ("checkpoint_best.pth", "checkpoint_final.pth"):
        torch.save({"network_weights": build_network(plans, regions, seed=1).state_dict(),
                    "trainer_name": "nnUNetTrainerDAExt",
                    "init_args": {"plans": plans, "configuration": "3d_fullres", "fold": 0,
                                  "dataset_json": TSS_STEP1_DATASET},
                    "inference_allowed_mirroring_axes": (0, 1, 2), "current_epoch": 0}, trainer_dir / "fold_0" / name)
    detector = LandmarkDetector(resolve_landmark_model(tmp_path / "Dataset101_TotalSpineSeg_step1"), "cpu", threads=1)
    phantom = make_phantom(seed=2104, shape=(32, 32, 48), orientation="PSR")
    spine = detector.segmenter.segment(phantom.image)
    assert _same_grid(spine, phantom.image)
    assert set(np.unique(sitk.GetArrayViewFromImage(spine)).tolist()) <= set(range(10))

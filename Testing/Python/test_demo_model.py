"""The committed demo model (RootletSegLogic/synthetic/models/demo): a valid nnU-Net v2 model that segments held-out phantoms.

Runs the real `predictor.segment_image` (real nnU-Net predictor, CPU) on phantoms whose seeds (>= 1000) were never
used for training (seeds 0..79): the default 48x48x128 phantom in several orientations, a 64x320x320 sagittal
phantom at 0.8 mm (LAS) and a crop of one around its cord. The model was trained for any field of view and spacing
(scripts/train_demo_model.py), so its patch is not the phantom's size.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import REPO_ROOT

from RootletSegLogic.images.orientation import sct_to_axcodes
from RootletSegLogic.segmentation.model_folder import load_model_folder
from RootletSegLogic.synthetic.phantom import LEVELS, make_phantom

DEMO_DIR = REPO_ROOT / "RootletSegLogic" / "synthetic" / "models" / "demo"
MIN_DICE = 0.8


@pytest.fixture(scope="module")
def demo_model():
    return load_model_folder(DEMO_DIR)


def test_demo_model_layout_and_metadata(demo_model):
    assert demo_model.trainer_dir.name == "nnUNetTrainer__nnUNetPlans__3d_fullres"
    assert demo_model.folds == ["all"]
    checkpoint_path = demo_model.checkpoints["all"]
    assert checkpoint_path.name == "checkpoint_final.pth"
    assert checkpoint_path.stat().st_size < 5_000_000
    dataset = demo_model.dataset_json
    assert dataset["channel_names"] == {"0": "T2w"}
    assert dataset["labels"] == {"background": 0, **{f"lvl{i}": i for i in range(1, 10)}}
    assert dataset["file_ending"] == ".nii.gz"
    assert sct_to_axcodes(dataset["image_orientation"]) == "RAS"
    config = demo_model.plans_json["configurations"]["3d_fullres"]
    assert config["architecture"]["network_class_name"] == "dynamic_network_architectures.architectures.unet.PlainConvUNet"
    assert config["patch_size"] == [192, 48, 48]  # (S-I, A-P, R-L) at 1 mm: not the phantom's size
    assert config["spacing"] == [1.0, 1.0, 1.0]
    assert config["normalization_schemes"] == ["ZScoreNormalization"]
    assert demo_model.plans_json["transpose_forward"] == [0, 1, 2]
    assert demo_model.plans_json["transpose_backward"] == [0, 1, 2]
    json.dumps(demo_model.plans_json)


def test_demo_checkpoint_is_nnunet_shaped(demo_model):
    import torch

    checkpoint = torch.load(demo_model.checkpoints["all"], map_location="cpu", weights_only=False)
    assert checkpoint["trainer_name"] == "nnUNetTrainer"
    assert checkpoint["init_args"]["configuration"] == "3d_fullres"
    assert checkpoint["init_args"]["plans"] == demo_model.plans_json
    assert checkpoint["init_args"]["dataset_json"] == demo_model.dataset_json
    assert tuple(checkpoint["inference_allowed_mirroring_axes"]) == (2,)
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    arch = demo_model.plans_json["configurations"]["3d_fullres"]["architecture"]
    network = get_network_from_plans(arch["network_class_name"], arch["arch_kwargs"], arch["_kw_requires_import"],
                                     1, 10, allow_init=False, deep_supervision=False)
    network.load_state_dict(checkpoint["network_weights"])  # strict: every key fits


def _dice(prediction: np.ndarray, truth: np.ndarray, level: int) -> float:
    p, t = prediction == level, truth == level
    return float(2 * (p & t).sum() / (p.sum() + t.sum()))


@pytest.mark.parametrize("seed, orientation", [(1000, "RAS"), (1001, "LPS"), (1002, "PIR")])
def test_demo_model_segments_held_out_phantoms(demo_model, seed, orientation):
    from RootletSegLogic.segmentation.predictor import segment_image

    phantom = make_phantom(seed=seed, orientation=orientation)
    labels = segment_image(phantom.image, demo_model, device="cpu")
    assert labels.GetSize() == phantom.image.GetSize()
    assert labels.GetSpacing() == phantom.image.GetSpacing()
    assert labels.GetOrigin() == phantom.image.GetOrigin()
    assert labels.GetDirection() == phantom.image.GetDirection()
    prediction = sitk.GetArrayFromImage(labels)
    truth = sitk.GetArrayFromImage(phantom.rootlets)
    assert set(np.unique(prediction)) <= {0, *LEVELS}
    dice = {level: _dice(prediction, truth, level) for level in LEVELS}
    assert all(value >= MIN_DICE for value in dice.values()), dice


@pytest.mark.parametrize("seed, cropped", [(1003, False), (1004, True)])
def test_demo_model_segments_a_large_sagittal_field_of_view_and_crops_of_it(demo_model, seed, cropped):
    from RootletSegLogic.segmentation.predictor import segment_image
    from RootletSegLogic.segmentation.roi import crop, cord_box

    phantom = make_phantom(seed=seed, shape=(64, 320, 320), spacing=(0.8, 0.8, 0.8), orientation="LAS")
    image, truth = phantom.image, phantom.rootlets
    if cropped:  # the cord's box + 15 mm: a field of view the network never saw whole
        box = cord_box(image, phantom.cord, 15.0)
        image, truth = crop(image, box), crop(truth, box)
    labels = segment_image(image, demo_model, device="cpu")
    prediction, truth = sitk.GetArrayFromImage(labels), sitk.GetArrayFromImage(truth)
    dice = {level: _dice(prediction, truth, level) for level in LEVELS}
    assert all(value >= MIN_DICE for value in dice.values()), dice


def test_training_samples_imitate_sliding_window_tiles_that_hold_the_levels():
    """scripts/demo_model_samples.py: each random field of view holds the levels, each patch holds them along S-I
    (every tile of an image up to ~270 mm does at inference), and a box smaller than the patch is zero-padded
    centred, as nnU-Net pads."""
    import sys

    sys.path.insert(0, str(REPO_ROOT / "scripts"))
    import demo_model_recipe as recipe
    import demo_model_samples as samples

    rng = np.random.default_rng(0)
    for _ in range(300):
        size = int(rng.integers(60, 300))
        keep = tuple(sorted(int(v) for v in rng.integers(0, size, 2)))
        start, stop = samples._random_box_axis(rng, size, keep, int(rng.integers(10, 400)))
        assert 0 <= start <= keep[0] and keep[1] < stop <= size
        box_length = int(rng.integers(20, 260))
        inner = tuple(sorted(int(v) for v in rng.integers(0, min(box_length, 150), 2)))
        source_start, source_stop, destination = samples._patch_axis(rng, box_length, 192, inner)
        if box_length <= 192:
            assert (source_start, source_stop) == (0, box_length) and destination == (192 - box_length) // 2
        else:
            assert source_stop - source_start == 192 and destination == 0
            if inner[1] - inner[0] < 192:
                assert source_start <= inner[0] and inner[1] < source_stop
    plans = recipe.make_plans(recipe.intensity_properties([make_phantom(seed=0).image]))
    case = samples.pool_case(1, plans, recipe.make_dataset_json())
    image, labels = samples.tile_sample(case, np.random.default_rng(1))
    assert image.shape == labels.shape == tuple(recipe.PATCH_ZYX)
    rows = np.nonzero(labels.max(axis=(1, 2)) > 0)[0]
    assert rows.size and set(np.unique(labels)) <= set(range(10))
    # --far-fraction: fields of view as wide A-P as a wide pool phantom, so that some tiles hold no rootlet at all
    # (a sagittal scan's tiles in front of or behind the cord), while the usual fields of view always hold some
    wide = samples.pool_case(2, plans, recipe.make_dataset_json(), (64.0, 272.0, 240.0))
    far_rng, near_rng = np.random.default_rng(2), np.random.default_rng(2)
    far_empty = sum(not samples.tile_sample(wide, far_rng, far_fraction=1.0)[1].any() for _ in range(40))
    near_empty = sum(not samples.tile_sample(wide, near_rng, far_fraction=0.0)[1].any() for _ in range(40))
    assert far_empty >= 4 and far_empty > near_empty, (far_empty, near_empty)

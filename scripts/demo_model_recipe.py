"""The demo model's description and preprocessing, shared by its training and evaluation scripts.

- plans.json: one `3d_fullres` configuration, PlainConvUNet with features 8..64 over 6 stages, spacing 1 mm,
  patch (z, y, x) = (192, 48, 48) voxels: 192 mm S-I holds PMJ..T1 (about 110 mm) in every sliding-window tile
  of an image up to about 270 mm long; ZScoreNormalization; transpose_forward/backward [0, 1, 2].
- dataset.json: channel "T2w", labels background + lvl1..lvl9 (lvl1 never occurs), image_orientation "LPI"
  (SCT "from" letters = RAS "to" letters).
- `preprocess_case`: exactly nnU-Net's inference preprocessing (`DefaultPreprocessor.run_case_npy`: RAS, z-score,
  resampling to 1 mm).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from RootletSegLogic.images.orientation import Reorientation, axcodes_to_sct  # noqa: E402

TRAINER_FOLDER = "nnUNetTrainer__nnUNetPlans__3d_fullres"
MODEL_ORIENTATION = "RAS"  # "to" letters; dataset.json says "LPI" in SCT's "from" letters
FEATURES = [8, 16, 32, 64, 64, 64]
STRIDES = [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2], [2, 1, 1]]
PATCH_ZYX = [192, 48, 48]  # voxels (S-I, A-P, R-L) at 1 mm; divisible by the strides' 32 x 16 x 16
SPACING_ZYX = [1.0, 1.0, 1.0]  # mm
MIRROR_AXES = (2,)  # preprocessed (z, y, x): only the R-L axis may be mirrored
NUM_CLASSES = 10


# ------------------------------------------------------------------------------------------- model description
def make_dataset_json() -> dict:
    labels = {"background": 0}
    labels.update({f"lvl{i}": i for i in range(1, NUM_CLASSES)})
    return {
        "channel_names": {"0": "T2w"},
        "labels": labels,
        "numTraining": 0,
        "file_ending": ".nii.gz",
        "image_orientation": axcodes_to_sct(MODEL_ORIENTATION),
        "name": "RootletSeg demo (synthetic phantom)",
        "description": "Small demo model trained on RootletSegLogic.phantom; levels 2..9 = C2..T1. Not for real MRI.",
    }


def make_plans(intensity_properties: dict) -> dict:
    n = len(FEATURES)
    arch_kwargs = {
        "n_stages": n,
        "features_per_stage": FEATURES,
        "conv_op": "torch.nn.modules.conv.Conv3d",
        "kernel_sizes": [[3, 3, 3]] * n,
        "strides": STRIDES,
        "n_conv_per_stage": [2] * n,
        "n_conv_per_stage_decoder": [2] * (n - 1),
        "conv_bias": True,
        "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
        "norm_op_kwargs": {"eps": 1e-05, "affine": True},
        "dropout_op": None,
        "dropout_op_kwargs": None,
        "nonlin": "torch.nn.LeakyReLU",
        "nonlin_kwargs": {"inplace": True},
    }
    configuration = {
        "data_identifier": "nnUNetPlans_3d_fullres",
        "preprocessor_name": "DefaultPreprocessor",
        "batch_size": 2,
        "patch_size": PATCH_ZYX,
        "median_image_size_in_voxels": [float(v) for v in PATCH_ZYX],
        "spacing": SPACING_ZYX,
        "normalization_schemes": ["ZScoreNormalization"],
        "use_mask_for_norm": [False],
        "resampling_fn_data": "resample_data_or_seg_to_shape",
        "resampling_fn_seg": "resample_data_or_seg_to_shape",
        "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None},
        "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None},
        "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
        "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, "order_z": 0, "force_separate_z": None},
        "architecture": {
            "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
            "arch_kwargs": arch_kwargs,
            "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
        },
        "batch_dice": True,
    }
    return {
        "dataset_name": "Dataset901_RootletSegDemoPhantom",
        "plans_name": "nnUNetPlans",
        "original_median_spacing_after_transp": SPACING_ZYX,
        "original_median_shape_after_transp": PATCH_ZYX,
        "image_reader_writer": "SimpleITKIO",
        "transpose_forward": [0, 1, 2],
        "transpose_backward": [0, 1, 2],
        "configurations": {"3d_fullres": configuration},
        "experiment_planner_used": "RootletSeg scripts/train_demo_model.py (hand-written plans)",
        "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {"0": intensity_properties},
    }


def build_network(plans: dict, deep_supervision: bool):
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    arch = plans["configurations"]["3d_fullres"]["architecture"]
    return get_network_from_plans(
        arch["network_class_name"], arch["arch_kwargs"], arch["_kw_requires_import"],
        1, NUM_CLASSES, allow_init=True, deep_supervision=deep_supervision,
    )


# ------------------------------------------------------------------------------------------------ preprocessing
def preprocess_case(image: sitk.Image, labels: sitk.Image | None, plans: dict, dataset_json: dict):
    """(data (1, z, y, x) float32, seg (1, z, y, x) int8 or None) exactly as nnU-Net inference preprocesses it."""
    from nnunetv2.preprocessing.preprocessors.default_preprocessor import (
        DefaultPreprocessor,
    )
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    plans_manager = PlansManager(plans)
    configuration_manager = plans_manager.get_configuration("3d_fullres")
    reorientation = Reorientation(image, MODEL_ORIENTATION)
    oriented = reorientation.apply(image)
    data = sitk.GetArrayFromImage(oriented)[None].astype(np.float32)
    seg = None
    if labels is not None:
        seg = reorientation.apply_array_zyx(sitk.GetArrayFromImage(labels))[None].astype(np.int16)
    properties = {"spacing": list(oriented.GetSpacing())[::-1]}
    data, seg, _ = DefaultPreprocessor(verbose=False).run_case_npy(
        data, seg, properties, plans_manager, configuration_manager, dataset_json
    )
    return data, seg


def intensity_properties(images) -> dict:
    values = np.concatenate([sitk.GetArrayViewFromImage(im).ravel()[::97] for im in images]).astype(np.float64)
    return {
        "max": float(values.max()), "mean": float(values.mean()), "median": float(np.median(values)),
        "min": float(values.min()), "percentile_00_5": float(np.percentile(values, 0.5)),
        "percentile_99_5": float(np.percentile(values, 99.5)), "std": float(values.std()),
    }


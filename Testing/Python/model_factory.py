"""Build valid nnU-Net v2 model folders with UNTRAINED networks, for tests and benchmarks (not part of the package).

The folder has SCT's layout (`nnUNetTrainer__nnUNetPlans__3d_fullres/` with `dataset.json`, `plans.json`,
`fold_N/checkpoint_final.pth`) and checkpoints shaped like nnU-Net's own (`network_weights`, `trainer_name`,
`init_args.configuration`, `inference_allowed_mirroring_axes`). The network is nnU-Net's PlainConvUNet with its
He initialisation, seeded, so its output is deterministic (meaningless, but a pure function of the input).

Two kinds of plans:
- `small_plans(...)`: written here by hand (same keys and meaning as nnU-Net's planner output), a tiny 3-stage
  U-Net for fast tests.
- `full_size_plans(...)`: produced by running nnU-Net's own `ExperimentPlanner` (its default 8 GB target) on a
  fabricated dataset fingerprint (N identical cases of the given shape and spacing). For a 64x320x320 (z, y, x)
  volume at 0.8 mm this gives the patch 48x224x224 and a ~30.5 M-parameter network, what nnU-Net would train.

Usage:
    from model_factory import make_model_folder, small_plans, full_size_plans
    root = make_model_folder(tmp_path / "model", small_plans(), seed=0)
    model = RootletSegLogic.model_folder.load_model_folder(root)
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Dict, Optional, Sequence

TRAINER_FOLDER = "nnUNetTrainer__nnUNetPlans__3d_fullres"


def rootlet_labels(levels: Sequence[int] = range(2, 10)) -> Dict[str, int]:
    """dataset.json labels as the RootletSeg model names them: background 0, lvl1 .. lvl9 (C2 = 2 .. T1 = 9).

    nnU-Net v2 needs consecutive label values (its output value is the class index), so lvl1 is declared
    although no level-1 rootlets exist; a model trained on them never predicts it.
    """
    labels = {"background": 0}
    labels.update({f"lvl{value}": value for value in range(1, max(levels) + 1)})
    return labels


def dataset_json(labels: Optional[Dict[str, int]] = None, image_orientation: Optional[str] = None,
                 num_training: int = 76, channel_name: str = "MRI") -> dict:
    """A dataset.json; `image_orientation` is SCT's key ("from" letters, e.g. "LPI"), left out when None."""
    content = {
        "channel_names": {"0": channel_name},
        "labels": dict(labels or rootlet_labels()),
        "numTraining": num_training,
        "file_ending": ".nii.gz",
    }
    if image_orientation is not None:
        content["image_orientation"] = image_orientation
    return content


def _intensity_properties() -> dict:
    return {"0": {"max": 1000.0, "mean": 300.0, "median": 280.0, "min": 0.0,
                  "percentile_00_5": 10.0, "percentile_99_5": 900.0, "std": 150.0}}


def small_plans(patch_size=(16, 32, 32), spacing=(1.0, 1.0, 1.0), features=(4, 8, 16),
                normalization: str = "ZScoreNormalization", transpose_forward=(0, 1, 2)) -> dict:
    """Hand-written plans for a tiny 3-stage PlainConvUNet (patch and spacing in nnU-Net's transposed (z, y, x))."""
    n_stages = len(features)
    strides = [[1, 1, 1]] + [[2, 2, 2]] * (n_stages - 1)
    transpose_backward = [list(transpose_forward).index(axis) for axis in range(3)]
    fullres = {
        "data_identifier": "nnUNetPlans_3d_fullres",
        "preprocessor_name": "DefaultPreprocessor",
        "batch_size": 2,
        "patch_size": list(patch_size),
        "median_image_size_in_voxels": [float(p) * 2 for p in patch_size],
        "spacing": list(spacing),
        "normalization_schemes": [normalization],
        "use_mask_for_norm": [False],
        "resampling_fn_data": "resample_data_or_seg_to_shape",
        "resampling_fn_seg": "resample_data_or_seg_to_shape",
        "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None},
        "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None},
        "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
        "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, "order_z": 0, "force_separate_z": None},
        "architecture": {
            "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
            "arch_kwargs": {
                "n_stages": n_stages,
                "features_per_stage": list(features),
                "conv_op": "torch.nn.modules.conv.Conv3d",
                "kernel_sizes": [[3, 3, 3]] * n_stages,
                "strides": strides,
                "n_conv_per_stage": [2] * n_stages,
                "n_conv_per_stage_decoder": [2] * (n_stages - 1),
                "conv_bias": True,
                "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
                "norm_op_kwargs": {"eps": 1e-05, "affine": True},
                "dropout_op": None,
                "dropout_op_kwargs": None,
                "nonlin": "torch.nn.LeakyReLU",
                "nonlin_kwargs": {"inplace": True},
            },
            "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
        },
        "batch_dice": False,
    }
    return {
        "dataset_name": "Dataset999_Factory",
        "plans_name": "nnUNetPlans",
        "original_median_spacing_after_transp": list(spacing),
        "original_median_shape_after_transp": [int(p) * 2 for p in patch_size],
        "image_reader_writer": "SimpleITKIO",
        "transpose_forward": list(transpose_forward),
        "transpose_backward": transpose_backward,
        "configurations": {"3d_fullres": fullres},
        "experiment_planner_used": "hand-written (Testing/Python/model_factory.py)",
        "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": _intensity_properties(),
    }


def full_size_plans(shape_zyx=(64, 320, 320), spacing_zyx=(0.8, 0.8, 0.8), labels: Optional[Dict[str, int]] = None,
                    num_training: int = 76) -> dict:
    """Plans from nnU-Net's default ExperimentPlanner run on a fabricated fingerprint (`num_training` cases of
    `shape_zyx` voxels at `spacing_zyx` mm). nnU-Net's printing goes to a buffer; env vars are restored after."""
    from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import (
        ExperimentPlanner,
    )

    name = "Dataset999_Factory"
    saved = {key: os.environ.get(key) for key in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}
    with tempfile.TemporaryDirectory(prefix="rootletseg_planner_") as tmp:
        raw = Path(tmp) / "raw" / name
        pre = Path(tmp) / "preprocessed" / name
        raw.mkdir(parents=True)
        pre.mkdir(parents=True)
        content = dataset_json(labels, num_training=num_training)
        content["overwrite_image_reader_writer"] = "SimpleITKIO"
        content["dataset"] = {  # file names only; the planner never opens them with a fixed reader/writer
            f"case{i:03d}": {"images": [f"imagesTr/case{i:03d}_0000.nii.gz"], "label": f"labelsTr/case{i:03d}.nii.gz"}
            for i in range(num_training)
        }
        (raw / "dataset.json").write_text(json.dumps(content))
        fingerprint = {
            "spacings": [list(spacing_zyx)] * num_training,
            "shapes_after_crop": [list(shape_zyx)] * num_training,
            "median_relative_size_after_cropping": 1.0,
            "foreground_intensity_properties_per_channel": _intensity_properties(),
        }
        (pre / "dataset_fingerprint.json").write_text(json.dumps(fingerprint))
        os.environ.update({"nnUNet_raw": str(raw.parent), "nnUNet_preprocessed": str(pre.parent),
                           "nnUNet_results": str(Path(tmp) / "results")})
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                planner = ExperimentPlanner(name)
                plans = planner.plan_experiment()
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        plans = json.loads((pre / "nnUNetPlans.json").read_text())
    plans["configurations"] = {"3d_fullres": plans["configurations"]["3d_fullres"]}
    return plans


def build_network(plans: dict, labels: Dict[str, int], seed: int = 0):
    """nnU-Net's network for `plans` (3d_fullres), without deep supervision, He-initialised with `seed`."""
    import torch
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    arch = plans["configurations"]["3d_fullres"]["architecture"]
    torch.manual_seed(seed)
    return get_network_from_plans(arch["network_class_name"], arch["arch_kwargs"], arch["_kw_requires_import"],
                                  1, len(labels), allow_init=True, deep_supervision=False)


def make_model_folder(root, plans: Optional[dict] = None, dataset: Optional[dict] = None, folds=(0,), seed: int = 0,
                      trainer: str = "nnUNetTrainer", checkpoint_name: str = "checkpoint_final.pth") -> Path:
    """Write an untrained model folder under `root` (created); returns `root`. Fold n is seeded `seed + n`."""
    import torch

    plans = copy.deepcopy(plans or small_plans())
    dataset = dataset or dataset_json()
    trainer_dir = Path(root) / f"{trainer}__nnUNetPlans__3d_fullres"
    trainer_dir.mkdir(parents=True, exist_ok=True)
    (trainer_dir / "plans.json").write_text(json.dumps(plans, indent=2))
    (trainer_dir / "dataset.json").write_text(json.dumps(dataset, indent=2))
    for index, fold in enumerate(folds):
        network = build_network(plans, dataset["labels"], seed=seed + index)
        fold_dir = trainer_dir / f"fold_{fold}"
        fold_dir.mkdir(exist_ok=True)
        torch.save({
            "network_weights": network.state_dict(),
            "trainer_name": trainer,
            "init_args": {"plans": plans, "configuration": "3d_fullres", "fold": fold, "dataset_json": dataset},
            "inference_allowed_mirroring_axes": (0, 1, 2),
            "current_epoch": 0,
        }, fold_dir / checkpoint_name)
    return Path(root)


def count_parameters(plans: dict, labels: Optional[Dict[str, int]] = None) -> int:
    network = build_network(plans, labels or rootlet_labels())
    return sum(p.numel() for p in network.parameters())


if __name__ == "__main__":  # print the full-size configuration
    full = full_size_plans()
    config = full["configurations"]["3d_fullres"]
    print("patch", config["patch_size"], "spacing", config["spacing"], "parameters", count_parameters(full))

#!/usr/bin/env python
"""Train the small demo nnU-Net v2 model on synthetic phantoms, reproducibly, on CPU; print per-level Dice.

    .venv/bin/python scripts/train_demo_model.py --out /tmp/demo          # train + evaluate
    .venv/bin/python scripts/train_demo_model.py --evaluate-only          # evaluate the committed model

The committed model is this two-stage recipe (one CPU thread each):
    .venv/bin/python scripts/train_demo_model.py --out /tmp/stage1 --iterations 1400
    .venv/bin/python scripts/train_demo_model.py --out /tmp/stage2 --init-from /tmp/stage1 --iterations 450 \
        --far-fraction 0.35 --pool-ap-mm 272 --lr 1e-3
Stage 1 learns the levels from tiles near the cord; stage 2 adds tiles far in front of and behind it (wide A-P
fields of view), without which a 64x320x320 sagittal scan got false rootlets more than 25 mm from the cord.

What it writes (`--out`, required for training) is an nnU-Net v2 trained-model folder as SCT loads it: `nnUNetTrainer__nnUNetPlans__3d_fullres/{dataset.json, plans.json, fold_all/checkpoint_final.pth}`.

The model must work on any field of view and spacing (a default 48x48x128 mm phantom, a 51x256x256 mm sagittal
one at 0.8 mm, crops around the cord), so it cannot learn where the levels lie in the image: it has to find them
from the anatomy (the levels are counted down from the pontomedullary junction, which every patch holds).
- plans.json: one `3d_fullres` configuration, PlainConvUNet with features 8..64 over 6 stages, spacing 1 mm,
  patch (z, y, x) = (192, 48, 48) voxels: 192 mm S-I holds PMJ..T1 (about 110 mm) in every sliding-window tile
  of an image up to about 270 mm long; ZScoreNormalization; transpose_forward/backward [0, 1, 2].
- dataset.json: channel "T2w", labels background + lvl1..lvl9 (lvl1 never occurs), image_orientation "LPI"
  (SCT "from" letters = RAS "to" letters).
- Training pool: phantoms of seeds 0..N-1, each sampled on a 64x112x240 mm (R-L, A-P, S-I) box at its own spacing
  (1 mm, an isotropic 0.7-1.25 mm, or an anisotropic grid), reoriented to RAS and preprocessed exactly as
  inference will (nnU-Net's `DefaultPreprocessor.run_case_npy`: z-score, resampling to 1 mm).
- Each training sample imitates one sliding-window tile of an unseen image: a random field of view (a box holding
  the canal and the levels, 32-112 mm in-plane, PMJ-to-T1 plus 3-40 mm margins S-I), z-scored over that box as
  nnU-Net normalises a whole image (z-scoring commutes with the linear resampling), then a random patch inside it,
  zero-padded where the box is smaller than the patch (as nnU-Net pads); S-I the patch always holds PMJ..T1.
- Own short training loop (no nnU-Net trainer, no worker processes): CE + soft Dice with deep supervision, AdamW,
  poly learning-rate decay; augmentation: left-right flip, contrast/brightness, Gaussian noise (no S-I flip).
- Evaluation on held-out seeds >= 1000 with a real `nnUNetPredictor` (tile step 0.5, Gaussian weighting, no
  mirroring, as SCT runs it) on the input grid: the default 48x48x128 phantom at 1 mm (RAS), the 64x320x320
  phantom at 0.8 mm (LAS), and crops of both around the cord (cord box + 15 mm in-plane, PMJ..T1 +- 15 mm S-I).
- Stage 1 (1400 iterations, batch 2, 80 phantoms, lr 3e-3, --threads 1): 35.5 min of iterations on one CPU thread
  of a 2-core machine (37 min with the data); stage 2 (450 iterations): 10.5 min (13.5 min with the wider phantoms);
  figures in RootletSegLogic/synthetic/models/demo/README.md.
- Reproducible: phantoms by seed, torch and sampling by --seed; CPU results can differ in the last bits with another
  thread count or CPU. Weights are stored as float16 (nnU-Net's `load_state_dict` casts them back to float32); the
  evaluation reads the checkpoint back from disk, so the printed Dice is that of the written file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from RootletSegLogic.images.orientation import Reorientation, axcodes_to_sct
from RootletSegLogic.synthetic.phantom import LEVELS, make_phantom  # noqa: E402

TRAINER_FOLDER = "nnUNetTrainer__nnUNetPlans__3d_fullres"
MODEL_ORIENTATION = "RAS"  # "to" letters; dataset.json says "LPI" in SCT's "from" letters
FEATURES = [8, 16, 32, 64, 64, 64]
STRIDES = [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2], [2, 1, 1]]
PATCH_ZYX = [192, 48, 48]  # voxels (S-I, A-P, R-L) at 1 mm; divisible by the strides' 32 x 16 x 16
SPACING_ZYX = [1.0, 1.0, 1.0]  # mm
POOL_FOV_MM = (64.0, 112.0, 240.0)  # training phantoms' box along R-L, A-P, S-I (centred as make_phantom centres)
# held-out evaluation sets: (name, shape R-L/A-P/S-I voxels, spacing mm, orientation)
EVAL_GRIDS = (("48x48x128 1mm RAS", (48, 48, 128), (1.0, 1.0, 1.0), "RAS"),
              ("64x320x320 0.8mm LAS", (64, 320, 320), (0.8, 0.8, 0.8), "LAS"))
EVAL_CROP_MARGIN_MM = 15.0
MIRROR_AXES = (2,)  # preprocessed (z, y, x): only the R-L axis may be mirrored
NUM_CLASSES = 10
HELD_OUT_SEEDS = (1000, 1001, 1002, 1003, 1004)


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


def pool_spacing(rng) -> tuple:
    """A training phantom's spacing (mm, R-L, A-P, S-I): 1 mm, isotropic 0.7-1.25 mm, or anisotropic."""
    kind = rng.integers(3)
    if kind == 0:
        return (1.0, 1.0, 1.0)
    if kind == 1:
        return (float(rng.uniform(0.7, 1.25)),) * 3
    in_plane = float(rng.uniform(0.7, 1.1))
    return (float(rng.uniform(0.8, 1.8)), in_plane, in_plane)


def pool_case(seed: int, plans: dict, dataset_json: dict, pool_fov_mm=POOL_FOV_MM) -> dict:
    """One training phantom on the pool box at its own spacing, preprocessed as inference would (1 mm, RAS, z-scored
    over the whole box), with the index range (z) that must lie in every patch: rootlets -3 .. PMJ region +12."""
    spacing = pool_spacing(np.random.default_rng(np.random.SeedSequence([seed, 77])))
    shape = tuple(int(round(f / s)) for f, s in zip(pool_fov_mm, spacing))
    phantom = make_phantom(seed=seed, shape=shape, spacing=spacing)
    data, seg = preprocess_case(phantom.image, phantom.rootlets, plans, dataset_json)
    seg = seg[0].astype(np.int8)
    rows = np.nonzero(seg.max(axis=(1, 2)) > 0)[0]
    columns_y = np.nonzero(seg.max(axis=(0, 2)) > 0)[0]
    columns_x = np.nonzero(seg.max(axis=(0, 1)) > 0)[0]
    return {"data": data[0].astype(np.float32), "seg": seg,
            "keep_z": (max(int(rows[0]) - 3, 0), min(int(rows[-1]) + 12, seg.shape[0] - 1)),
            "keep_y": (int(columns_y[0]), int(columns_y[-1])), "keep_x": (int(columns_x[0]), int(columns_x[-1]))}


def _random_box_axis(rng, size: int, keep: tuple, length: int) -> tuple:
    """[start, stop) of a random window of `length` voxels on an axis of `size`, holding `keep` (inclusive)."""
    length = int(min(max(length, keep[1] - keep[0] + 1), size))
    low = max(0, keep[1] + 1 - length)
    high = min(keep[0], size - length)
    start = int(rng.integers(low, high + 1)) if high >= low else max(0, min(keep[0], size - length))
    return start, start + length


def _patch_axis(rng, box_length: int, patch: int, keep_in_box: tuple | None) -> tuple:
    """(source start, source stop, destination start) of a patch on an axis of a box: nnU-Net's centred zero padding
    when the box is smaller than the patch, else a random tile position (holding `keep_in_box` when given)."""
    if box_length <= patch:
        pad_below = (patch - box_length) // 2
        return 0, box_length, pad_below
    low, high = 0, box_length - patch
    if keep_in_box is not None:
        low, high = max(low, keep_in_box[1] + 1 - patch), min(high, keep_in_box[0])
        if high < low:
            low = high = min(max(keep_in_box[0], 0), box_length - patch)
    start = int(rng.integers(low, high + 1))
    return start, start + patch, 0


def tile_sample(case: dict, rng, far_fraction: float = 0.0):
    """(image (z, y, x) float32, labels (z, y, x) int64) of one patch: a random field of view z-scored over itself,
    then a tile of it (see the module docstring). With probability `far_fraction` the field of view is as wide A-P
    as the pool phantom, so the tile often lies far in front of or behind the cord (a tile of a large sagittal scan)."""
    data, seg = case["data"], case["seg"]
    z_margin = rng.uniform(3, 40, size=2)
    keep_z = case["keep_z"]
    box_z = _random_box_axis(rng, data.shape[0], keep_z, int(keep_z[1] - keep_z[0] + z_margin.sum()))
    wide = far_fraction > 0 and rng.random() < far_fraction
    box_y = _random_box_axis(rng, data.shape[1], case["keep_y"],
                             int(rng.uniform(112, data.shape[1] + 1)) if wide else int(rng.uniform(32, 112)))
    box_x = _random_box_axis(rng, data.shape[2], case["keep_x"], int(rng.uniform(32, 64)))
    box = tuple(slice(*b) for b in (box_z, box_y, box_x))
    image = data[box]
    image = (image - image.mean()) / max(float(image.std()), 1e-8)
    labels = seg[box]
    keep_in_box = (keep_z[0] - box_z[0], keep_z[1] - box_z[0])
    out_image = np.zeros(PATCH_ZYX, dtype=np.float32)
    out_labels = np.zeros(PATCH_ZYX, dtype=np.int64)
    source, destination = [], []
    for axis in range(3):
        start, stop, dest = _patch_axis(rng, image.shape[axis], PATCH_ZYX[axis], keep_in_box if axis == 0 else None)
        source.append(slice(start, stop))
        destination.append(slice(dest, dest + stop - start))
    out_image[tuple(destination)] = image[tuple(source)]
    out_labels[tuple(destination)] = labels[tuple(source)]
    return out_image, out_labels


# ------------------------------------------------------------------------------------------------------ training
def dice_ce_loss(logits, target, num_classes: int):
    import torch
    import torch.nn.functional as F

    ce = F.cross_entropy(logits, target)
    probs = torch.softmax(logits, 1)
    onehot = F.one_hot(target, num_classes).permute(0, 4, 1, 2, 3).to(probs.dtype)
    dims = (0, 2, 3, 4)  # batch dice
    intersection = (probs * onehot).sum(dims)
    denominator = probs.sum(dims) + onehot.sum(dims)
    dice = (2 * intersection + 1e-5) / (denominator + 1e-5)
    present = onehot.sum(dims) > 0
    present[0] = False
    soft_dice = dice[present].mean() if present.any() else dice.new_tensor(1.0)
    return ce + (1 - soft_dice)


def deep_supervision_weights(n_outputs: int) -> np.ndarray:
    """nnU-Net's loss weights of the decoder's outputs: halving per stage, the lowest resolution left out, sum 1."""
    weights = np.array([1 / (2 ** i) for i in range(n_outputs)])
    weights[-1] = 0
    return weights / weights.sum()


def augment_in_place(x: np.ndarray, y: np.ndarray, rng) -> None:
    """Augmentation that keeps anatomy, per sample of a batch x (b, 1, z, y, x) / y (b, z, y, x): left-right flip
    (x is the last axis, R-L), contrast and brightness, Gaussian noise (no S-I flip)."""
    for b in range(x.shape[0]):
        if rng.random() < 0.5:
            x[b] = x[b][..., ::-1]
            y[b] = y[b][..., ::-1]
        x[b] = x[b] * rng.uniform(0.8, 1.2) + rng.uniform(-0.2, 0.2)
        if rng.random() < 0.5:
            x[b] = x[b] + rng.normal(0, rng.uniform(0.0, 0.15), size=x[b].shape).astype(np.float32)


def set_learning_rate(optimizer, base_lr: float, iteration: int, iterations: int) -> float:
    """Linear warm-up over 20 iterations, then nnU-Net's poly decay (exponent 0.9); sets and returns the rate."""
    lr = base_lr * min(1.0, (iteration + 1) / 20) * (1 - iteration / iterations) ** 0.9
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr


def training_step(network, optimizer, weights, x: np.ndarray, y: np.ndarray, num_classes: int) -> float:
    """One optimiser step on a batch: CE + soft Dice summed over the deep-supervision outputs (targets downsampled
    by nearest neighbour), gradients clipped at norm 12; returns the loss."""
    import torch
    import torch.nn.functional as F

    x_t = torch.from_numpy(np.ascontiguousarray(x))
    y_t = torch.from_numpy(np.ascontiguousarray(y))
    loss = 0.0
    for weight, output in zip(weights, network(x_t)):
        if weight == 0:
            continue
        target = y_t
        if output.shape[2:] != y_t.shape[1:]:
            target = F.interpolate(y_t[:, None].float(), size=output.shape[2:], mode="nearest")[:, 0].long()
        loss = loss + float(weight) * dice_ce_loss(output, target, num_classes)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(network.parameters(), 12)
    optimizer.step()
    return float(loss.detach())


def train(args, on_snapshot=None) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # tiny gradients otherwise slow CPU backward passes several-fold
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    dataset_json = make_dataset_json()

    t0 = time.monotonic()
    plans = make_plans(intensity_properties([make_phantom(seed=0).image]))
    pool_fov_mm = (POOL_FOV_MM[0], float(args.pool_ap_mm), POOL_FOV_MM[2])
    pool = [pool_case(seed, plans, dataset_json, pool_fov_mm) for seed in range(args.train_cases)]
    print(f"prepared {len(pool)} training phantoms in {time.monotonic() - t0:.0f} s", flush=True)

    network = build_network(plans, deep_supervision=True)
    if args.init_from is not None:  # a second stage continues from a model this script wrote
        start = torch.load(args.init_from / TRAINER_FOLDER / "fold_all" / "checkpoint_final.pth", map_location="cpu",
                            weights_only=False)
        missing = network.load_state_dict({k: v.float() for k, v in start["network_weights"].items()}, strict=False)
        if missing.unexpected_keys or any("seg_layers" not in k for k in missing.missing_keys):
            raise SystemExit(f"--init-from {args.init_from}: the weights do not fit this network ({missing})")
        print(f"continuing from {args.init_from}", flush=True)
    network.train()
    weights = deep_supervision_weights(len(FEATURES) - 1)
    optimizer = torch.optim.AdamW(network.parameters(), lr=args.lr, weight_decay=1e-4)
    t1 = time.monotonic()
    running = None
    for iteration in range(args.iterations):
        lr = set_learning_rate(optimizer, args.lr, iteration, args.iterations)
        index = rng.choice(len(pool), size=args.batch_size, replace=False)
        samples = [tile_sample(pool[i], rng, args.far_fraction) for i in index]
        x = np.stack([sample[0] for sample in samples])[:, None]  # (b, 1, z, y, x)
        y = np.stack([sample[1] for sample in samples])  # (b, z, y, x)
        augment_in_place(x, y, rng)
        loss_value = training_step(network, optimizer, weights, x, y, NUM_CLASSES)
        running = loss_value if running is None else 0.95 * running + 0.05 * loss_value
        if (iteration + 1) % 25 == 0 or iteration == 0:
            print(f"iter {iteration + 1}/{args.iterations} loss {running:.3f} lr {lr:.2e} "
                  f"{time.monotonic() - t1:.0f} s", flush=True)
        if on_snapshot and args.save_every and (iteration + 1) % args.save_every == 0:
            on_snapshot(plans, dataset_json, network, time.monotonic() - t1)
    train_seconds = time.monotonic() - t1
    print(f"trained {args.iterations} iterations in {train_seconds:.0f} s "
          f"(total with data {time.monotonic() - t0:.0f} s)", flush=True)
    return {"plans": plans, "dataset_json": dataset_json, "network": network, "train_seconds": train_seconds,
            "total_seconds": time.monotonic() - t0}


def save_model(out: Path, trained: dict, args) -> Path:
    import torch

    trainer_dir = out / TRAINER_FOLDER
    (trainer_dir / "fold_all").mkdir(parents=True, exist_ok=True)
    (trainer_dir / "dataset.json").write_text(json.dumps(trained["dataset_json"], indent=4) + "\n")
    (trainer_dir / "plans.json").write_text(json.dumps(trained["plans"], indent=4) + "\n")
    state, converted = {}, {}
    for key, value in trained["network"].state_dict().items():
        # the decoder holds a reference to the encoder: keep shared tensors shared (stored once)
        ident = (value.untyped_storage().data_ptr(), value.storage_offset(), tuple(value.shape))
        if ident not in converted:
            value = value.detach()
            converted[ident] = value.half().clone() if value.is_floating_point() else value.clone()
        state[key] = converted[ident]
    checkpoint = {
        "network_weights": state,
        "optimizer_state": None,
        "grad_scaler_state": None,
        "logging": {},
        "_best_ema": None,
        "current_epoch": args.iterations,
        "init_args": {
            "plans": trained["plans"],
            "configuration": "3d_fullres",
            "fold": "all",
            "dataset_json": trained["dataset_json"],
        },
        "trainer_name": "nnUNetTrainer",
        "inference_allowed_mirroring_axes": MIRROR_AXES,
        "rootletseg_demo": {
            "script": "scripts/train_demo_model.py", "seed": args.seed, "iterations": args.iterations,
            "train_cases": args.train_cases, "batch_size": args.batch_size, "lr": args.lr,
            "init_from": str(args.init_from) if args.init_from else None, "far_fraction": args.far_fraction,
            "pool_ap_mm": args.pool_ap_mm,
            "weights_dtype": "float16", "train_seconds": round(trained["train_seconds"], 1),
        },
    }
    path = trainer_dir / "fold_all" / "checkpoint_final.pth"
    tmp = path.with_suffix(".partial")
    torch.save(checkpoint, tmp)
    os.replace(tmp, path)
    return path


# ---------------------------------------------------------------------------------------------------- evaluation
def make_predictor(trainer_dir: Path, threads: int):
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    torch.set_num_threads(threads)
    plans = json.loads((trainer_dir / "plans.json").read_text())
    dataset_json = json.loads((trainer_dir / "dataset.json").read_text())
    checkpoint = torch.load(trainer_dir / "fold_all" / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    plans_manager = PlansManager(plans)
    configuration_manager = plans_manager.get_configuration(checkpoint["init_args"]["configuration"])
    network = build_network(plans, deep_supervision=False)
    predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=False,
                                device=torch.device("cpu"), verbose=False, verbose_preprocessing=False,
                                allow_tqdm=False)
    predictor.manual_initialization(network, plans_manager, configuration_manager, [checkpoint["network_weights"]],
                                    dataset_json, checkpoint["trainer_name"],
                                    checkpoint["inference_allowed_mirroring_axes"])
    network.load_state_dict(checkpoint["network_weights"])
    return predictor


def predict(predictor, image: sitk.Image) -> sitk.Image:
    """Label map on the input grid: reorient to RAS, nnU-Net on (z, y, x), restore the orientation."""
    reorientation = Reorientation(image, MODEL_ORIENTATION)
    oriented = reorientation.apply(image)
    data = sitk.GetArrayFromImage(oriented)[None].astype(np.float32)
    seg = predictor.predict_single_npy_array(data, {"spacing": list(oriented.GetSpacing())[::-1]})
    out = sitk.GetImageFromArray(np.asarray(seg).astype(np.uint8))
    out.CopyInformation(oriented)
    return reorientation.restore(out)


def dice_per_level(prediction: np.ndarray, truth: np.ndarray) -> dict:
    result = {}
    for level in LEVELS:
        p, t = prediction == level, truth == level
        denominator = p.sum() + t.sum()
        result[level] = float(2 * (p & t).sum() / denominator) if denominator else 1.0
    return result


def crop_around_cord(phantom, margin_mm: float = EVAL_CROP_MARGIN_MM):
    """(image, rootlets) cropped on the phantom's own grid (any orientation): the cord's box + `margin_mm` across
    the cord, and the rootlets' S-I extent up to the PMJ, +- `margin_mm`, along the S-I axis."""
    image = phantom.image
    spacing = np.array(image.GetSpacing())
    direction = np.array(image.GetDirection()).reshape(3, 3)
    si_axis = int(np.argmax(np.abs(direction[2])))  # index axis closest to LPS S
    cord = sitk.GetArrayViewFromImage(phantom.cord)
    rootlets = sitk.GetArrayViewFromImage(phantom.rootlets)
    pmj = sitk.GetArrayViewFromImage(phantom.pmj)
    lower, upper = [], []
    for axis in range(3):  # ITK index axes; NumPy axes are reversed
        others = tuple(a for a in range(3) if a != 2 - axis)
        source = np.maximum(rootlets, pmj).max(axis=others) if axis == si_axis else cord.max(axis=others)
        hits = np.nonzero(source > 0)[0]
        margin = int(np.ceil(margin_mm / spacing[axis]))
        lower.append(max(int(hits[0]) - margin, 0))
        upper.append(min(int(hits[-1]) + margin + 1, image.GetSize()[axis]))
    region = tuple(slice(lo, hi) for lo, hi in zip(lower, upper))
    return image[region], phantom.rootlets[region]


def evaluate(trainer_dir: Path, seeds, threads: int) -> dict:
    """Per-level Dice on held-out phantoms: each grid of EVAL_GRIDS, whole and cropped around the cord."""
    predictor = make_predictor(trainer_dir, threads)
    names = ["C2", "C3", "C4", "C5", "C6", "C7", "C8", "T1"]
    results = {}
    for grid_name, shape, spacing, orientation in EVAL_GRIDS:
        for cropped in (False, True):
            set_name = grid_name + (f", cord crop +{EVAL_CROP_MARGIN_MM:g} mm" if cropped else "")
            print(f"== {set_name}", flush=True)
            table = {}
            for seed in seeds:
                phantom = make_phantom(seed=seed, shape=shape, spacing=spacing, orientation=orientation)
                image, truth = crop_around_cord(phantom) if cropped else (phantom.image, phantom.rootlets)
                t = time.monotonic()
                prediction = predict(predictor, image)
                seconds = time.monotonic() - t
                dice = dice_per_level(sitk.GetArrayFromImage(prediction), sitk.GetArrayFromImage(truth))
                table[seed] = dice
                row = " ".join(f"{v:.3f}" for v in dice.values())
                print(f"seed {seed} {tuple(image.GetSize())}: {row}   ({seconds:.1f} s)", flush=True)
            means = [np.mean([table[s][lv] for s in seeds]) for lv in LEVELS]
            mins = [np.min([table[s][lv] for s in seeds]) for lv in LEVELS]
            print("level : " + " ".join(f"{n:>5}" for n in names))
            print("mean  : " + " ".join(f"{m:.3f}" for m in means))
            print("min   : " + " ".join(f"{m:.3f}" for m in mins), flush=True)
            results[set_name] = {"per_seed": table, "mean": dict(zip(names, means)), "min": dict(zip(names, mins))}
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=None,
                        help="model folder to write (training) or read (--evaluate-only; default: the committed "
                        "demo model). Training never defaults to the committed folder: check the figures first")
    parser.add_argument("--iterations", type=int, default=1400)
    parser.add_argument("--train-cases", type=int, default=80, help="training phantoms: seeds 0..N-1")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=12345, help="torch / augmentation seed")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: on a shared 2-core machine one thread trains about 2.5x "
                             "faster than two, which thrash; the committed model was trained with 1)")
    parser.add_argument("--init-from", type=Path, default=None,
                        help="continue from a model folder this script wrote (second stage of the recipe)")
    parser.add_argument("--far-fraction", type=float, default=0.0,
                        help="share of samples whose field of view spans the whole pool A-P (tiles far from the cord)")
    parser.add_argument("--pool-ap-mm", type=float, default=POOL_FOV_MM[1],
                        help="A-P size of the training phantoms (mm); --far-fraction needs it wider than a scan")
    parser.add_argument("--eval-seeds", type=int, nargs="+", default=list(HELD_OUT_SEEDS))
    parser.add_argument("--save-every", type=int, default=100, help="also write the model every N iterations")
    parser.add_argument("--evaluate-only", action="store_true", help="only evaluate the model in --out")
    args = parser.parse_args(argv)
    if any(s < 1000 for s in args.eval_seeds):
        parser.error("evaluation seeds must be held out: use seeds >= 1000")
    if args.train_cases > 1000:
        parser.error("training seeds must stay below 1000 (held-out seeds start at 1000)")
    if args.out is None:
        if not args.evaluate_only:
            parser.error("give --out DIR for the trained model (copy it over the committed one only once it passes)")
        args.out = REPO_ROOT / "RootletSegLogic" / "synthetic" / "models" / "demo"
    trainer_dir = args.out / TRAINER_FOLDER
    if not args.evaluate_only:
        def snapshot(plans, dataset_json, network, seconds):
            trained = {"plans": plans, "dataset_json": dataset_json, "network": network, "train_seconds": seconds}
            save_model(args.out, trained, args)

        trained = train(args, snapshot)
        path = save_model(args.out, trained, args)
        print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)", flush=True)
    evaluate(trainer_dir, args.eval_seeds, args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())

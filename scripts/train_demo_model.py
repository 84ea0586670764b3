#!/usr/bin/env python
"""Train the small demo nnU-Net v2 model on synthetic phantoms, reproducibly, on CPU; print per-level Dice.

    .venv/bin/python scripts/train_demo_model.py                      # train + evaluate, writes RootletSegLogic/synthetic/models/demo
    .venv/bin/python scripts/train_demo_model.py --evaluate-only      # evaluate the committed model

What it writes (`--out`, default RootletSegLogic/synthetic/models/demo) is an nnU-Net v2 trained-model folder as SCT loads it:
`nnUNetTrainer__nnUNetPlans__3d_fullres/{dataset.json, plans.json, fold_all/checkpoint_final.pth}`.

- plans.json: one `3d_fullres` configuration, PlainConvUNet with features 8..64 over 6 stages, spacing = phantom
  spacing (1 mm), patch size (128, 48, 48) (z, y, x) = the whole default phantom, so the network sees every level at
  once and can count them from the top; ZScoreNormalization; transpose_forward/backward [0, 1, 2].
- dataset.json: channel "T2w", labels background + lvl1..lvl9 (lvl1 never occurs), image_orientation "LPI"
  (SCT "from" letters = RAS "to" letters).
- Training cases are preprocessed exactly as inference will: reoriented to RAS (`Reorientation`), array in
  (z, y, x), then nnU-Net's own `DefaultPreprocessor.run_case_npy` with these plans.
- Own short training loop (no nnU-Net trainer, no worker processes): CE + soft Dice with deep supervision, AdamW,
  poly learning-rate decay; augmentation: left-right flip, contrast/brightness, Gaussian noise (no S-I flip).
- Training seeds are 0..N-1; evaluation uses held-out seeds >= 1000, with a real `nnUNetPredictor`
  (tile step 0.5, Gaussian weighting, no mirroring, as SCT runs it) on the input grid.
- Reproducible: phantoms by seed, torch and augmentation by --seed; CPU results can differ in the last bits
  with another thread count or CPU. The committed model: 900 iterations, batch 2, 160 phantoms, --threads 1.
- Weights are stored as float16 (half the size; nnU-Net's `load_state_dict` casts them back to float32); the
  evaluation reads the checkpoint back from disk, so the printed Dice is that of the committed file.
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
from RootletSegLogic.synthetic.phantom import (  # noqa: E402
    DEFAULT_SHAPE,
    DEFAULT_SPACING,
    LEVELS,
    make_phantom,
)

TRAINER_FOLDER = "nnUNetTrainer__nnUNetPlans__3d_fullres"
MODEL_ORIENTATION = "RAS"  # "to" letters; dataset.json says "LPI" in SCT's "from" letters
FEATURES = [8, 16, 32, 64, 64, 64]
STRIDES = [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2], [2, 1, 1]]
PATCH_ZYX = [DEFAULT_SHAPE[2], DEFAULT_SHAPE[1], DEFAULT_SHAPE[0]]
SPACING_ZYX = [DEFAULT_SPACING[2], DEFAULT_SPACING[1], DEFAULT_SPACING[0]]
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


def train(args, on_snapshot=None) -> dict:
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # tiny gradients otherwise slow CPU backward passes several-fold
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    dataset_json = make_dataset_json()

    t0 = time.monotonic()
    phantoms = [make_phantom(seed=s) for s in range(args.train_cases)]
    plans = make_plans(intensity_properties([p.image for p in phantoms]))
    cases = [preprocess_case(p.image, p.rootlets, plans, dataset_json) for p in phantoms]
    del phantoms
    data = np.stack([c[0] for c in cases])  # (N, 1, z, y, x)
    segs = np.stack([c[1] for c in cases]).astype(np.int64)[:, 0]  # (N, z, y, x)
    assert list(data.shape[2:]) == PATCH_ZYX, data.shape
    print(f"prepared {len(cases)} training phantoms in {time.monotonic() - t0:.0f} s", flush=True)

    network = build_network(plans, deep_supervision=True)
    network.train()
    n_outputs = len(FEATURES) - 1
    weights = np.array([1 / (2 ** i) for i in range(n_outputs)])
    weights[-1] = 0
    weights = weights / weights.sum()
    optimizer = torch.optim.AdamW(network.parameters(), lr=args.lr, weight_decay=1e-4)
    t1 = time.monotonic()
    running = None
    for iteration in range(args.iterations):
        lr = args.lr * min(1.0, (iteration + 1) / 20) * (1 - iteration / args.iterations) ** 0.9
        for group in optimizer.param_groups:
            group["lr"] = lr
        index = rng.choice(len(data), size=args.batch_size, replace=False)
        x = data[index].copy()
        y = segs[index].copy()
        for b in range(args.batch_size):  # augmentation that keeps anatomy
            if rng.random() < 0.5:  # left-right flip (x is the last axis, R-L)
                x[b] = x[b][..., ::-1]
                y[b] = y[b][..., ::-1]
            x[b] = x[b] * rng.uniform(0.8, 1.2) + rng.uniform(-0.2, 0.2)
            if rng.random() < 0.5:
                x[b] = x[b] + rng.normal(0, rng.uniform(0.0, 0.15), size=x[b].shape).astype(np.float32)
        x_t = torch.from_numpy(np.ascontiguousarray(x))
        y_t = torch.from_numpy(np.ascontiguousarray(y))
        outputs = network(x_t)
        loss = 0.0
        for weight, output in zip(weights, outputs):
            if weight == 0:
                continue
            target = y_t
            if output.shape[2:] != y_t.shape[1:]:
                target = F.interpolate(y_t[:, None].float(), size=output.shape[2:], mode="nearest")[:, 0].long()
            loss = loss + float(weight) * dice_ce_loss(output, target, NUM_CLASSES)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(network.parameters(), 12)
        optimizer.step()
        loss_value = float(loss.detach())
        running = loss_value if running is None else 0.95 * running + 0.05 * loss_value
        if (iteration + 1) % 50 == 0 or iteration == 0:
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


def evaluate(trainer_dir: Path, seeds, threads: int) -> dict:
    predictor = make_predictor(trainer_dir, threads)
    table = {}
    for seed in seeds:
        phantom = make_phantom(seed=seed)
        t = time.monotonic()
        prediction = predict(predictor, phantom.image)
        seconds = time.monotonic() - t
        dice = dice_per_level(sitk.GetArrayFromImage(prediction), sitk.GetArrayFromImage(phantom.rootlets))
        table[seed] = dice
        row = " ".join(f"{v:.3f}" for v in dice.values())
        print(f"seed {seed}: {row}   ({seconds:.1f} s)", flush=True)
    names = ["C2", "C3", "C4", "C5", "C6", "C7", "C8", "T1"]
    print("level : " + " ".join(f"{n:>5}" for n in names))
    means = [np.mean([table[s][lv] for s in seeds]) for lv in LEVELS]
    mins = [np.min([table[s][lv] for s in seeds]) for lv in LEVELS]
    print("mean  : " + " ".join(f"{m:.3f}" for m in means))
    print("min   : " + " ".join(f"{m:.3f}" for m in mins), flush=True)
    return table


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "RootletSegLogic" / "synthetic" / "models" / "demo")
    parser.add_argument("--iterations", type=int, default=900)
    parser.add_argument("--train-cases", type=int, default=160, help="training phantoms: seeds 0..N-1")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=12345, help="torch / augmentation seed")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: on a shared 2-core machine one thread trains about 2.5x "
                             "faster than two, which thrash; the committed model was trained with 1)")
    parser.add_argument("--eval-seeds", type=int, nargs="+", default=list(HELD_OUT_SEEDS))
    parser.add_argument("--save-every", type=int, default=100, help="also write the model every N iterations")
    parser.add_argument("--evaluate-only", action="store_true", help="only evaluate the model in --out")
    args = parser.parse_args(argv)
    if any(s < 1000 for s in args.eval_seeds):
        parser.error("evaluation seeds must be held out: use seeds >= 1000")
    if args.train_cases > 1000:
        parser.error("training seeds must stay below 1000 (held-out seeds start at 1000)")
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

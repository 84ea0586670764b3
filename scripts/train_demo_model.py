#!/usr/bin/env python
"""Train the small demo nnU-Net v2 model on synthetic phantoms, reproducibly, on CPU; print per-level Dice.

    .venv/bin/python scripts/train_demo_model.py --out /tmp/demo          # train + evaluate
    .venv/bin/python scripts/train_demo_model.py --evaluate-only          # evaluate the committed model

The committed model is this three-stage recipe (one CPU thread each):
    .venv/bin/python scripts/train_demo_model.py --out /tmp/stage1 --iterations 1400
    .venv/bin/python scripts/train_demo_model.py --out /tmp/stage2 --init-from /tmp/stage1 --iterations 450 \
        --far-fraction 0.35 --pool-ap-mm 272 --lr 1e-3
    .venv/bin/python scripts/train_demo_model.py --out /tmp/stage3 --init-from /tmp/stage2 --iterations 450 \
        --far-fraction 0.35 --pool-ap-mm 272 --lr 1e-3 --foreground-weight 2
Stage 1 learns the levels from tiles near the cord; stage 2 adds tiles far in front of and behind it (wide A-P
fields of view), without which a 64x320x320 sagittal scan got false rootlets more than 25 mm from the cord; stage 3
weights the levels' cross-entropy 2 against background, because resampling a 0.8 mm image to 1 mm and back thinned
the predicted rootlets (C7 of one held-out phantom at 0.797 Dice).

What it writes (`--out`, required for training) is an nnU-Net v2 trained-model folder as SCT loads it: `nnUNetTrainer__nnUNetPlans__3d_fullres/{dataset.json, plans.json, fold_all/checkpoint_final.pth}`.

The model must work on any field of view and spacing (a default 48x48x128 mm phantom, a 51x256x256 mm sagittal
one at 0.8 mm, crops around the cord), so it cannot learn where the levels lie in the image: it has to find them
from the anatomy (the levels are counted down from the pontomedullary junction, which every patch holds).
- Files: demo_model_recipe.py (plans.json, dataset.json, network, nnU-Net's preprocessing), demo_model_samples.py
  (training pool and patches), demo_model_evaluation.py (held-out Dice), this file (loss, loop, checkpoint, CLI).
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
  stage 3: 12 min (15 min); figures in RootletSegLogic/synthetic/models/demo/README.md.
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

from demo_model_evaluation import HELD_OUT_SEEDS, evaluate
from demo_model_recipe import (
    FEATURES,
    MIRROR_AXES,
    NUM_CLASSES,
    REPO_ROOT,
    TRAINER_FOLDER,
    build_network,
    intensity_properties,
    make_dataset_json,
    make_plans,
)
from demo_model_samples import POOL_FOV_MM, augment_in_place, pool_case, tile_sample
from RootletSegLogic.synthetic.phantom import make_phantom  # noqa: E402


# ------------------------------------------------------------------------------------------------------ training
def dice_ce_loss(logits, target, num_classes: int, foreground_weight: float = 1.0):
    """Cross-entropy (the levels' classes weighted `foreground_weight` against background 1) + batch soft Dice."""
    import torch
    import torch.nn.functional as F

    class_weights = None
    if foreground_weight != 1.0:
        class_weights = torch.full((num_classes,), float(foreground_weight), dtype=logits.dtype)
        class_weights[0] = 1.0
    ce = F.cross_entropy(logits, target, weight=class_weights)
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



def set_learning_rate(optimizer, base_lr: float, iteration: int, iterations: int) -> float:
    """Linear warm-up over 20 iterations, then nnU-Net's poly decay (exponent 0.9); sets and returns the rate."""
    lr = base_lr * min(1.0, (iteration + 1) / 20) * (1 - iteration / iterations) ** 0.9
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr


def training_step(network, optimizer, weights, x: np.ndarray, y: np.ndarray, num_classes: int,
                  foreground_weight: float = 1.0) -> float:
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
        loss = loss + float(weight) * dice_ce_loss(output, target, num_classes, foreground_weight)
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
        loss_value = training_step(network, optimizer, weights, x, y, NUM_CLASSES, args.foreground_weight)
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
            "pool_ap_mm": args.pool_ap_mm, "foreground_weight": args.foreground_weight,
            "weights_dtype": "float16", "train_seconds": round(trained["train_seconds"], 1),
        },
    }
    path = trainer_dir / "fold_all" / "checkpoint_final.pth"
    tmp = path.with_suffix(".partial")
    torch.save(checkpoint, tmp)
    os.replace(tmp, path)
    return path



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
    parser.add_argument("--foreground-weight", type=float, default=1.0,
                        help="cross-entropy weight of the level classes against background 1 (>1: fewer rootlet "
                             "voxels lost, which resampling a 0.8 mm image to the model's 1 mm and back thins)")
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

#!/usr/bin/env python
"""Train the small demo-spine nnU-Net v2 model (cord, canal, discs, vertebrae) on phantoms, on CPU; print its scores.

    .venv/bin/python scripts/train_demo_spine.py                  # train + evaluate, writes synthetic/models/demo-spine
    .venv/bin/python scripts/train_demo_spine.py --evaluate-only  # evaluate the committed model

The model writes TotalSpineSeg's step-1 values (RootletSegLogic/landmarks/scheme.py: 1 disc, 2 disc C2-C3, 3 disc
C7-T1, 6 vertebra, 7 vertebra C1, 8 canal, 9 cord) as plain softmax classes, so the landmark postprocessing
(landmarks/postprocess.py) runs unchanged on its output and on the official TotalSpineSeg step-1 model's.
Targets are `Phantom.spine` (synthetic/phantom.py). Not for real MRI.

- Architecture, plans and preprocessing are those of the demo rootlet model (imported from
  scripts/train_demo_model.py: PlainConvUNet 8..64 features, 6 stages, 1 mm, patch = the whole default phantom
  (128, 48, 48) (z, y, x), ZScoreNormalization, nnU-Net's own DefaultPreprocessor), with 10 output classes.
- Own short loop: CE + soft Dice with deep supervision, AdamW, poly decay; augmentation: left-right flip,
  contrast/brightness, Gaussian noise. No S-I flip: the disc names come from their order from the top.
- Training seeds 0..N-1; evaluation on held-out seeds >= 2000 with the project's own Segmenter (what
  `rootletseg landmarks` runs) and postprocessing: cord Dice, disc distance to truth along S (mm), names.
- Weights stored as float16 (nnU-Net casts back on load); `--threads 1` by default (shared 2-core machine).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "scripts"))

from RootletSegLogic.images.orientation import axcodes_to_sct  # noqa: E402
from RootletSegLogic.landmarks import scheme  # noqa: E402
from RootletSegLogic.synthetic.phantom import make_phantom  # noqa: E402
from demo_model_recipe import (  # noqa: E402  (read-only reuse: same architecture, plans and preprocessing)
    MIRROR_AXES,
    MODEL_ORIENTATION,
    TRAINER_FOLDER,
    build_network,
    intensity_properties,
    make_plans,
    preprocess_case,
)
from demo_model_samples import augment_in_place  # noqa: E402
from train_demo_model import deep_supervision_weights, set_learning_rate, training_step  # noqa: E402

NUM_CLASSES = len(scheme.STEP1_LABELS)
HELD_OUT_SEEDS = (2000, 2001, 2002, 2003, 2004)
DEFAULT_OUT = REPO_ROOT / "RootletSegLogic" / "synthetic" / "models" / "demo-spine"


def make_dataset_json() -> dict:
    return {
        "channel_names": {"0": "T2w"},
        "labels": dict(scheme.STEP1_LABELS),
        "numTraining": 0,
        "file_ending": ".nii.gz",
        "image_orientation": axcodes_to_sct(MODEL_ORIENTATION),
        "name": "RootletSeg demo-spine (synthetic phantom)",
        "description": "Small demo model trained on RootletSegLogic phantoms; TotalSpineSeg step-1 label values "
                       "(cord 9, canal 8, discs 1-3, vertebrae 6-7). Not for real MRI.",
    }


def train(args, on_snapshot=None) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    dataset_json = make_dataset_json()
    t0 = time.monotonic()
    phantoms = [make_phantom(seed=s) for s in range(args.train_cases)]
    plans = make_plans(intensity_properties([p.image for p in phantoms]))
    plans["dataset_name"] = "Dataset902_RootletSegDemoSpine"
    plans["experiment_planner_used"] = "RootletSeg scripts/train_demo_spine.py (plans of train_demo_model.py)"
    cases = [preprocess_case(p.image, p.spine, plans, dataset_json) for p in phantoms]
    del phantoms
    data = np.stack([c[0] for c in cases])
    segs = np.stack([c[1] for c in cases]).astype(np.int64)[:, 0]
    print(f"prepared {len(cases)} phantoms in {time.monotonic() - t0:.0f} s", flush=True)

    arch = plans["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"]
    network = build_network(plans, deep_supervision=True)
    assert network.decoder.seg_layers[-1].out_channels == NUM_CLASSES
    network.train()
    weights = deep_supervision_weights(len(arch["features_per_stage"]) - 1)
    optimizer = torch.optim.AdamW(network.parameters(), lr=args.lr, weight_decay=1e-4)
    t1 = time.monotonic()
    running = None
    for iteration in range(args.iterations):
        lr = set_learning_rate(optimizer, args.lr, iteration, args.iterations)
        index = rng.choice(len(data), size=args.batch_size, replace=False)
        x, y = data[index].copy(), segs[index].copy()
        augment_in_place(x, y, rng)  # R-L flip keeps every label's meaning
        value = training_step(network, optimizer, weights, x, y, NUM_CLASSES)
        running = value if running is None else 0.95 * running + 0.05 * value
        if (iteration + 1) % 25 == 0 or iteration == 0:
            print(f"iter {iteration + 1}/{args.iterations} loss {running:.3f} lr {lr:.2e} "
                  f"{time.monotonic() - t1:.0f} s", flush=True)
        if on_snapshot and args.save_every and (iteration + 1) % args.save_every == 0:
            on_snapshot(plans, dataset_json, network, time.monotonic() - t1, iteration + 1)
    seconds = time.monotonic() - t1
    print(f"trained {args.iterations} iterations in {seconds:.0f} s (with data {time.monotonic() - t0:.0f} s)",
          flush=True)
    return {"plans": plans, "dataset_json": dataset_json, "network": network, "train_seconds": seconds,
            "iterations": args.iterations}


def write_model(out: Path, trained: dict, args) -> Path:
    """nnU-Net trained-model folder (fold_all, float16 weights, shared tensors stored once), written atomically."""
    import torch

    trainer_dir = out / TRAINER_FOLDER
    (trainer_dir / "fold_all").mkdir(parents=True, exist_ok=True)
    (trainer_dir / "dataset.json").write_text(json.dumps(trained["dataset_json"], indent=4) + "\n")
    (trainer_dir / "plans.json").write_text(json.dumps(trained["plans"], indent=4) + "\n")
    halves = {}
    weights = {}
    for key, tensor in trained["network"].state_dict().items():
        storage_key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
        if storage_key not in halves:
            tensor = tensor.detach()
            halves[storage_key] = tensor.half().clone() if tensor.is_floating_point() else tensor.clone()
        weights[key] = halves[storage_key]
    checkpoint = {
        "network_weights": weights, "optimizer_state": None, "grad_scaler_state": None, "logging": {},
        "_best_ema": None, "current_epoch": trained["iterations"],
        "init_args": {"plans": trained["plans"], "configuration": "3d_fullres", "fold": "all",
                      "dataset_json": trained["dataset_json"]},
        "trainer_name": "nnUNetTrainer",
        "inference_allowed_mirroring_axes": MIRROR_AXES,
        "rootletseg_demo": {
            "script": "scripts/train_demo_spine.py", "seed": args.seed, "iterations": trained["iterations"],
            "train_cases": args.train_cases, "batch_size": args.batch_size, "lr": args.lr,
            "threads": args.threads, "weights_dtype": "float16", "train_seconds": round(trained["train_seconds"], 1),
        },
    }
    path = trainer_dir / "fold_all" / "checkpoint_final.pth"
    partial = path.with_suffix(".partial")
    torch.save(checkpoint, partial)
    os.replace(partial, path)
    return path


def evaluate(model_dir: Path, seeds, threads: int) -> dict:
    """Cord Dice and disc errors with the project's own landmark workflow (Segmenter + postprocessing)."""
    from RootletSegLogic.landmarks.evaluation import score_landmarks
    from RootletSegLogic.segmentation.landmark_inference import detect_landmarks
    from RootletSegLogic.segmentation.model_folder import load_model_folder

    model = load_model_folder(model_dir)
    rows = {}
    for seed in seeds:
        phantom = make_phantom(seed=seed)
        t = time.monotonic()
        result = detect_landmarks(phantom.image, model, device="cpu", threads=threads)
        score = score_landmarks(result, phantom)
        rows[seed] = score
        print(f"seed {seed}: cord Dice {score['cord_dice']:.3f}, discs found {score['discs_found']}/"
              f"{score['discs_expected']}, names right {score['names_right']}, max |dS| "
              f"{score['max_disc_error_S_mm']:.2f} mm, max 3D (on centerline) {score['max_disc_error_3d_mm']:.2f} mm"
              f"   ({time.monotonic() - t:.1f} s)", flush=True)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--train-cases", type=int, default=100, help="training phantoms: seeds 0..N-1")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=4242, help="torch / augmentation seed")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--eval-seeds", type=int, nargs="+", default=list(HELD_OUT_SEEDS))
    parser.add_argument("--save-every", type=int, default=50, help="also write the model every N iterations")
    parser.add_argument("--evaluate-only", action="store_true")
    args = parser.parse_args(argv)
    if any(s < 1000 for s in args.eval_seeds):
        parser.error("evaluation seeds must be held out: use seeds >= 1000")
    if args.train_cases > 1000:
        parser.error("training seeds must stay below 1000")
    if not args.evaluate_only:
        def snapshot(plans, dataset_json, network, seconds, iterations):
            write_model(args.out, {"plans": plans, "dataset_json": dataset_json, "network": network,
                                   "train_seconds": seconds, "iterations": iterations}, args)

        trained = train(args, snapshot)
        path = write_model(args.out, trained, args)
        print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)", flush=True)
    evaluate(args.out, args.eval_seeds, args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())

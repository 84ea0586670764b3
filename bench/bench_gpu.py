#!/usr/bin/env python
"""GPU figures for issue 9, to run when a GPU machine is lent: fp16 time per volume, its agreement with fp32, and
nnU-Net's on-device accumulation against SCT's off-device setting.

    .venv/bin/python bench/bench_gpu.py [--case full|demo] [--repeats 3] [--json FILE]
    .venv/bin/python bench/bench_gpu.py --smoke-on-cpu        # no GPU: exercise the code path on the CPU

Variants, all on the same checkpoint and phantom, in one process, each timed `--repeats` times after one warm-up
(torch.cuda.synchronize around each volume; peak GPU memory from torch.cuda.max_memory_allocated):
- sct-off-device   nnUNetPredictor as SCT runs it: logits accumulated on the host (perform_everything_on_device
                   False), nnU-Net's own fp16 autocast on CUDA;
- on-device        the same with nnU-Net's default on-device accumulation (what `rootletseg segment` uses on CUDA);
- fp32             on-device with autocast turned off inside the network call (full fp32 reference for agreement).
Agreement: per-label Dice (2 = C2 ... 9 = T1) of each variant against fp32, and every variant against the phantom's
truth. Cases: `full` = nnU-Net's default full-size network for the 64x320x320 0.8 mm sagittal phantom (untrained,
random weights: agreement and time mean something, Dice against truth does not); `demo` = the demo model on the
same phantom (meaningful when the demo model works on that field of view).

Nothing else in the project depends on a GPU; without one this script says so and exits 0 (with --smoke-on-cpu it
runs the fp32 and off-device variants on the CPU, once, to check that the script works; those are not GPU figures).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "Testing" / "Python"))

from bench_vs_reference import BIG_GRID, dice_per_level, full_size_model  # noqa: E402
from sct_reference_runner import build_predictor, predict  # noqa: E402


class _Fp32Network:
    """Wraps nnU-Net's network so that its call runs in fp32 even inside nnU-Net's CUDA autocast."""

    def __init__(self, network):
        self.network = network

    def __call__(self, x):
        import torch

        with torch.autocast(x.device.type, enabled=False):
            return self.network(x.float())

    def load_state_dict(self, *args, **kwargs):
        return self.network.load_state_dict(*args, **kwargs)

    def to(self, *args, **kwargs):
        self.network = self.network.to(*args, **kwargs)
        return self

    def eval(self):
        self.network.eval()
        return self


def time_variant(trainer: Path, image, device: str, on_device: bool, fp32: bool, repeats: int):
    import SimpleITK as sitk
    import torch

    predictor, dataset_json = build_predictor(trainer, device, on_device)
    if fp32:
        predictor.network = _Fp32Network(predictor.network)
    cuda = device == "cuda"
    predict(predictor, dataset_json, image)  # warm-up (cuDNN autotuning, allocations)
    seconds, peak_mib, labels = [], None, None
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        labels = predict(predictor, dataset_json, image)
        if cuda:
            torch.cuda.synchronize()
            peak_mib = torch.cuda.max_memory_allocated() / 2 ** 20
        seconds.append(time.perf_counter() - start)
    del predictor
    if cuda:
        torch.cuda.empty_cache()
    return {"seconds": seconds, "median_s": float(np.median(seconds)), "peak_gpu_mib": peak_mib,
            "labels": sitk.GetArrayFromImage(labels)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", choices=("full", "demo"), default="full")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--demo-model", help="demo model folder (default: the embedded one)")
    parser.add_argument("--smoke-on-cpu", action="store_true", help="no GPU: run the code path once on the CPU")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()

    import torch

    has_gpu = torch.cuda.is_available()
    if not has_gpu:
        print("NO CUDA GPU IS PRESENT on this machine (torch.cuda.is_available() is False): GPU figures NOT measured.",
              flush=True)
        if not args.smoke_on_cpu:
            return 0
        print("--smoke-on-cpu: running the fp32 and off-device variants once on the CPU to check the script; "
              "these are CPU numbers, not GPU figures.", flush=True)
    device = "cuda" if has_gpu else "cpu"
    if has_gpu:
        print(f"GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}")

    from bench_vs_reference import demo_model, write_phantom_case
    import SimpleITK as sitk

    with tempfile.TemporaryDirectory(prefix="bench_gpu_") as tmp:
        work = Path(tmp)
        paths = write_phantom_case(work / "phantom_big", **BIG_GRID)
        trainer = full_size_model(work / "full") if args.case == "full" else demo_model(args.demo_model)
        image = sitk.ReadImage(str(paths["image"]), sitk.sitkFloat32)
        truth = sitk.GetArrayFromImage(sitk.ReadImage(str(paths["rootlets"])))
        variants = {"fp32": (True, True), "sct-off-device": (False, False), "on-device": (True, False)}
        if not has_gpu:  # on the CPU autocast is off and 'on device' is the host: two variants are enough
            variants = {"fp32": (True, True), "sct-off-device": (False, False)}
        repeats = args.repeats if has_gpu else 1
        results = {}
        for name, (on_device, fp32) in variants.items():
            print(f"[{name}] ...", file=sys.stderr, flush=True)
            results[name] = time_variant(trainer, image, device, on_device, fp32, repeats)
        reference = results["fp32"]["labels"]
        print(f"\n{args.case}: {tuple(image.GetSize())} voxels at {image.GetSpacing()[0]:g} mm, device {device}, "
              f"{repeats} timed run(s) after one warm-up")
        header = (f"{'variant':<16} {'median s':>9} {'peak GPU MiB':>13}  {'Dice vs fp32 (min/mean)':<24} "
                  f"{'vs truth (mean)':>15}")
        print(header)
        print("-" * len(header))
        table = {}
        for name, result in results.items():
            agreement = dice_per_level(result["labels"], reference)
            against_truth = dice_per_level(result["labels"], truth)
            peak = f"{result['peak_gpu_mib']:.0f}" if result["peak_gpu_mib"] is not None else "-"
            print(f"{name:<16} {result['median_s']:>9.2f} {peak:>13}  "
                  f"{min(agreement.values()):.4f} / {np.mean(list(agreement.values())):.4f}{'':<8} "
                  f"{np.mean(list(against_truth.values())):>15.3f}")
            table[name] = {"seconds": result["seconds"], "peak_gpu_mib": result["peak_gpu_mib"],
                           "dice_vs_fp32": agreement, "dice_vs_truth": against_truth}
        if not has_gpu:
            print("\n(CPU smoke run: the GPU figures — fp16 time, on-device vs off-device — are NOT measured here.)")
        if args.json:
            Path(args.json).write_text(json.dumps({"device": device, "case": args.case, "variants": table}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

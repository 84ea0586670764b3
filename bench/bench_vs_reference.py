#!/usr/bin/env python
"""RootletSeg's default segmentation against an SCT-like reference runner, same checkpoint, same CPU, interleaved.

    .venv/bin/python bench/bench_vs_reference.py [--cases full,demo,demo-big] [--repeats 1] [--threads 2]
        [--margins 10,15,20,25,30,40] [--demo-model DIR] [--json FILE] [--keep DIR]

Runners (each run is its own child process; wall and CPU from wait4 of that child, its own peak RSS from VmHWM):
- reference  bench/sct_reference_runner.py: SCT's path on nnU-Net's public API (PyTorch, tile step 0.5, gaussian,
             no mirroring, logits off the device), always on the whole volume.
- default    `rootletseg segment IMAGE --model M --threads N` (backend auto: OpenVINO on this CPU for 2+ tiles), whole volume.
- cord       the same with `--cord CORD`: the network runs on the cord's box + the default margin only.
Before timing, `rootletseg segment` runs once per model untimed, so the OpenVINO conversion is cached as it is for a
user's second image; that first run is reported on its own ("first run incl. conversion").

Cases:
- full      nnU-Net's default full-size network for a 64x320x320 sagittal T2w at 0.8 mm (patch 224x224x48, 30.5 M
            parameters; Testing/Python/model_factory.full_size_plans; UNTRAINED: random weights, seed 0, so its
            Dice against the phantom's truth means nothing, its agreement with the reference does), on the
            phantom of seed 1000 sampled 64x320x320 at 0.8 mm, LAS.
- demo      the demo model on the default phantom (48x48x128 at 1 mm, seed 1000).
- demo-big  the demo model (trained for any field of view) on the 64x320x320 0.8 mm LAS phantom (seed 1000).
Dice per label (2 = C2 ... 9 = T1) of each default/cord output against the reference output and against the
phantom's truth. `--margins` also runs the cord case at each margin (mm) once and prints how the answer changes.

Figures, not tests: the machine's load changes them; the table prints the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "Testing" / "Python"))

LEVELS = tuple(range(2, 10))
LEVEL_NAMES = ("C2", "C3", "C4", "C5", "C6", "C7", "C8", "T1")
BIG_GRID = dict(shape=(64, 320, 320), spacing=(0.8, 0.8, 0.8), orientation="LAS")


# ------------------------------------------------------------------------------------------------ preparation
def write_phantom_case(folder: Path, **grid) -> dict:
    from RootletSegLogic.synthetic.phantom import make_phantom, write_phantom

    if folder.is_dir() and (folder / "truth.json").is_file():
        return {name: folder / f"{name}.nii.gz" for name in ("image", "cord", "rootlets")}
    paths = write_phantom(make_phantom(seed=1000, **grid), folder)
    return {name: Path(paths[name]) for name in ("image", "cord", "rootlets")}


def full_size_model(folder: Path) -> Path:
    from model_factory import full_size_plans, make_model_folder

    trainer = folder / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    if not trainer.is_dir():
        # the fingerprint nnU-Net sees: the sagittal volume in the model's RAS orientation, (z, y, x) = (S-I, A-P, R-L)
        make_model_folder(folder, full_size_plans((320, 320, 64), (0.8, 0.8, 0.8)), seed=0)
    return trainer


def demo_model(explicit) -> Path:
    from RootletSegLogic.segmentation.registry import EMBEDDED_DEMO_PATH

    root = Path(explicit) if explicit else Path(EMBEDDED_DEMO_PATH)
    return next(root.glob("nnUNetTrainer*__*")) if not root.name.startswith("nnUNetTrainer") else root


# ------------------------------------------------------------------------------------------------------ running
def run_child(args, env=None) -> dict:
    """Run a Python child process to its end (`args` after the interpreter: a script or -m MODULE, and its
    arguments): wall (s), CPU (user + sys, s) and its own peak RSS (MiB: VmHWM, written by bench/peak_memory.py;
    wait4's ru_maxrss would start from this benchmark process's own peak)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak_file = Path(tempfile.mkstemp(prefix="peak_rss_", suffix=".txt")[1])
    args = [sys.executable, str(REPO / "bench" / "peak_memory.py"), str(peak_file), *args[1:]]
    start = time.perf_counter()
    process = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout_chunks = process.stdout.read()
    stderr_chunks = process.stderr.read()
    _, status, _usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"failed ({code}): {' '.join(map(str, args))}\n{stderr_chunks[-3000:]}")
    rss_mib = float(peak_file.read_text())
    peak_file.unlink()
    return {"wall_s": wall, "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
            "rss_mib": rss_mib, "stdout": stdout_chunks, "stderr": stderr_chunks}


def reference(image: Path, trainer: Path, output: Path, threads: int) -> dict:
    numbers = run_child([sys.executable, str(REPO / "bench" / "sct_reference_runner.py"), str(image),
                            str(trainer), str(output), "--threads", str(threads)])
    line = json.loads(numbers["stdout"].strip().splitlines()[-1])
    return {**numbers, "tiles": line["tiles"], "backend": "torch (reference)"}


def rootletseg(image: Path, model: Path, output: Path, threads: int, env: dict, cord: Path = None,
               margin: float = None, backend: str = None) -> dict:
    args = [sys.executable, "-m", "RootletSegLogic", "segment", str(image), "-o", str(output), "--model", str(model),
            "--threads", str(threads), "--overwrite", "--progress", "json"]
    if cord is not None:
        # the cord is given for the crop; the level outputs it also makes are written beside the label map
        args += ["--cord", str(cord)]
    if margin is not None:
        args += ["--roi-margin-mm", str(margin)]
    if backend:
        args += ["--backend", backend]
    numbers = run_child(args, env)
    tiles = None
    for line in numbers["stdout"].splitlines():
        message = json.loads(line)
        if message.get("stage") == "predict":
            tiles = message.get("total")
    sidecar = json.loads(Path(str(output).replace(".nii.gz", ".json")).read_text())
    return {**numbers, "tiles": tiles, "backend": sidecar["settings"]["backend"], "roi": sidecar["roi"]}


def read_labels(path: Path) -> np.ndarray:
    import SimpleITK as sitk

    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def dice_per_level(a: np.ndarray, b: np.ndarray) -> dict:
    result = {}
    for level, name in zip(LEVELS, LEVEL_NAMES):
        x, y = a == level, b == level
        total = int(x.sum()) + int(y.sum())
        result[name] = 1.0 if total == 0 else 2.0 * int((x & y).sum()) / total
    return result


# ---------------------------------------------------------------------------------------------------- reporting
def summary(dice: dict) -> str:
    values = list(dice.values())
    return f"min {min(values):.3f} mean {np.mean(values):.3f}"


def print_table(rows, threads: int) -> None:
    load = os.getloadavg()
    print(f"\nSegmentation vs SCT-like reference, {threads} threads, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, load average at end {load[0]:.2f}")
    header = (f"{'case':<9} {'runner':<10} {'backend':<18} {'tiles':>5} {'wall s':>7} {'x ref':>6} {'cpu s':>7} "
              f"{'RSS MiB':>8}  {'Dice vs reference':<22} {'Dice vs truth':<22}")
    print(header)
    print("-" * len(header))
    for row in rows:
        ratio = row["wall_s"] / row["reference_wall_s"] if row.get("reference_wall_s") else float("nan")
        print(f"{row['case']:<9} {row['runner']:<10} {row['backend']:<18} {row['tiles'] or '-':>5} "
              f"{row['wall_s']:>7.1f} {ratio:>6.2f} {row['cpu_s']:>7.1f} {row['rss_mib']:>8.0f}  "
              f"{summary(row['dice_vs_reference']) if row.get('dice_vs_reference') else '-':<22} "
              f"{summary(row['dice_vs_truth']):<22}")
    print("\nWall time of each round (s), and its ratio to the reference's run of the same round:")
    for row in rows:
        walls = " ".join(f"{v:.1f}" for v in row["wall_s_rounds"])
        ratios = " ".join(f"{v:.2f}" for v in row["ratio_rounds"])
        print(f"  {row['case']:<9} {row['runner']:<10} {walls:<24} x ref {ratios}")
    print("\nPer-label Dice (C2..T1):")
    for row in rows:
        for key in ("dice_vs_reference", "dice_vs_truth"):
            if row.get(key):
                values = " ".join(f"{v:.3f}" for v in row[key].values())
                print(f"  {row['case']:<9} {row['runner']:<10} {key:<18} {values}")


# ---------------------------------------------------------------------------------------------------------- main
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default="full,demo,demo-big")
    parser.add_argument("--repeats", type=int, default=1, help="interleaved rounds (medians are reported)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--margins", default="", help="comma-separated ROI margins (mm) to compare, e.g. 10,20,30")
    parser.add_argument("--margin-cases", default="demo-big", help="cases the --margins study runs on")
    parser.add_argument("--demo-model", help="demo model folder (default: the embedded one)")
    parser.add_argument("--json", help="also write every number to this JSON file")
    parser.add_argument("--keep", help="work folder to keep (default: a temporary folder)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_vs_reference_") as tmp:
        work = Path(args.keep or tmp)
        work.mkdir(parents=True, exist_ok=True)
        # an OpenVINO cache of its own, so the first run really converts and later runs really reuse it
        env = dict(os.environ, PYTHONPATH=str(REPO), ROOTLETSEG_HOME=str(work / "rootletseg_home"))
        cases = {}
        for case in [c for c in args.cases.split(",") if c]:
            if case == "full":
                cases[case] = (write_phantom_case(work / "phantom_big", **BIG_GRID), full_size_model(work / "full"))
            elif case == "demo":
                cases[case] = (write_phantom_case(work / "phantom_default"), demo_model(args.demo_model))
            elif case == "demo-big":
                cases[case] = (write_phantom_case(work / "phantom_big", **BIG_GRID), demo_model(args.demo_model))
            else:
                parser.error(f"unknown case {case}")
        first_runs = {}
        for case, (paths, trainer) in cases.items():
            (work / case).mkdir(parents=True, exist_ok=True)
            print(f"[{case}] first run (converts for OpenVINO) ...", file=sys.stderr, flush=True)
            first = rootletseg(paths["image"], trainer, work / case / "first_rootlets.nii.gz", args.threads, env)
            first_runs[case] = first["wall_s"]
        measured = {}
        for round_index in range(args.repeats):
            for case, (paths, trainer) in cases.items():
                folder = work / case
                print(f"[{case}] round {round_index + 1}: reference, default, cord ...", file=sys.stderr, flush=True)
                runs = {
                    "reference": reference(paths["image"], trainer, folder / "reference_rootlets.nii.gz",
                                           args.threads),
                    "default": rootletseg(paths["image"], trainer, folder / "default_rootlets.nii.gz", args.threads,
                                          env),
                    "cord": rootletseg(paths["image"], trainer, folder / "cord_rootlets.nii.gz", args.threads, env,
                                       cord=paths["cord"]),
                }
                for runner, numbers in runs.items():
                    measured.setdefault((case, runner), []).append(numbers)
        rows = []
        for case, (paths, _trainer) in cases.items():
            truth = read_labels(paths["rootlets"])
            reference_labels = read_labels(work / case / "reference_rootlets.nii.gz")
            reference_wall = float(np.median([n["wall_s"] for n in measured[(case, "reference")]]))
            for runner in ("reference", "default", "cord"):
                numbers = measured[(case, runner)]
                labels = read_labels(work / case / f"{runner}_rootlets.nii.gz")
                rows.append({
                    "case": case, "runner": runner, "backend": numbers[-1]["backend"], "tiles": numbers[-1]["tiles"],
                    "wall_s": float(np.median([n["wall_s"] for n in numbers])),
                    "wall_s_rounds": [round(n["wall_s"], 2) for n in numbers],
                    # rounds are interleaved: each round's ratio compares runs made minutes apart
                    "ratio_rounds": [round(n["wall_s"] / r["wall_s"], 3)
                                     for n, r in zip(numbers, measured[(case, "reference")])],
                    "cpu_s": float(np.median([n["cpu_s"] for n in numbers])),
                    "rss_mib": float(max(n["rss_mib"] for n in numbers)),
                    "reference_wall_s": reference_wall,
                    "dice_vs_reference": None if runner == "reference" else dice_per_level(labels, reference_labels),
                    "dice_vs_truth": dice_per_level(labels, truth),
                    "roi": numbers[-1].get("roi"),
                    "first_run_s": first_runs[case] if runner == "default" else None,
                })
        print_table(rows, args.threads)
        print("\nFirst run of `rootletseg segment` per model (includes the OpenVINO conversion, then cached): " +
              ", ".join(f"{case} {seconds:.1f} s" for case, seconds in first_runs.items()))
        for row in rows:
            if row["runner"] == "cord" and row["roi"]:
                roi = row["roi"]
                box = f"box {roi.get('size_ijk')} ({roi.get('voxel_fraction')})" if roi.get("cropped") else roi.get(
                    "reason")
                print(f"  {row['case']} cord: {box}")

        margin_rows = []
        margins = [float(m) for m in args.margins.split(",") if m]
        for case in [c for c in args.margin_cases.split(",") if c and margins and c in cases]:
            paths, trainer = cases[case]
            truth = read_labels(paths["rootlets"])
            whole = read_labels(work / case / "default_rootlets.nii.gz")
            for margin in margins:
                output = work / case / f"margin_{margin:g}_rootlets.nii.gz"
                numbers = rootletseg(paths["image"], trainer, output, args.threads, env, cord=paths["cord"],
                                     margin=margin)
                labels = read_labels(output)
                margin_rows.append({"case": case, "margin_mm": margin, "wall_s": numbers["wall_s"],
                                    "tiles": numbers["tiles"], "roi": numbers["roi"],
                                    "dice_vs_whole": dice_per_level(labels, whole),
                                    "dice_vs_truth": dice_per_level(labels, truth)})
            whole_truth = dice_per_level(whole, truth)
            print(f"\nROI margin study, {case} (whole volume: Dice vs truth {summary(whole_truth)}):")
            print(f"{'margin mm':>9} {'tiles':>5} {'wall s':>7} {'voxels':>7}  {'Dice vs whole volume':<22} "
                  f"{'Dice vs truth':<22} {'worst level vs truth - whole':>28}")
            for row in [r for r in margin_rows if r["case"] == case]:
                worst = min(row["dice_vs_truth"][n] - whole_truth[n] for n in LEVEL_NAMES)
                fraction = row["roi"].get("voxel_fraction", 1.0) if row["roi"].get("cropped") else 1.0
                print(f"{row['margin_mm']:>9g} {row['tiles'] or '-':>5} {row['wall_s']:>7.1f} {fraction:>7.3f}  "
                      f"{summary(row['dice_vs_whole']):<22} {summary(row['dice_vs_truth']):<22} {worst:>+28.4f}")
        if args.json:
            Path(args.json).write_text(json.dumps({"rows": rows, "margins": margin_rows, "first_runs": first_runs},
                                                  indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())

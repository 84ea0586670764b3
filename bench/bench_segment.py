"""Benchmark `rootletseg segment`: wall time, CPU time and peak memory, one child process per case.

Cases:
  demo   the demo phantom (phantom.make_phantom(seed=0)) with the embedded demo model, when RootletSegLogic/synthetic/models/demo
         exists;
  full   a 64 x 320 x 320 (z, y, x) volume at 0.8 mm with nnU-Net's default full-size network for it (patch
         48 x 224 x 224, ~30.5 M parameters, UNTRAINED: Testing/Python/model_factory.py runs nnU-Net's
         ExperimentPlanner on a fabricated fingerprint), one fold.
Each runs without test-time augmentation; --tta adds the same cases with --tta.

Measured per case (the child is `python -m RootletSegLogic segment ... --progress json`):
  wall      seconds from start to exit (imports, model load, prediction, writing);
  predict   seconds from the first to the last "predict" progress line (the sliding window only);
  cpu       user + sys seconds of the child and its descendants (getrusage(RUSAGE_CHILDREN) delta);
  rss       peak resident memory of the child (ru_maxrss from wait4), MiB.

Usage: .venv/bin/python bench/bench_segment.py [--tta] [--cases demo,full] [--device cpu] [--threads 1,2]
       [--demo-model DIR]
       [--keep DIR] [--json FILE]
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "Testing" / "Python"))


def prepare_demo(work: Path, demo_model: str = None):
    from RootletSegLogic.segmentation.registry import EMBEDDED_DEMO_PATH
    from RootletSegLogic.synthetic.phantom import make_phantom, write_phantom

    if demo_model is None and not EMBEDDED_DEMO_PATH.is_dir():
        return None
    paths = write_phantom(make_phantom(seed=0), work / "demo")
    return Path(paths["image"]), demo_model or "demo"


def prepare_full(work: Path):
    import numpy as np
    import SimpleITK as sitk
    from model_factory import full_size_plans, make_model_folder

    model = make_model_folder(work / "full_model", full_size_plans((64, 320, 320), (0.8, 0.8, 0.8)), seed=0)
    rng = np.random.default_rng(0)
    z, y, x = np.mgrid[0:64, 0:320, 0:320].astype(np.float32)
    array = 200 + 100 * np.exp(-(((x - 160) / 40) ** 2 + ((y - 170) / 30) ** 2)) + 0.3 * z
    array += rng.normal(0, 10, array.shape).astype(np.float32)
    image = sitk.GetImageFromArray(array.astype(np.float32))
    image.SetSpacing((0.8, 0.8, 0.8))
    image.SetDirection((-1, 0, 0, 0, -1, 0, 0, 0, 1))  # RAS, as the model wants: no permutation cost measured
    path = work / "full" / "volume_64x320x320.nii.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))
    return path, str(model)


def run_case(image: Path, model: str, device: str, tta: bool, threads=None) -> dict:
    output = image.parent / f"out_{'tta' if tta else 'plain'}_rootlets.nii.gz"
    args = [sys.executable, "-m", "RootletSegLogic", "segment", str(image), "-o", str(output), "--model", model,
            "--device", device, "--progress", "json", "--overwrite"] + (["--tta"] if tta else [])
    args += ["--threads", str(threads)] if threads else []
    env = dict(os.environ, PYTHONPATH=str(REPO))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    process = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first_predict = last_predict = None
    tiles = None
    result = None
    for line in process.stdout:
        message = json.loads(line)
        if message.get("stage") == "predict":
            now = time.perf_counter()
            first_predict = first_predict or now
            last_predict = now
            tiles = message["total"]
        if message.get("type") == "result":
            result = message["outputs"]
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if process.returncode != 0 or result is None:
        raise SystemExit(f"segment failed ({process.returncode}):\n{stderr}")
    return {
        "wall_s": wall,
        "predict_s": (last_predict - first_predict) if first_predict else float("nan"),
        "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "rss_mib": usage.ru_maxrss / 1024.0,
        "tiles": tiles,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tta", action="store_true", help="also run each case with --tta")
    parser.add_argument("--cases", default="demo,full", help="comma-separated: demo, full")
    parser.add_argument("--device", default="cpu", help="device for segment (default cpu)")
    parser.add_argument("--threads", default="", help="comma-separated thread counts to compare (default: segment's "
                        "own default, all CPUs)")
    parser.add_argument("--demo-model", help="model folder for the demo case (default: the embedded demo model)")
    parser.add_argument("--keep", help="work folder to keep (default: a temporary folder, removed)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_segment_") as tmp:
        work = Path(args.keep or tmp)
        work.mkdir(parents=True, exist_ok=True)
        rows = []
        for case in args.cases.split(","):
            prepared = prepare_demo(work, args.demo_model) if case == "demo" else prepare_full(work)
            if prepared is None:
                print(f"[{case}] skipped: the demo model (RootletSegLogic/synthetic/models/demo) is not present", file=sys.stderr)
                continue
            image, model = prepared
            for threads in [int(t) for t in args.threads.split(",") if t] or [None]:
                for tta in ([False, True] if args.tta else [False]):
                    print(f"[{case}{' tta' if tta else ''}] running ...", file=sys.stderr, flush=True)
                    numbers = run_case(image, model, args.device, tta, threads)
                    rows.append({"case": case, "tta": tta, "threads": threads or os.cpu_count(), **numbers})

    cpus = os.cpu_count()
    load = os.getloadavg()
    print(f"\nrootletseg segment, device {args.device}; {platform.processor() or platform.machine()}, {cpus} CPUs, "
          f"load average at end {load[0]:.2f}")
    header = f"{'case':<6} {'tta':<4} {'threads':>7} {'tiles':>6} {'wall s':>8} {'predict s':>10} {'cpu s':>8} {'peak RSS MiB':>13}"
    print(header)
    print("-" * len(header))
    for row in rows:
        print(f"{row['case']:<6} {'yes' if row['tta'] else 'no':<4} {row['threads']:>7} {row['tiles']:>6} {row['wall_s']:>8.1f} "
              f"{row['predict_s']:>10.1f} {row['cpu_s']:>8.1f} {row['rss_mib']:>13.0f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

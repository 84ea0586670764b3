"""Benchmark `rootletseg batch`: throughput with 1 and 2 local Dask workers, and the resume time of a finished
dataset.

Dataset: N phantom subjects (`cohort.phantom_bids.write_phantom_bids`, 48 x 48 x 128 voxels at 1 mm, with cord,
discs and PMJ in derivatives/labels), the embedded demo model. Each configuration runs the real command in a fresh
process (`python -m RootletSegLogic batch ... --jobs J`) into a new output folder; its wall time includes the
process start, imports, the Dask cluster start, every subject (segmentation, levels, figures, record) and the group
statistics and report. Then the same command again on the finished output (every subject skipped: hashing inputs
and reading records, no cluster is started).

PyTorch threads per worker: the CPUs shared between the workers (the batch's default), unless --threads.

Usage: .venv/bin/python bench/bench_batch.py [--subjects 8] [--jobs 1 2] [--threads T]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def run_batch(root: Path, out: Path, jobs: int, threads, home: Path) -> float:
    command = [sys.executable, "-m", "RootletSegLogic", "batch", str(root), "-o", str(out), "--model", "demo",
               "--jobs", str(jobs), "--progress", "none"]
    if threads:
        command += ["--threads", str(threads)]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, ROOTLETSEG_HOME=str(home)))
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"batch failed ({result.returncode}): {result.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=8)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    from RootletSegLogic.cohort.phantom_bids import write_phantom_bids

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory(prefix="bench_batch_") as tmp:
        tmp = Path(tmp)
        root = tmp / "bids"
        write_phantom_bids(root, subjects=args.subjects)
        print(f"dataset: {args.subjects} phantom subjects, demo model")
        print(f"{'jobs':>4} {'first run s':>12} {'subjects/min':>13} {'s/subject':>10} {'resume s':>9}")
        for jobs in args.jobs:
            out = tmp / f"out_{jobs}"
            first = run_batch(root, out, jobs, args.threads, tmp / "home")
            resume = run_batch(root, out, jobs, args.threads, tmp / "home")
            print(f"{jobs:>4} {first:>12.1f} {60 * args.subjects / first:>13.1f} {first / args.subjects:>10.2f} "
                  f"{resume:>9.2f}")


if __name__ == "__main__":
    main()

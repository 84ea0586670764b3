"""Benchmark `compute_levels` (+ the spinal level label image) on a large volume.

Volume: 141 x 141 x 991 voxels (R-L, A-P, S-I) at 0.5 mm isotropic (70 x 70 x 495 mm), synthesised here:
an elliptic cord (12 x 8 mm) along a gently curved centerline over the whole S-I extent, rootlets for C2..T1
(each level ~12 mm high: thin lateral tubes on both sides, leaving the cord surface), 9 disc points and a PMJ above.
Orientation: PSR (a sagittal acquisition, S along the 2nd voxel axis), so the axial axis is not the last one.

Timed (median of --repeat runs, after one warm-up): `compute_levels` with discs and PMJ, and
`spinal_level_label_image`; reading/writing files is not included (see `rootletseg levels` for that).

With --cli, also the wall time of the whole command (`python -m RootletSegLogic levels`, a fresh process: imports,
reading the .nii.gz files, computing, writing TSV + JSON + label image), after writing the synthetic volume to a
temporary folder.

Usage: .venv/bin/python bench/bench_levels.py [--repeat 5] [--orientation PSR] [--cli]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SHAPE_RL_AP_SI = (141, 141, 991)
SPACING_MM = 0.5


def synthesise(orientation: str = "PSR"):
    import numpy as np
    import SimpleITK as sitk

    from RootletSegLogic.images.orientation import direction_for_axcodes, reorient
    from RootletSegLogic.images.world import ras_to_lps
    from RootletSegLogic.levels.types import DiscPoint

    nx, ny, nz = SHAPE_RL_AP_SI
    h = SPACING_MM
    # RAS grid: x = R-L index (toward R), y = A-P (toward A), z = S-I (toward S); numpy (z, y, x)
    z_mm = (np.arange(nz) - (nz - 1) / 2) * h
    y_mm = (np.arange(ny) - (ny - 1) / 2) * h
    x_mm = (np.arange(nx) - (nx - 1) / 2) * h
    center_a = 4.0 * np.sin(z_mm / 120.0)  # gentle A-P curve
    cord = np.zeros((nz, ny, nx), np.uint8)
    rootlets = np.zeros((nz, ny, nx), np.uint8)
    yy, xx = np.meshgrid(y_mm, x_mm, indexing="ij")
    top = 200.0  # cord from S = -240 mm to S = +200 mm
    for k in range(nz):
        if z_mm[k] > top:
            continue
        dy = yy - center_a[k]
        cord[k] = ((xx / 6.0) ** 2 + (dy / 4.0) ** 2 <= 1.0)
    # rootlets: level v spans 12 mm starting 15 mm below the cord top, 2 mm gaps; tubes leave the cord laterally
    level_top = {v: top - 15.0 - (v - 2) * 14.0 for v in range(2, 10)}
    for v, s0 in level_top.items():
        for s in np.linspace(s0, s0 - 12.0, 7):
            k = int(round(s / h + (nz - 1) / 2))
            for side in (-1, 1):
                for dz in range(3):
                    for ax in np.arange(5.5, 20.0, h):  # from the cord surface outward, descending slightly
                        kk = k - dz - int(round((ax - 5.5) * 0.3 / h))
                        i = int(round((side * ax) / h + (nx - 1) / 2))
                        j = int(round((center_a[k] - 1.0) / h + (ny - 1) / 2))
                        rootlets[kk, j - 1:j + 2, i] = v
    images = []
    for arr in (rootlets, cord):
        img = sitk.GetImageFromArray(arr)
        img.SetSpacing((h, h, h))
        img.SetDirection(direction_for_axcodes("RAS"))
        img.SetOrigin(ras_to_lps([x_mm[0], y_mm[0], z_mm[0]]).tolist())
        images.append(reorient(img, orientation))
    discs = [DiscPoint(n, (0.0, 8.0, float(level_top[n] + 14.0 - 6.0 - 3.0 * (n - 2)))) for n in range(2, 11)
             if n in level_top] + [DiscPoint(10, (0.0, 8.0, float(level_top[9] - 30.0)))]
    pmj = (0.0, 2.0, top + 25.0)
    return images[0], images[1], discs, pmj


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--orientation", default="PSR")
    parser.add_argument("--cli", action="store_true", help="also time the `rootletseg levels` command on files")
    args = parser.parse_args(argv)

    import numpy as np  # noqa: F401
    import SimpleITK as sitk

    from RootletSegLogic.levels.entry_zone import spinal_level_label_image
    from RootletSegLogic.levels.method import compute_levels

    t0 = time.perf_counter()
    rootlets, cord, discs, pmj = synthesise(args.orientation)
    print(f"synthesised {rootlets.GetSize()} {args.orientation} at {SPACING_MM} mm in {time.perf_counter() - t0:.1f} s "
          f"({int(np.prod(rootlets.GetSize())) / 1e6:.1f} M voxels; cord "
          f"{int(sitk.GetArrayViewFromImage(cord).sum())} voxels, rootlets "
          f"{int((sitk.GetArrayViewFromImage(rootlets) > 0).sum())} voxels)")
    result = compute_levels(rootlets, cord, discs, pmj)  # warm-up (imports, caches)
    spinal_level_label_image(rootlets, cord, result)
    t_levels, t_label = [], []
    for _ in range(args.repeat):
        t = time.perf_counter()
        result = compute_levels(rootlets, cord, discs, pmj)
        t_levels.append(time.perf_counter() - t)
        t = time.perf_counter()
        spinal_level_label_image(rootlets, cord, result)
        t_label.append(time.perf_counter() - t)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, python {platform.python_version()}")
    print(f"levels: {[r.level for r in result.spinal()]} spinal, {[r.level for r in result.vertebral()]} vertebral; "
          f"warnings: {result.warnings}")
    med_l, med_i = statistics.median(t_levels), statistics.median(t_label)
    print(f"compute_levels       median {med_l:.3f} s (min {min(t_levels):.3f}, max {max(t_levels):.3f}, n={args.repeat})")
    print(f"label image          median {med_i:.3f} s (min {min(t_label):.3f}, max {max(t_label):.3f})")
    print(f"total                median {med_l + med_i:.3f} s  (goal < 1 s)")
    if args.cli:
        _bench_cli(rootlets, cord, discs, pmj, args.repeat)
    return 0


def _bench_cli(rootlets, cord, discs, pmj, repeat: int) -> None:
    import json
    import subprocess
    import tempfile

    import SimpleITK as sitk

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sitk.WriteImage(rootlets, str(tmp / "rootlets.nii.gz"), True)
        sitk.WriteImage(cord, str(tmp / "cord.nii.gz"), True)
        points = {"coordinate_system": "RAS", "points": [{"value": d.value, "position": list(d.position_ras)}
                                                        for d in discs] + [{"name": "PMJ", "position": list(pmj)}]}
        (tmp / "discs.json").write_text(json.dumps(points))
        times = []
        for _ in range(repeat):
            cmd = [sys.executable, "-m", "RootletSegLogic", "levels", "--rootlets", str(tmp / "rootlets.nii.gz"),
                   "--cord", str(tmp / "cord.nii.gz"), "--disc-points", str(tmp / "discs.json"),
                   "-o", str(tmp / "out.tsv"), "--json", str(tmp / "out.json"),
                   "--label-image", str(tmp / "out_levels.nii.gz"), "--overwrite", "--progress", "none"]
            t = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True, cwd=str(REPO))
            times.append(time.perf_counter() - t)
        print(f"rootletseg levels    median {statistics.median(times):.3f} s wall (fresh process: imports, reading "
              f"2 x .nii.gz, computing, writing TSV + JSON + label image; n={repeat})")


if __name__ == "__main__":
    sys.exit(main())

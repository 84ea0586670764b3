"""Hand-built LevelResults for the export / statistics / figures tests (independent of levels.py).

`synthetic_result` is a fixed, plausible subject with known numbers; `result_from_files` computes a simple
result from real label files (rootlet S extent per level inside the cord's slices, vertebral levels between disc
centroids), enough to exercise the figures on real data.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from RootletSegLogic.images.world import lps_to_ras, voxel_centers_lps
from RootletSegLogic.levels.types import (
    PAPER_PAIRINGS,
    SPINAL_LEVEL_NAMES,
    VERTEBRAL_LEVEL_NAMES,
    Centerline,
    LevelResult,
    LevelRow,
    Overlap,
    Pairing,
)


def _row(level_type, value, rostral_pmj, caudal_pmj, pmj_s=100.0, x=1.5, y=-2.0, with_pmj=True, n=0, method="paper"):
    names = SPINAL_LEVEL_NAMES if level_type == "spinal" else VERTEBRAL_LEVEL_NAMES
    rs, cs = pmj_s - rostral_pmj, pmj_s - caudal_pmj
    return LevelRow(
        level_type=level_type, level=names[value], label_value=value, rostral_S_mm=rs, caudal_S_mm=cs,
        height_mm=caudal_pmj - rostral_pmj,
        rostral_pmj_mm=rostral_pmj if with_pmj else None, caudal_pmj_mm=caudal_pmj if with_pmj else None,
        midpoint_pmj_mm=(rostral_pmj + caudal_pmj) / 2 if with_pmj else None,
        rostral_ras=(x, y, rs), caudal_ras=(x, y, cs), midpoint_ras=(x, y, (rs + cs) / 2), n_voxels=n, method=method,
        # without a PMJ the reference plane is S = pmj_s, so the S-axis distances equal the PMJ distances here
        rostral_distance_mm=rostral_pmj, caudal_distance_mm=caudal_pmj, midpoint_distance_mm=(rostral_pmj + caudal_pmj) / 2,
    )


def overlaps_and_pairings(rows, use_pmj=True):
    """Overlaps (fraction of spinal height in each vertebral level) and both pairings, computed plainly."""
    spinal = [r for r in rows if r.level_type == "spinal"]
    vertebral = [r for r in rows if r.level_type == "vertebral"]

    def span(r):
        if use_pmj:
            return r.rostral_pmj_mm, r.caudal_pmj_mm
        return -r.rostral_S_mm, -r.caudal_S_mm

    overlaps = []
    for s in spinal:
        a, b = span(s)
        for v in vertebral:
            c, d = span(v)
            inter = min(b, d) - max(a, c)
            if inter > 0 and b > a:
                overlaps.append(Overlap(s.level, v.level, inter / (b - a)))
    pairings = []
    by = {(r.level_type, r.level): r for r in rows}
    for pairing, pairs in PAPER_PAIRINGS.items():
        for v, s in pairs:
            if ("vertebral", v) in by and ("spinal", s) in by:
                vm, sm = sum(span(by["vertebral", v])) / 2, sum(span(by["spinal", s])) / 2
                pairings.append(Pairing(pairing, v, s, vm, sm, vm - sm, (vm + sm) / 2))
    return overlaps, pairings


def synthetic_result(with_pmj=True, shift=0.0, scale=1.0, method="paper") -> LevelResult:
    """Spinal C2..C8 and vertebral C2..T1 with the PMJ at S = 100 mm; `shift`/`scale` vary a subject."""
    spinal_bounds = {2: (55, 66), 3: (64, 76), 4: (75, 88), 5: (87, 100), 6: (99, 113), 7: (112, 126), 8: (125, 140)}
    vertebral_bounds = {2: (50, 68), 3: (68, 84), 4: (84, 100), 5: (100, 116), 6: (116, 132), 7: (132, 148), 8: (148, 166)}
    rows = [_row("spinal", v, a * scale + shift, b * scale + shift, with_pmj=with_pmj, n=40 + v, method=method)
            for v, (a, b) in spinal_bounds.items()]
    rows += [_row("vertebral", v, a * scale, b * scale, with_pmj=with_pmj, method="discs")
             for v, (a, b) in vertebral_bounds.items()]
    overlaps, pairings = overlaps_and_pairings(rows, use_pmj=with_pmj)
    centerline = Centerline(points_ras=[[1.5, -2.0, 100.0 - d] for d in range(0, 200, 2)],
                            distance_mm=[float(d) for d in range(0, 200, 2)])
    return LevelResult(rows=rows, overlaps=overlaps, pairings=pairings, method=method,
                       distance_reference="pmj" if with_pmj else "S-axis",
                       pmj_ras=(1.5, -2.0, 100.0) if with_pmj else None, centerline=centerline,
                       warnings=["example warning"], provenance={"inputs": {"rootlets": {"sha256": "0" * 64}}},
                       reference_S_mm=None if with_pmj else 100.0)


def _world_ras(image, mask_zyx):
    kji = np.argwhere(mask_zyx)
    return lps_to_ras(voxel_centers_lps(image, kji[:, ::-1]))


def result_from_files(rootlets_path, cord_path=None, discs_path=None) -> LevelResult:
    """A simple result from real files: S extent of each rootlet level (within the cord's S range), discs' centroids.

    Distances are along S only (distance_reference "S-axis"); points sit at the cord's mean R/A.
    """
    rootlets = sitk.ReadImage(str(rootlets_path))
    labels = sitk.GetArrayFromImage(rootlets)
    cord_ras = None
    if cord_path is not None:
        cord = sitk.ReadImage(str(cord_path))
        cord_ras = _world_ras(cord, sitk.GetArrayFromImage(cord) > 0)
    r0, a0 = (cord_ras[:, 0].mean(), cord_ras[:, 1].mean()) if cord_ras is not None else (0.0, 0.0)
    rows = []
    for value in sorted(int(v) for v in np.unique(labels) if v in SPINAL_LEVEL_NAMES):
        s = _world_ras(rootlets, labels == value)[:, 2]
        top, bottom = float(s.max()), float(s.min())
        rows.append(LevelRow("spinal", SPINAL_LEVEL_NAMES[value], value, top, bottom, top - bottom,
                             rostral_ras=(r0, a0, top), caudal_ras=(r0, a0, bottom),
                             midpoint_ras=(r0, a0, (top + bottom) / 2), n_voxels=int((labels == value).sum())))
    if discs_path is not None:
        discs = sitk.ReadImage(str(discs_path))
        disc_array = sitk.GetArrayFromImage(discs)
        centroid = {int(v): _world_ras(discs, disc_array == v).mean(axis=0) for v in np.unique(disc_array) if v != 0}
        for value in range(2, 9):
            if value in centroid and value + 1 in centroid:
                top, bottom = float(centroid[value][2]), float(centroid[value + 1][2])
                rows.append(LevelRow("vertebral", VERTEBRAL_LEVEL_NAMES[value], value, top, bottom, top - bottom,
                                     rostral_ras=tuple(centroid[value]), caudal_ras=tuple(centroid[value + 1]),
                                     midpoint_ras=tuple((centroid[value] + centroid[value + 1]) / 2), method="discs"))
    overlaps, pairings = overlaps_and_pairings(rows, use_pmj=False)
    return LevelResult(rows=rows, overlaps=overlaps, pairings=pairings, method="paper", distance_reference="S-axis")

"""Gap-free spinal levels: the paper's bounds moved so that consecutive levels touch (rows of `method.py`).

Two definitions (the paper's method leaves gaps and overlaps between levels):
- "gapless" (rostral to next rostral): each level runs from its own rostral bound to the next present level's
  rostral bound; the last level keeps its own caudal bound.
- "gapless-caudal" (SCT issue 5111's definition, caudal to next caudal): each level runs from the caudal bound of
  the level above it (the previous present level) to its own caudal bound; the first level keeps its own rostral
  bound. Where the level above ends below this level's end, this level keeps its own rostral bound (a warning).
Distances are in the rows' reference (PMJ arc or S axis), mm.
"""

from __future__ import annotations

from typing import List

from RootletSegLogic.levels.centerline import DistanceReference
from RootletSegLogic.levels.types import LevelRow


def apply_gapless(rows: List[LevelRow], reference: DistanceReference, with_pmj: bool, warnings: List[str]) -> None:
    """Each level's caudal bound becomes the next row's rostral bound (rows sorted by level value)."""
    originals = [(row.rostral_S_mm, row.rostral_distance_mm, row.rostral_ras) for row in rows]
    for row, nxt in zip(rows, originals[1:]):
        s, d, ras = nxt
        if d < row.rostral_distance_mm:
            warnings.append(f"Gapless: the next level's rostral bound lies above {row.level}'s; {row.level} keeps height 0.")
            s, d, ras = row.rostral_S_mm, row.rostral_distance_mm, row.rostral_ras
        row.caudal_S_mm, row.caudal_distance_mm, row.caudal_ras = float(s), float(d), ras
        update_midpoint(row, reference, with_pmj)


def apply_gapless_caudal(rows: List[LevelRow], reference: DistanceReference, with_pmj: bool,
                          warnings: List[str]) -> None:
    """SCT issue 5111: each level's rostral bound becomes the previous row's caudal bound (rows sorted by level)."""
    originals = [(row.caudal_S_mm, row.caudal_distance_mm, row.caudal_ras) for row in rows]
    for row, previous in zip(rows[1:], originals):
        s, d, ras = previous
        if d > row.caudal_distance_mm:
            warnings.append(f"Gapless (caudal): the level above ends below {row.level}'s caudal bound; {row.level} "
                            "keeps its own rostral bound.")
            continue
        row.rostral_S_mm, row.rostral_distance_mm, row.rostral_ras = float(s), float(d), ras
        update_midpoint(row, reference, with_pmj)
        if with_pmj:
            row.rostral_pmj_mm = row.rostral_distance_mm


def update_midpoint(row: LevelRow, reference: DistanceReference, with_pmj: bool) -> None:
    """Height, midpoint distance and midpoint point of a row whose bounds were moved."""
    row.height_mm = float(max(0.0, row.caudal_distance_mm - row.rostral_distance_mm))
    row.midpoint_distance_mm = 0.5 * (row.rostral_distance_mm + row.caudal_distance_mm)
    if reference.reference_s is None:
        row.midpoint_ras = reference.point_at_arc(row.midpoint_distance_mm + reference.arc_origin)
    else:
        row.midpoint_ras = reference.point_at_arc(
            float(reference.arc_at_s(reference.reference_s - row.midpoint_distance_mm)))
    if with_pmj:
        row.caudal_pmj_mm = row.caudal_distance_mm
        row.midpoint_pmj_mm = row.midpoint_distance_mm

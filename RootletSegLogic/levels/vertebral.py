"""Vertebral levels from disc points for `method.compute_levels`: the disc checks, their projection onto the
distance reference, and one row per vertebral level.

SCT convention: disc value 2 = C1/C2, ..., 8 = C7/T1, 9 = T1/T2; vertebral level N lies between discs N and N+1. Each
disc is projected onto the reference line (nearest point in 3-D, RAS mm); its bound S is the S of the projected
point; distances as for spinal levels (mm, PMJ arc or S axis); method "discs".
"""

from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np

from RootletSegLogic.errors import UserError
from RootletSegLogic.levels.centerline import POSITION_TOLERANCE_MM, DistanceReference
from RootletSegLogic.levels.discs import vertebra_name
from RootletSegLogic.levels.rows import make_row
from RootletSegLogic.levels.types import DiscPoint, LevelRow

DISC_FAR_FROM_CORD_MM = 40.0  # disc points (posterior disc tips or centres) lie well within this of the centerline

def check_discs(disc_points: List[DiscPoint], pmj_ras, reference: DistanceReference, has_cord: bool,
                 warnings: List[str]) -> dict:
    """{value: {"S": projected S, "arc": arc, "ras": projected point}} after the order checks."""
    from RootletSegLogic.levels.discs import disc_name

    seen: Dict[int, DiscPoint] = {}
    for disc in disc_points:
        value = int(disc.value)
        if value in seen:
            raise UserError(f"Disc {disc_name(value)} (value {value}) is given twice: keep one point per disc.")
        if value < 1:
            raise UserError(f"Disc value {value} is not an SCT disc label (1 = C1 top, 2 = C1/C2, 3 = C2/C3, ...).")
        position = tuple(float(v) for v in disc.position_ras)
        if len(position) != 3 or not np.all(np.isfinite(position)):
            raise UserError(f"Disc {disc_name(value)} has no valid position: give three RAS coordinates in mm.")
        seen[value] = disc
    ordered = sorted(seen)
    for upper, lower in zip(ordered, ordered[1:]):
        s_up, s_low = seen[upper].position_ras[2], seen[lower].position_ras[2]
        if s_low >= s_up:
            raise UserError(
                f"Discs are out of anatomical order: {disc_name(lower)} (S = {s_low:.1f} mm) is not below "
                f"{disc_name(upper)} (S = {s_up:.1f} mm); check the disc labels."
            )
    if pmj_ras is not None and ordered:
        first = seen[ordered[0]]
        if pmj_ras[2] < first.position_ras[2] - POSITION_TOLERANCE_MM:
            raise UserError(
                f"The PMJ (S = {pmj_ras[2]:.1f} mm) lies below the first disc {disc_name(first.value)} "
                f"(S = {first.position_ras[2]:.1f} mm): the PMJ is above all discs, check the PMJ and disc points."
            )
    info: Dict[int, dict] = {}
    beyond, far = [], []
    for value in ordered:
        arc, point = reference.project(seen[value].position_ras)
        if reference.on_extension(arc):
            beyond.append(disc_name(value))
        distance = float(np.linalg.norm(np.asarray(seen[value].position_ras, float) - np.asarray(point, float)))
        if has_cord and distance > DISC_FAR_FROM_CORD_MM:
            far.append((disc_name(value), distance))
        info[value] = {"S": point[2], "arc": arc, "ras": point}
    if far:
        # Real disc points lie within a few cm of the cord; much farther is usually points written in LPS but read
        # as RAS (or the reverse), which flips them to the other side of the head-foot axis.
        shown = ", ".join(f"{name} ({distance:.0f} mm)" for name, distance in far)
        warnings.append(
            f"Disc point(s) {shown} lie far from the cord (more than {DISC_FAR_FROM_CORD_MM:.0f} mm): check that the "
            "points are on this image and that their frame (RAS or LPS) is the one stated."
        )
    arcs = [info[v]["arc"] for v in ordered]
    if any(b < a for a, b in zip(arcs, arcs[1:])):
        warnings.append("After projection onto the centerline some discs are out of order: check the disc points.")
    if beyond and has_cord:  # without a cord every distance is along S: there is no cord end to go beyond
        warnings.append(
            f"Disc(s) {', '.join(beyond)} project beyond the ends of the cord mask: their positions are extended "
            f"straight along S."
        )
    return info


def s_axis_origin(bounds: Dict[int, dict], disc_info: dict, centerline_points: Optional[np.ndarray]) -> float:
    """World S (mm) where S-axis distances (no PMJ) are 0: the highest level bound, disc or cord point."""
    candidates = [b["rostral_S"] for b in bounds.values()] + [d["S"] for d in disc_info.values()]
    if centerline_points is not None:
        candidates.append(float(centerline_points[0, 2]))
    return float(max(candidates))


def vertebral_rows(disc_info: dict, reference: DistanceReference, with_pmj: bool,
                    warnings: List[str]) -> List[LevelRow]:
    """Vertebral level N between discs N and N+1 (projected onto the centerline), for each such pair given."""
    vertebral_rows: List[LevelRow] = []
    for value in sorted(disc_info):
        if value + 1 not in disc_info:
            continue
        top, bottom = disc_info[value], disc_info[value + 1]
        vertebral_rows.append(
            make_row("vertebral", vertebra_name(value), value, top["S"], bottom["S"], top["arc"], bottom["arc"],
                      reference, 0, "discs", with_pmj)
        )
    if disc_info and not vertebral_rows:
        warnings.append("No two consecutive discs were given: no vertebral level could be computed.")
    return vertebral_rows

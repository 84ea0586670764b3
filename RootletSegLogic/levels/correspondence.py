"""Correspondence of spinal and vertebral levels: overlaps and the paper's pairings."""

from __future__ import annotations

from typing import List

from RootletSegLogic.levels.types import PAPER_PAIRINGS, LevelRow, Overlap, Pairing


# ------------------------------------------------------------------------------------------- correspondence
def level_overlaps(spinal: List[LevelRow], vertebral: List[LevelRow]) -> List[Overlap]:
    out: List[Overlap] = []
    for s_row in spinal:
        a, b = s_row.rostral_distance_mm, s_row.caudal_distance_mm
        height = b - a
        for v_row in vertebral:
            va, vb = v_row.rostral_distance_mm, v_row.caudal_distance_mm
            if height > 1e-9:
                length = min(b, vb) - max(a, va)
                if length > 1e-9:
                    out.append(Overlap(s_row.level, v_row.level, float(min(1.0, length / height))))
            elif va - 1e-9 <= a <= vb + 1e-9:
                out.append(Overlap(s_row.level, v_row.level, 1.0))
                break
    return out


def level_pairings(spinal: List[LevelRow], vertebral: List[LevelRow]) -> List[Pairing]:
    """The paper's pairings (level_types.PAPER_PAIRINGS) of the levels present; difference = vertebral - spinal
    midpoint distance (mm)."""
    spinal_by_name = {row.level: row for row in spinal}
    vertebral_by_name = {row.level: row for row in vertebral}
    out: List[Pairing] = []
    for name, pairs in PAPER_PAIRINGS.items():
        for vertebral_level, spinal_level in pairs:
            v_row, s_row = vertebral_by_name.get(vertebral_level), spinal_by_name.get(spinal_level)
            if v_row is None or s_row is None:
                continue
            vm, sm = v_row.midpoint_distance_mm, s_row.midpoint_distance_mm
            out.append(Pairing(name, v_row.level, s_row.level, float(vm), float(sm), float(vm - sm),
                               float(0.5 * (vm + sm))))
    return out

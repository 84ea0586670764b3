"""One level row from its bounds: distances in the reference (PMJ arc or S axis, mm), midpoint, height, points on
the reference line (RAS mm). Shared by the spinal rows (`method.py`) and the vertebral rows (`vertebral.py`)."""

from __future__ import annotations

from RootletSegLogic.levels.centerline import DistanceReference
from RootletSegLogic.levels.types import LevelRow


def make_row(level_type, name, value, rostral_s, caudal_s, r_arc, c_arc, reference: DistanceReference, n_voxels,
             method, with_pmj) -> LevelRow:
    """A LevelRow from its bounds' world S (mm) and arcs on `reference` (mm); `with_pmj` fills the *_pmj_mm fields."""
    d_r = reference.distance_of_arc(r_arc, rostral_s)
    d_c = reference.distance_of_arc(c_arc, caudal_s)
    mid = 0.5 * (d_r + d_c)
    mid_arc = 0.5 * (r_arc + c_arc) if reference.reference_s is None else float(
        reference.arc_at_s(reference.reference_s - mid))
    return LevelRow(
        level_type=level_type,
        level=name,
        label_value=int(value),
        rostral_S_mm=float(rostral_s),
        caudal_S_mm=float(caudal_s),
        height_mm=float(max(0.0, d_c - d_r)),
        rostral_pmj_mm=d_r if with_pmj else None,
        caudal_pmj_mm=d_c if with_pmj else None,
        midpoint_pmj_mm=mid if with_pmj else None,
        rostral_ras=reference.point_at_arc(r_arc),
        caudal_ras=reference.point_at_arc(c_arc),
        midpoint_ras=reference.point_at_arc(mid_arc),
        n_voxels=int(n_voxels),
        method=method,
        rostral_distance_mm=d_r,
        caudal_distance_mm=d_c,
        midpoint_distance_mm=mid,
    )

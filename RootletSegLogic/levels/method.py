"""Spinal levels from rootlets, vertebral levels from discs, and their correspondence, in mm (world RAS).

Physical space is the truth: every position is computed from voxel centres in world coordinates, so the same data
stored in any orientation (axis-aligned or oblique) gives the same table in mm.

Paper method (RootletSeg, DOMAIN.md "Spinal levels from rootlets"):
1. the cord mask is dilated by a 3-voxel ball (radius counted in voxels, whatever the spacing, as the paper does:
   voxel offsets (di, dj, dk) with di^2 + dj^2 + dk^2 <= 9); rootlet voxels inside it form the entry zone;
2. per rootlet value 2..9 (C2..T1), `rostral_S_mm` / `caudal_S_mm` = world RAS S of the highest / lowest voxel centre
   of its entry-zone voxels ("axial" = along the world S axis, whatever the voxel axes are);
3. distances: with a PMJ, 3-D arc length along the cord centerline measured downward from the PMJ (each bound is
   taken on the centerline at its S); without a PMJ, along the S axis: `reference_S_mm - S`;
4. midpoint = mean of the rostral and caudal distances; height = caudal - rostral (>= 0).

Gap-free variants (gapless.py; two definitions; the paper's method leaves gaps and overlaps between levels):
- "gapless" (rostral to next rostral): each level runs from its own rostral bound to the next present level's
  rostral bound; the last level keeps its own caudal bound.
- "gapless-caudal" (SCT issue 5111's definition, caudal to next caudal): each level runs from the caudal bound of
  the level above it (the previous present level) to its own caudal bound; the first level keeps its own rostral
  bound. Where the level above ends below this level's end, this level keeps its own rostral bound (a warning).

Rootlets only (no cord mask): bounds from all rootlet voxels; every row says "rootlets-only" and a warning says it
is not the paper's method. Positions are then on a vertical line through the rootlets' mean R, A (through the PMJ
when one is given, so that PMJ distances are along S).

Centerline and distances along it: centerline.py (world RAS mm, extended straight along S beyond the cord, to the
PMJ when the PMJ lies above the cord). Bounds or discs falling on these extensions get a warning.

Vertebral levels (SCT convention, vertebral.py): disc value 2 = C1/C2, ..., 8 = C7/T1, 9 = T1/T2; vertebral level N
lies between discs N and N+1. Each disc is projected onto the centerline (nearest point in 3-D); its bound S is the S
of the projected point; distances as for spinal levels; method "discs".

Rootlet label value 1 (C1, or a binary mask): C1 is not a level of the table. A map holding only value 1 is an
error (a binary rootlet mask has no levels); value 1 beside levels 2..9 is ignored with a warning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np
import SimpleITK as sitk

from RootletSegLogic.errors import UserError
from RootletSegLogic.images.grid import check_same_grid
from RootletSegLogic.levels.centerline import (
    POSITION_TOLERANCE_MM,
    DistanceReference,
    GridGeometry,
    bounding_box,
    build_distance_reference,
    cord_centerline_points,
    crop_to_box,
    sct_centerline_points,
    voxel_indices,
)
from RootletSegLogic.levels.correspondence import level_overlaps, level_pairings
from RootletSegLogic.levels.gapless import apply_gapless, apply_gapless_caudal
from RootletSegLogic.levels.rows import make_row
from RootletSegLogic.levels.entry_zone import entry_zone_mask
from RootletSegLogic.levels.vertebral import check_discs, s_axis_origin
from RootletSegLogic.levels.vertebral import vertebral_rows as vertebral_rows_of
from RootletSegLogic.levels.types import (
    PMG_VALUE,
    PMJ_VALUE,
    SPINAL_LEVEL_NAMES,
    Centerline,
    DiscPoint,
    LevelResult,
    LevelRow,
)
from RootletSegLogic.progress import ProgressCallback, ProgressEvent, no_progress

LEVEL_VALUES = tuple(range(2, 10))
GAP_METHODS = ("paper", "gapless", "gapless-caudal")
DISTANCE_MODES = ("pmj", "sct")


# ------------------------------------------------------------------------------------------------ computation
def compute_levels(
    rootlets: sitk.Image,
    cord: Optional[sitk.Image] = None,
    discs: Optional[Sequence[DiscPoint]] = None,
    pmj_ras=None,
    method: str = "paper",
    progress: ProgressCallback = no_progress,
    distance: str = "pmj",
) -> LevelResult:
    """Spinal levels (and vertebral levels when discs are given) with their correspondence, in mm.

    rootlets: label map (2 = C2 ... 9 = T1), any orientation. cord: binary cord mask (non-zero = cord) on the same
    grid, or None for the rootlets-only fallback. discs: SCT disc points (RAS mm); a point with value 50 is used as
    the PMJ when `pmj_ras` is None, value 49 (PMG) is ignored. pmj_ras: PMJ point, RAS mm, or None.
    method: "paper", "gapless" (rostral to next rostral) or "gapless-caudal" (SCT 5111: caudal to next caudal).
    distance: "pmj" (default: arc length from the PMJ projected onto the lightly smoothed cord centerline) or
    "sct" (SCT-compatible: from the top slice of cord + PMJ voxel along SCT's 50 mm Hanning-smoothed centerline,
    for comparisons with SCT-made tables; needs a cord mask and a PMJ; see centerline.py).
    Raises UserError where the result would be wrong; partial problems go to `result.warnings`.
    """
    if method not in GAP_METHODS:
        raise UserError(f"Unknown levels method '{method}': use 'paper', 'gapless' or 'gapless-caudal'.")
    if distance not in DISTANCE_MODES:
        raise UserError(f"Unknown distance mode '{distance}': use 'pmj' or 'sct'.")
    warnings: List[str] = []
    progress(ProgressEvent("levels", 0, 4, "reading"))
    inputs = _checked_inputs(rootlets, cord, discs, pmj_ras, warnings)  # DOMAIN.md step 1
    has_cord, with_pmj = inputs.cord_zyx is not None, inputs.pmj_ras is not None
    if distance == "sct":
        if not (has_cord and with_pmj):
            raise UserError("SCT-compatible distances need a cord mask and a PMJ: give both, or use the default "
                            "distances.")
        warnings.append("SCT-compatible distances: from the top slice of cord + PMJ voxel along SCT's smoothed "
                        "centerline, not from the PMJ point (see the RootletSeg documentation).")
    rows_method = method if has_cord else "rootlets-only"

    progress(ProgressEvent("levels", 1, 4, "entry zone"))
    voxels = _level_voxels(inputs, warnings)  # step 2: entry zone (all rootlets without a cord)
    bounds = _level_bounds(voxels, inputs.levels_present, warnings)  # step 3: rostral / caudal S per level

    progress(ProgressEvent("levels", 2, 4, "centerline"))
    reference, centerline_points = _distance_reference(inputs, voxels, bounds, warnings, distance)  # step 4
    disc_info = check_discs(inputs.disc_points, inputs.pmj_ras, reference, has_cord, warnings)
    if not with_pmj:
        reference.reference_s = s_axis_origin(bounds, disc_info, centerline_points)

    progress(ProgressEvent("levels", 3, 4, "levels"))
    spinal_rows = _spinal_rows(bounds, reference, rows_method, method, has_cord, with_pmj, warnings)  # step 5
    vertebral_rows = vertebral_rows_of(disc_info, reference, with_pmj, warnings)
    overlaps = level_overlaps(spinal_rows, vertebral_rows)
    pairings = level_pairings(spinal_rows, vertebral_rows)
    centerline = _centerline_with_distances(reference) if centerline_points is not None else None

    progress(ProgressEvent("levels", 4, 4, "done"))
    return LevelResult(
        rows=spinal_rows + vertebral_rows,
        overlaps=overlaps,
        pairings=pairings,
        method=rows_method,
        distance_reference="pmj" if with_pmj else "S-axis",
        pmj_ras=inputs.pmj_ras,
        centerline=centerline,
        warnings=warnings,
        reference_S_mm=reference.reference_s,
    )


# ---------------------------------------------------------------------------------------------------- inputs
@dataclass
class _LevelInputs:
    """The checked inputs of `compute_levels`: arrays are (z, y, x) views on the rootlets' grid, points RAS mm."""

    geometry: GridGeometry
    rootlets_zyx: np.ndarray
    cord_zyx: Optional[np.ndarray]  # None: no cord mask (rootlets-only fallback)
    levels_present: set  # rootlet values 2..9 present anywhere in the map
    disc_points: List[DiscPoint]  # discs only: the PMJ (50) and PMG (49) points are taken out
    pmj_ras: Optional[tuple]


def _checked_inputs(rootlets: sitk.Image, cord: Optional[sitk.Image], discs: Optional[Sequence[DiscPoint]], pmj_ras,
                    warnings: List[str]) -> _LevelInputs:
    """Check the rootlets, then the PMJ, then the cord (the first problem found is the one reported).

    The PMJ (50) and PMG (49) points are taken out of the discs here; the discs themselves are checked once the
    distance reference exists (`vertebral.check_discs`), since their order is judged on it.
    """
    geometry = GridGeometry(rootlets)
    rootlets_zyx = sitk.GetArrayViewFromImage(rootlets)
    levels_present = _level_values(rootlets_zyx, warnings)
    disc_points, pmj_ras = _split_landmarks(discs, pmj_ras)
    cord_zyx = _checked_cord(cord, rootlets)
    return _LevelInputs(geometry, rootlets_zyx, cord_zyx, levels_present, disc_points, pmj_ras)


def _level_values(rootlets_zyx: np.ndarray, warnings: List[str]) -> set:
    """Check the rootlet values; returns the set of level values 2..9 present."""
    mask = rootlets_zyx != 0
    box = bounding_box(mask)
    values = np.unique(crop_to_box(rootlets_zyx, *box)[crop_to_box(mask, *box)]) if box is not None else np.zeros(0)
    if len(values) == 0:
        raise UserError("The rootlet segmentation is empty (no non-zero voxel): segment the rootlets first or check the file.")
    bad = [v for v in values if not (1 <= v <= 9) or float(v) != int(v)]
    if bad:
        shown = ", ".join(f"{v:g}" for v in bad[:5])
        raise UserError(
            f"The rootlet segmentation holds values outside 1..9 ({shown}): give a rootlet label map "
            f"with one value per spinal level (2 = C2 ... 9 = T1)."
        )
    if list(values) == [1]:
        raise UserError(
            "The rootlet segmentation holds only value 1 (a binary mask): spinal levels need one label per level "
            "(2 = C2 ... 9 = T1), as the RootletSeg model writes."
        )
    if 1 in values:
        n = int(np.count_nonzero(rootlets_zyx == 1))
        warnings.append(f"{n} rootlet voxels with value 1 (C1) were ignored: the level table covers C2..T1 (values 2..9).")
    return {int(v) for v in values if 2 <= v <= 9}


def _split_landmarks(discs: Optional[Sequence[DiscPoint]], pmj_ras) -> tuple:
    """(disc points, PMJ RAS mm or None): a disc point with value 50 is the PMJ unless one is given; 49 is dropped."""
    disc_points: List[DiscPoint] = []
    for disc in discs or []:
        if disc.value == PMJ_VALUE:
            if pmj_ras is None:
                pmj_ras = tuple(float(v) for v in disc.position_ras)
            continue
        if disc.value == PMG_VALUE:
            continue
        disc_points.append(disc)
    if pmj_ras is not None:
        pmj_ras = tuple(float(v) for v in pmj_ras)
        if len(pmj_ras) != 3 or not np.all(np.isfinite(pmj_ras)):
            raise UserError("The PMJ point is not three finite RAS coordinates in mm: check the PMJ file.")
    return disc_points, pmj_ras


def _checked_cord(cord: Optional[sitk.Image], rootlets: sitk.Image) -> Optional[np.ndarray]:
    """(z, y, x) view of the cord mask, checked to be non-empty and on the rootlets' grid; None without a cord."""
    if cord is None:
        return None
    check_same_grid(cord, rootlets, what="spinal cord mask")
    cord_zyx = sitk.GetArrayViewFromImage(cord)
    if not np.any(cord_zyx):
        raise UserError("The spinal cord mask is empty (no non-zero voxel): give the cord segmentation of this scan.")
    return cord_zyx


# ------------------------------------------------------------------------------------------- voxels and bounds
@dataclass
class _LevelVoxels:
    """The rootlet voxels that define the levels (the entry zone, or every rootlet voxel without a cord)."""

    zyx: np.ndarray  # (N, 3) voxel indices
    values: np.ndarray  # (N,) level value 2..9 of each voxel
    s_mm: np.ndarray  # (N,) world S of each voxel centre, mm


def _level_voxels(inputs: _LevelInputs, warnings: List[str]) -> _LevelVoxels:
    """DOMAIN.md step 2: the rootlet voxels (values 2..9) inside the cord dilated by a 3-voxel ball."""
    rootlets_zyx, cord_zyx = inputs.rootlets_zyx, inputs.cord_zyx
    if cord_zyx is not None:
        used = entry_zone_mask(rootlets_zyx, cord_zyx)
        if not used.any():
            raise UserError(
                "No rootlet voxel lies within 3 voxels of the spinal cord mask: check that the rootlets and the cord "
                "mask belong to the same scan."
            )
        zyx = voxel_indices(used)
    else:
        warnings.append("not the paper's method (no spinal cord mask): levels use all rootlet voxels.")
        zyx = voxel_indices((rootlets_zyx >= 2) & (rootlets_zyx <= 9))
    values = rootlets_zyx[tuple(zyx.T)].astype(int)
    keep = (values >= 2) & (values <= 9)
    zyx, values = zyx[keep], values[keep]
    if len(values) == 0:
        raise UserError("No rootlet voxel with a level value (2 = C2 ... 9 = T1) was found: check the rootlet file.")
    return _LevelVoxels(zyx, values, inputs.geometry.s_of_zyx(zyx))


def _level_bounds(voxels: _LevelVoxels, levels_present: set, warnings: List[str]) -> Dict[int, dict]:
    """DOMAIN.md step 3: {level value: {"rostral_S", "caudal_S" (world S, mm), "n" (voxels)}}, in level order.

    Warns about levels with rootlets but no voxel in the entry zone, and about levels missing between present ones.
    """
    bounds: Dict[int, dict] = {}
    for value in LEVEL_VALUES:
        sel = voxels.values == value
        if not sel.any():
            continue
        s = voxels.s_mm[sel]
        bounds[value] = {"rostral_S": float(s.max()), "caudal_S": float(s.min()), "n": int(sel.sum())}
    for value in sorted(levels_present - set(bounds)):
        warnings.append(
            f"Level {SPINAL_LEVEL_NAMES[value]} has rootlets but none within 3 voxels of the cord mask: it is left out."
        )
    present = sorted(bounds)
    missing = [v for v in range(present[0], present[-1] + 1) if v not in bounds]
    if missing:
        names = ", ".join(SPINAL_LEVEL_NAMES[v] for v in missing)
        warnings.append(f"Spinal level(s) {names} missing between {SPINAL_LEVEL_NAMES[present[0]]} and "
                        f"{SPINAL_LEVEL_NAMES[present[-1]]}: the table has no row for them.")
    return bounds


# ---------------------------------------------------------------------------------------------- distances
def _distance_reference(inputs: _LevelInputs, voxels: _LevelVoxels, bounds: Dict[int, dict],
                        warnings: List[str], distance: str = "pmj") -> tuple:
    """DOMAIN.md step 4: (DistanceReference, cord centerline points RAS mm or None without a cord).

    With a cord the line is its centerline; without, a vertical line through the rootlets (or the PMJ). With a PMJ,
    distances start at the PMJ's arc, and the PMJ must lie above every level.
    """
    pmj_ras = inputs.pmj_ras
    centerline_points = None
    if inputs.cord_zyx is not None:
        centerline_points = cord_centerline_points(inputs.cord_zyx, inputs.geometry)
        line = centerline_points
    else:
        line = _vertical_line_through_rootlets(inputs.geometry, voxels, pmj_ras)
        if pmj_ras is not None:
            warnings.append("Without a cord mask, distances from the PMJ are measured along the S axis, not the cord.")
    reference, pmj_arc = build_distance_reference(line, pmj_ras)

    if pmj_ras is not None:
        highest = max(bounds.values(), key=lambda b: b["rostral_S"])
        if pmj_ras[2] < highest["rostral_S"] - POSITION_TOLERANCE_MM:
            level = next(SPINAL_LEVEL_NAMES[v] for v, b in bounds.items() if b is highest)
            raise UserError(
                f"The PMJ (S = {pmj_ras[2]:.1f} mm) lies below the rootlets of {level} (up to S = "
                f"{highest['rostral_S']:.1f} mm): the PMJ is above all rootlets, check the PMJ point."
            )
        reference.arc_origin = pmj_arc
    if distance == "sct":  # same checks as above; the line and its origin are SCT's
        sct_line = sct_centerline_points(inputs.cord_zyx, inputs.geometry, pmj_ras)
        reference, _ = build_distance_reference(sct_line, None)
        reference.arc_origin = float(reference.arc[reference.top_index])
        centerline_points = sct_line
    return reference, centerline_points


def _vertical_line_through_rootlets(geometry: GridGeometry, voxels: _LevelVoxels, pmj_ras) -> np.ndarray:
    """(2, 3) RAS mm: the rootlets' S extent on a vertical line through their mean R, A (or through the PMJ)."""
    ras_used = geometry.ras_of_zyx(voxels.zyx)
    r, a = float(ras_used[:, 0].mean()), float(ras_used[:, 1].mean())
    if pmj_ras is not None:  # a vertical line through the PMJ: distances from it are along S
        r, a = pmj_ras[0], pmj_ras[1]
    return np.array([[r, a, float(voxels.s_mm.max())], [r, a, float(voxels.s_mm.min())]])


def _centerline_with_distances(reference: DistanceReference) -> Centerline:
    """The cord part of the reference line (no extensions, the PMJ when prepended), with each point's distance."""
    pts = reference.points[reference.top_index:reference.bottom_index + 1]
    arcs = reference.arc[reference.top_index:reference.bottom_index + 1]
    dist = [reference.distance_of_arc(a, p[2]) for a, p in zip(arcs, pts)]
    return Centerline(points_ras=[tuple(float(v) for v in p) for p in pts], distance_mm=dist)


# ---------------------------------------------------------------------------------------------------- rows
def _spinal_rows(bounds: Dict[int, dict], reference: DistanceReference, rows_method: str, method: str,
                 has_cord: bool, with_pmj: bool, warnings: List[str]) -> List[LevelRow]:
    """DOMAIN.md step 5: one row per present level (midpoint, height), gapless when asked, with the order checks."""
    spinal_rows: List[LevelRow] = []
    spinal_ext: List[str] = []
    for value in sorted(bounds):
        b = bounds[value]
        r_arc, c_arc = reference.arc_at_s(b["rostral_S"]), reference.arc_at_s(b["caudal_S"])
        if reference.on_extension(r_arc) or reference.on_extension(c_arc):
            spinal_ext.append(SPINAL_LEVEL_NAMES[value])
        spinal_rows.append(
            make_row("spinal", SPINAL_LEVEL_NAMES[value], value, b["rostral_S"], b["caudal_S"], r_arc, c_arc,
                      reference, b["n"], rows_method, with_pmj)
        )
    if spinal_ext and has_cord:
        warnings.append(
            f"Level bound(s) of {', '.join(spinal_ext)} lie beyond the ends of the cord mask: their centerline "
            f"positions are extended straight along S" + (" (toward the PMJ)." if with_pmj else ".")
        )
    if method != "paper":
        (apply_gapless if method == "gapless" else apply_gapless_caudal)(spinal_rows, reference, with_pmj, warnings)
        if not has_cord:
            warnings.append("Gapless bounds were applied to the rootlets-only levels.")
    mids = [row.midpoint_distance_mm for row in spinal_rows]
    if any(b < a - POSITION_TOLERANCE_MM for a, b in zip(mids, mids[1:])):  # float noise is not disorder
        warnings.append("Spinal levels are not in rostro-caudal order (a lower level's midpoint lies above a higher one's).")
    return spinal_rows

"""The cord centerline and distances along it: where a voxel or a point lies on the cord, in mm.

One job: turn voxel grids and points into positions on a reference line, and positions on that line into
distances. `compute_levels` (levels.py) uses it for every bound, disc and midpoint.

Frames and units:
- voxel indices are NumPy (z, y, x) = ITK (k, j, i), as `sitk.GetArrayViewFromImage` returns them;
- positions are world RAS in mm (Slicer's frame; ITK stores LPS, the R and A signs are flipped here);
- "S" is the world superior coordinate in mm; "axial" slices are those along the voxel axis closest to world S;
- arc length (`arc`) is 3-D path length in mm along the reference line, from its top end (its upper extension).

Centerline: per axial slice holding cord, the centre of mass of the cord voxels (RAS mm), ordered rostral ->
caudal; R and A are smoothed lightly along the cord (Gaussian, sigma `CENTERLINE_SMOOTHING_MM` of cord length) so
the voxel staircase does not lengthen the arc, as SCT fits its centerline before measuring from the PMJ; S is not
smoothed. Above its top and below its bottom the reference line is extended straight along S (to the PMJ when the
PMJ lies above the cord: the line from the top of the cord to the PMJ), so every position has a place on it.

SCT-compatible centerline (`sct_centerline_points`, for distances comparable with tables made by SCT and the
paper's analysis scripts): the mask is the cord plus the PMJ's voxel; per axial slice the mean of the mask's voxel
indices, slices without mask filled by linear interpolation along the slice axis, the in-plane coordinates smoothed
with a Hanning window `SCT_SMOOTHING_MM` long (the scipy-cookbook smoothing with mirrored ends that SCT uses);
distances are then summed slice to slice from the TOP slice of that mask, not from the PMJ point. Where the cord
mask reaches above the PMJ, or the PMJ lies a few mm off the cord, absolute distances differ from the default
(geometric projection of the PMJ onto the cord centerline) by several mm; differences between levels barely change.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import SimpleITK as sitk

from RootletSegLogic.images.orientation import direction_matrix

CENTERLINE_SMOOTHING_MM = 2.0
SCT_SMOOTHING_MM = 50.0  # Hanning window length of the SCT-compatible centerline
# Two positions closer than this (mm) are the same position: absorbs float noise of voxel-centre arithmetic.
POSITION_TOLERANCE_MM = 1e-3
# Length of the straight S extensions above/below the line: longer than any spine, so no position falls off it.
_EXTENSION_MM = 10_000.0


# ------------------------------------------------------------------------------------------------ voxel grid
class GridGeometry:
    """World geometry of an image grid: RAS mm of voxel centres, and which voxel axis is the axial (S) one."""

    def __init__(self, image: sitk.Image):
        self.direction = direction_matrix(image)  # columns: LPS unit vector of voxel axes i, j, k
        self.spacing = np.asarray(image.GetSpacing(), dtype=float)  # mm along i, j, k
        self.origin_lps = np.asarray(image.GetOrigin(), dtype=float)  # mm, world LPS
        # voxel axis (ITK i/j/k) whose direction is closest to world S
        self.axial_axis = int(np.argmax(np.abs(self.direction[2, :])))
        self.axial_axis_zyx = 2 - self.axial_axis
        # mm of S per slice step along the axial axis
        self.slice_step_mm = float(abs(self.direction[2, self.axial_axis]) * self.spacing[self.axial_axis])
        # RAS = M @ ijk + b
        flip = np.array([-1.0, -1.0, 1.0])
        self.matrix_ras = (self.direction * self.spacing[None, :]) * flip[:, None]
        self.offset_ras = self.origin_lps * flip

    def ras_of_zyx(self, zyx: np.ndarray) -> np.ndarray:
        """(N, 3) NumPy (z, y, x) indices -> (N, 3) RAS mm voxel centres."""
        zyx = np.asarray(zyx)
        m = self.matrix_ras  # columns: RAS mm per step along i, j, k
        out = np.empty((len(zyx), 3), dtype=float)
        for row in range(3):
            out[:, row] = self.offset_ras[row] + m[row, 0] * zyx[:, 2] + m[row, 1] * zyx[:, 1] + m[row, 2] * zyx[:, 0]
        return out

    def zyx_of_ras(self, ras) -> np.ndarray:
        """Nearest voxel (z, y, x) index of a RAS mm point (may lie outside the grid)."""
        ijk = np.linalg.solve(self.matrix_ras, np.asarray(ras, dtype=float) - self.offset_ras)
        return np.rint(ijk[::-1]).astype(int)

    def s_of_zyx(self, zyx: np.ndarray) -> np.ndarray:
        """World S (mm) of voxel centres given as (N, 3) (z, y, x) indices."""
        zyx = np.asarray(zyx)
        m = self.matrix_ras[2]
        return self.offset_ras[2] + m[0] * zyx[:, 2] + m[1] * zyx[:, 1] + m[2] * zyx[:, 0]


def bounding_box(mask: np.ndarray):
    """(lo, hi) inclusive (z, y, x) bounds of the non-zero voxels of a boolean array, or None when empty."""
    lo, hi = [], []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        hit = np.flatnonzero(mask.any(axis=other))
        if len(hit) == 0:
            return None
        lo.append(int(hit[0]))
        hi.append(int(hit[-1]))
    return np.array(lo), np.array(hi)


def crop_to_box(array: np.ndarray, lo, hi) -> np.ndarray:
    """View of a (z, y, x) array inside the inclusive bounds (lo, hi) of `bounding_box`."""
    return array[lo[0]:hi[0] + 1, lo[1]:hi[1] + 1, lo[2]:hi[2] + 1]


def voxel_indices(mask: np.ndarray, box=None) -> np.ndarray:
    """(N, 3) (z, y, x) indices of True voxels, searching only inside `box` (from `bounding_box`) when given.

    Searching the bounding box rather than the whole array keeps large, mostly empty volumes fast.
    """
    if box is None:
        box = bounding_box(mask)
        if box is None:
            return np.zeros((0, 3), dtype=np.int64)
    lo, hi = box
    return np.argwhere(crop_to_box(mask, lo, hi)) + lo


# ------------------------------------------------------------------------------------------------ centerline
def _smooth(values: np.ndarray, sigma_points: float) -> np.ndarray:
    """Gaussian smoothing along the line (sigma in points); too short a line is returned unchanged."""
    if sigma_points <= 0.0 or len(values) < 3:
        return values
    from scipy import ndimage

    return ndimage.gaussian_filter1d(values, sigma_points, mode="nearest")


def cord_centerline_points(cord_zyx: np.ndarray, geometry: GridGeometry,
                           smoothing_mm: float = CENTERLINE_SMOOTHING_MM) -> np.ndarray:
    """(N, 3) RAS mm: per axial slice holding cord, its centre of mass, ordered rostral -> caudal (R, A smoothed).

    cord_zyx: cord mask (non-zero = cord) as a (z, y, x) array on the grid of `geometry`; it must hold cord.
    smoothing_mm: Gaussian sigma along the cord, in mm of S.
    """
    zyx = voxel_indices(cord_zyx != 0)
    slice_index = zyx[:, geometry.axial_axis_zyx]
    first = int(slice_index.min())
    slice_index = slice_index - first
    counts = np.bincount(slice_index)
    present = counts > 0
    # centroid of voxel indices per slice, then to RAS (the affine map commutes with the mean)
    index_centres = np.stack(
        [np.bincount(slice_index, weights=zyx[:, n].astype(float))[present] / counts[present] for n in range(3)], axis=1)
    centres = geometry.ras_of_zyx(index_centres)
    centres = centres[np.argsort(-centres[:, 2], kind="stable")]
    # make S strictly non-increasing (oblique grids only can break it)
    centres[:, 2] = np.minimum.accumulate(centres[:, 2])
    sigma = smoothing_mm / max(geometry.slice_step_mm, 1e-6)
    centres[:, 0] = _smooth(centres[:, 0], sigma)
    centres[:, 1] = _smooth(centres[:, 1], sigma)
    return centres


def hanning_smooth(values: np.ndarray, window_points: int) -> np.ndarray:
    """Hanning-window moving average with mirrored ends (the scipy cookbook's `smooth`); the window is made odd and
    no longer than the data; under 3 points the values are returned unchanged."""
    values = np.asarray(values, dtype=float)
    window_points = min(int(window_points), len(values))
    if window_points % 2 == 0:
        window_points -= 1
    if window_points < 3:
        return values
    padded = np.r_[values[window_points - 1:0:-1], values, values[-2:-window_points - 1:-1]]
    weights = np.hanning(window_points)
    smoothed = np.convolve(weights / weights.sum(), padded, mode="same")
    return smoothed[window_points - 1:-window_points + 1]


def sct_centerline_points(cord_zyx: np.ndarray, geometry: GridGeometry, pmj_ras=None,
                          smoothing_mm: float = SCT_SMOOTHING_MM) -> np.ndarray:
    """(N, 3) RAS mm, one point per axial slice from the top to the bottom slice of (cord mask + PMJ voxel),
    rostral -> caudal, as SCT builds its centerline (see the module docstring). cord_zyx: (z, y, x) mask."""
    mask = cord_zyx != 0
    if pmj_ras is not None:
        index = geometry.zyx_of_ras(pmj_ras)
        if np.all(index >= 0) and np.all(index < np.asarray(mask.shape)):
            mask = mask.copy()
            mask[tuple(index)] = True
    zyx = voxel_indices(mask)
    axis = geometry.axial_axis_zyx
    slice_index = zyx[:, axis]
    first, last = int(slice_index.min()), int(slice_index.max())
    counts = np.bincount(slice_index - first, minlength=last - first + 1)
    present = np.flatnonzero(counts > 0)
    slices = np.arange(last - first + 1)
    centres = np.empty((len(slices), 3))
    for n in range(3):
        if n == axis:
            centres[:, n] = slices + first
            continue
        mean = np.bincount(slice_index - first, weights=zyx[:, n].astype(float), minlength=len(slices))
        centres[:, n] = np.interp(slices, present, mean[present] / counts[present])
        centres[:, n] = hanning_smooth(centres[:, n], round(smoothing_mm / max(geometry.slice_step_mm, 1e-6)))
    points = geometry.ras_of_zyx(centres)
    return points[np.argsort(-points[:, 2], kind="stable")]


# ------------------------------------------------------------------------------------------ distance reference
class DistanceReference:
    """A polyline (RAS mm, rostral -> caudal, S non-increasing) with straight S extensions, and its distances.

    `distance_of_arc(arc, s)` gives the result's distance in mm: arc length minus `arc_origin` (the PMJ's arc)
    when a PMJ is used, else `reference_s - s` (along the S axis). Points on the line are found by S (`arc_at_s`)
    or by nearest point (`project`).
    """

    def __init__(self, points_ras: np.ndarray, n_cord_points: int, top_index: int):
        self.points = np.asarray(points_ras, dtype=float)
        seg = np.diff(self.points, axis=0)
        self.arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(seg, axis=1))])  # mm, per point
        self.top_index = top_index  # first point that is cord (or PMJ) rather than extension
        self.bottom_index = top_index + n_cord_points - 1
        self.arc_origin = 0.0  # mm of arc where distances are 0 (the PMJ)
        self.reference_s: Optional[float] = None  # world S (mm) where distances are 0; set for S-axis distances

    # position on the line
    def arc_at_s(self, s: np.ndarray) -> np.ndarray:
        """Arc (mm) of the line's point(s) at world S `s` (mm)."""
        ss = self.points[::-1, 2]
        return np.interp(s, ss, self.arc[::-1])

    def point_at_arc(self, arc: float) -> tuple:
        """RAS mm of the line's point at arc `arc` (mm)."""
        return tuple(float(np.interp(arc, self.arc, self.points[:, n])) for n in range(3))

    def project(self, point) -> tuple:
        """Nearest point of the line to `point` (RAS mm): (arc mm, projected point RAS mm)."""
        p = np.asarray(point, dtype=float)
        a, b = self.points[:-1], self.points[1:]
        ab = b - a
        length2 = np.maximum((ab ** 2).sum(axis=1), 1e-12)
        t = np.clip(((p - a) * ab).sum(axis=1) / length2, 0.0, 1.0)
        q = a + t[:, None] * ab
        k = int(np.argmin(((q - p) ** 2).sum(axis=1)))
        arc = self.arc[k] + t[k] * np.sqrt(length2[k])
        return float(arc), tuple(float(v) for v in q[k])

    def on_extension(self, arc: float) -> bool:
        """Whether arc (mm) lies on a straight extension, beyond the cord (or PMJ) part of the line."""
        return (arc < self.arc[self.top_index] - POSITION_TOLERANCE_MM
                or arc > self.arc[self.bottom_index] + POSITION_TOLERANCE_MM)

    # distances
    def distance_of_arc(self, arc: float, s: float) -> float:
        """Distance (mm) of the line's point at arc `arc` (mm) and world S `s` (mm)."""
        if self.reference_s is not None:
            return float(self.reference_s - s)
        return float(arc - self.arc_origin)


def build_distance_reference(line_points: np.ndarray, pmj_ras) -> tuple:
    """(DistanceReference, pmj_arc or None): line points with straight S extensions, the PMJ prepended when above.

    line_points: (N, 3) RAS mm, rostral -> caudal (the cord centerline, or a vertical line without a cord).
    pmj_ras: PMJ point, RAS mm, or None. pmj_arc: the PMJ's arc (mm) on the returned line.
    """
    points = np.asarray(line_points, dtype=float)
    pmj_prepended = False
    if pmj_ras is not None and pmj_ras[2] > points[0, 2] + POSITION_TOLERANCE_MM:
        points = np.vstack([np.asarray(pmj_ras, dtype=float)[None, :], points])
        pmj_prepended = True
    top = points[0] + np.array([0.0, 0.0, _EXTENSION_MM])
    bottom = points[-1] - np.array([0.0, 0.0, _EXTENSION_MM])
    full = np.vstack([top[None, :], points, bottom[None, :]])
    reference = DistanceReference(full, n_cord_points=len(points), top_index=1)
    pmj_arc = None
    if pmj_ras is not None:
        pmj_arc = reference.arc[1] if pmj_prepended else reference.project(pmj_ras)[0]
    return reference, pmj_arc

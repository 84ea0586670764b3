"""Grow the cord's box onto the model's grid, so that a crop gives the network what the whole volume gives it.

nnU-Net resamples its input to the model's spacing (SciPy zoom with `grid_mode`: model voxel o of an axis of L input
voxels resampled to L' samples the input at (o + 0.5) * L / L' - 0.5) and lays its tiles from the resampled size.
A box cut anywhere is sampled between the whole volume's samples (up to half a voxel off, and with another scale)
and tiled elsewhere. On the demo model and the 64x320x320 0.8 mm phantom (the model resamples to 1 mm), the cord's
box + 25 mm as cut gave per-level Dice 0.853-0.959 against the whole-volume labels; the same box grown by 2-7 voxels
so that both the samples and the tiles are the whole volume's gave 0.998-1.000, with the same tile count.

Per axis, the box only grows (the margin stays a minimum). The choice is, in order: the crop's samples within
0.05 voxel of the whole volume's (taking at most one more tile than the box as cut to get there), the fewest tiles,
nnU-Net's own tiles at the whole volume's positions, the smallest box. Where nnU-Net's own steps for the crop's
size would not fall on the whole volume's tiles, the crop gets the whole volume's tiles inside it plus one flush
with each end (`whole_tile_plan`, no more tiles than its own steps; `predictor.Segmenter.segment(tile_starts=)`):
at 40 mm on the phantom below, 0.929-0.961 per level against the whole volume with nnU-Net's own steps, 0.999-1.000
with the plan, both with 4 tiles along A-P.

Frames: the box is in the input image's voxel indices (ITK order i, j, k). The model's axes are the input's axes
reoriented (`images.orientation.Reorientation`: a permutation and flips), in NumPy order, then transposed by the
plans' `transpose_forward`, as `predictor.Segmenter` hands them to nnU-Net. nnU-Net first crops to the image's
non-zero bounding box; the box is clipped to it and aligned relative to it. A crop whose own border holds a slab of
zeros inside that bounding box is cropped further by nnU-Net and then stays slightly off the grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from RootletSegLogic.levels.centerline import bounding_box
from RootletSegLogic.segmentation.roi import RoiBox

# Samples within this distance (input voxels) of the whole volume's count as on its grid: a crop whose scale can
# only approach the whole volume's (e.g. 64 voxels of 0.8 mm resampled to 51 of 1 mm) drifts by a few hundredths.
SAMPLE_OFFSET_TOLERANCE_VOXELS = 0.05


@dataclass(frozen=True)
class ModelAxis:
    """One axis as nnU-Net sees it: `spacing_mm` of the input along it, the model's `model_spacing_mm`, the tile
    `patch` (model voxels) and the tile `step` (fraction of the patch)."""

    spacing_mm: float
    model_spacing_mm: float
    patch: int
    step: float


@dataclass(frozen=True)
class AxisChoice:
    """The grown interval on one axis (input voxels, stop exclusive), its tiles, the largest offset between its
    samples and the whole volume's (input voxels), and whether its tiles are the whole volume's."""

    start: int
    stop: int
    tiles: int
    sample_offset_voxels: float
    tiles_shared: bool
    # the crop's tile starts (model voxels of the crop) when nnU-Net's own steps for its size would not be the
    # whole volume's: the whole volume's tiles inside the crop, and a tile flush with each end (`whole_tile_plan`)
    tile_starts: Optional[Tuple[int, ...]] = None


def resampled_length(length: int, axis: ModelAxis) -> int:
    """Model voxels nnU-Net resamples `length` input voxels to (its own `compute_new_shape`)."""
    from nnunetv2.preprocessing.resampling.default_resampling import compute_new_shape

    return int(compute_new_shape([length], [axis.spacing_mm], [axis.model_spacing_mm])[0])


def tile_starts(resampled: int, patch: int, step: float) -> List[int]:
    """First model voxel of each tile along an axis of `resampled` model voxels (nnU-Net's own
    `compute_steps_for_sliding_window`); an axis shorter than the patch is padded evenly (pad_nd_image), so its one
    tile starts before voxel 0."""
    from nnunetv2.inference.sliding_window_prediction import compute_steps_for_sliding_window

    if resampled < patch:
        return [-((patch - resampled) // 2)]
    return [int(start) for start in compute_steps_for_sliding_window([resampled], [patch], step)[0]]


def whole_tile_plan(first_model_voxel: int, resampled: int, whole_tiles, patch: int, most_tiles: int) \
        -> Optional[Tuple[int, ...]]:
    """Tile starts for a crop whose model voxel 0 is the whole volume's `first_model_voxel` and which has
    `resampled` model voxels: every whole-volume tile that lies inside it, plus a tile flush with each end so that
    every voxel is covered (the whole volume's tiles are at most half a patch apart, so no gap exceeds a patch).
    None when no whole-volume tile lies inside, the crop is shorter than a patch, or it would take more than
    `most_tiles` tiles."""
    if resampled < patch:
        return None
    inside = {p - first_model_voxel for p in whole_tiles if 0 <= p - first_model_voxel <= resampled - patch}
    if not inside:
        return None
    plan = tuple(sorted(inside | {0, resampled - patch}))
    return plan if len(plan) <= most_tiles else None


def align_axis(start: int, stop: int, length: int, axis: ModelAxis) -> AxisChoice:
    """The interval [start, stop) of an axis of `length` input voxels grown onto the model's grid (module docstring):
    no more tiles than [start, stop) needs as cut."""
    whole_resampled = resampled_length(length, axis)
    if whole_resampled < 1:  # nnU-Net cannot run such an axis either: nothing to align to
        return AxisChoice(start, stop, 1, 0.0, False)
    whole_scale = length / whole_resampled
    whole_tiles = set(tile_starts(whole_resampled, axis.patch, axis.step))
    most_tiles = len(tile_starts(resampled_length(stop - start, axis), axis.patch, axis.step)) + 1
    # far enough to reach the enclosing whole-volume tiles and a sample-aligned start
    reach = int(math.ceil((axis.patch + 2) * whole_scale)) + 1
    best_key, best = None, None
    for size in range(stop - start, min(length, stop - start + 2 * reach) + 1):
        resampled = resampled_length(size, axis)
        if resampled < 1:
            continue
        starts = tile_starts(resampled, axis.patch, axis.step)
        if len(starts) > most_tiles:
            continue
        first = max(0, stop - size, start - reach)
        last = min(start, length - size)
        if first > last:
            continue
        origins = np.arange(first, last + 1)
        scale = size / resampled
        first_sample = origins + 0.5 * scale - 0.5  # input coordinate of the crop's model voxel 0
        whole_index = np.rint((first_sample + 0.5) / whole_scale - 0.5)
        offset_first = np.abs(first_sample - ((whole_index + 0.5) * whole_scale - 0.5))
        last_sample = origins + (resampled - 0.5) * scale - 0.5
        offset_last = np.abs(last_sample - ((whole_index + resampled - 0.5) * whole_scale - 0.5))
        offset = np.maximum(offset_first, offset_last)
        whole_axis = (origins == 0) & (size == length)
        offset[whole_axis] = 0.0
        if resampled >= axis.patch:
            shared = np.all([np.isin(whole_index + tile, list(whole_tiles)) for tile in starts], axis=0)
        else:  # a padded tile holds zeros where the whole volume's tile holds the image
            shared = np.zeros(len(origins), dtype=bool)
        shared |= whole_axis
        off_grid = np.where(offset <= SAMPLE_OFFSET_TOLERANCE_VOXELS, 0.0, offset)
        index = np.lexsort((start - origins, ~shared, off_grid))[0]  # this size's best origin
        key = (float(off_grid[index]), len(starts), bool(not shared[index]), size, int(start - origins[index]))
        if best_key is None or key < best_key:
            best_key = key
            best = AxisChoice(int(origins[index]), int(origins[index]) + size, len(starts),
                              float(offset[index]), bool(shared[index]))
            best_placement = (int(whole_index[index]), resampled)  # its first model voxel in the whole volume
    if best is not None and not best.tiles_shared and best.sample_offset_voxels <= SAMPLE_OFFSET_TOLERANCE_VOXELS:
        plan = whole_tile_plan(*best_placement, whole_tiles, axis.patch, best.tiles)
        if plan is not None:
            best = AxisChoice(best.start, best.stop, len(plan), best.sample_offset_voxels, False, plan)
    return best


def nonzero_extent(image: sitk.Image) -> Tuple[Tuple[int, int], ...]:
    """[first, stop) of the non-zero voxels along each ITK axis (nnU-Net crops to this box first); the whole axis
    for an image without any non-zero voxel."""
    bounds = bounding_box(sitk.GetArrayViewFromImage(image) != 0)
    if bounds is None:
        return tuple((0, size) for size in image.GetSize())
    low_zyx, high_zyx = bounds  # inclusive; ITK axis i/j/k is NumPy axis 2/1/0
    return tuple((int(low_zyx[2 - axis]), int(high_zyx[2 - axis]) + 1) for axis in range(3))


def model_axes_of_input(order: Sequence[int], flips: Sequence[bool], transpose_forward: Sequence[int]) \
        -> List[Tuple[int, bool]]:
    """(input ITK axis, reversed) for each model axis: model axis m is NumPy axis transpose_forward[m] of the
    reoriented array, i.e. its ITK axis t = 2 - that, which takes input axis order[t], reversed when flips[t]."""
    axes = []
    for numpy_axis in transpose_forward:
        oriented_axis = 2 - int(numpy_axis)
        axes.append((int(order[oriented_axis]), bool(flips[oriented_axis])))
    return axes


def align_box(image: sitk.Image, box: RoiBox, order: Sequence[int], flips: Sequence[bool],
              transpose_forward: Sequence[int], model_spacing_mm: Sequence[float], patch: Sequence[int],
              step: float) -> RoiBox:
    """`box` grown onto the model's grid (module docstring). `order`/`flips`: the reorientation to the model's
    orientation; `transpose_forward`, `model_spacing_mm` (mm), `patch` (model voxels): from the plans, in model axis
    order; `step`: the tile step."""
    extent = nonzero_extent(image)
    start, stop = list(box.start), [s + n for s, n in zip(box.start, box.size)]
    offsets, shared = [0.0] * 3, [True] * 3
    plans: List[Optional[Tuple[int, ...]]] = [None] * 3  # per model axis
    for model_axis, (input_axis, reversed_axis) in enumerate(model_axes_of_input(order, flips, transpose_forward)):
        low, high = extent[input_axis]
        a, b = max(start[input_axis], low) - low, min(stop[input_axis], high) - low
        if a >= b:  # the box lies where nnU-Net sees only zeros: nothing to align to
            continue
        length = high - low
        if reversed_axis:  # the model counts this axis from the other end
            a, b = length - b, length - a
        axis = ModelAxis(image.GetSpacing()[input_axis], float(model_spacing_mm[model_axis]),
                         int(patch[model_axis]), float(step))
        choice = align_axis(a, b, length, axis)
        a, b = choice.start, choice.stop
        if reversed_axis:
            a, b = length - b, length - a
        start[input_axis], stop[input_axis] = a + low, b + low
        offsets[input_axis], shared[input_axis] = choice.sample_offset_voxels, choice.tiles_shared
        plans[model_axis] = choice.tile_starts
    grid = {"cut_index_start_ijk": list(box.start), "cut_size_ijk": list(box.size),
            "sample_offset_voxels_ijk": [round(o, 4) for o in offsets], "tiles_shared_with_whole_volume_ijk": shared,
            "tile_starts_model_axes": [list(plan) if plan is not None else None for plan in plans]}
    return RoiBox(tuple(start), tuple(b - a for a, b in zip(start, stop)), box.margin_mm, box.image_size,
                  model_grid=grid, tile_starts=tuple(plans) if any(p is not None for p in plans) else None)


def planned_slicers(image_size, patch_size, step: float, plan) -> Optional[list]:
    """nnU-Net's 3D sliding-window slicers with the tile starts of `plan` (per axis a tuple of starts, or None for
    nnU-Net's own steps) instead of its own where given; None when there is no plan, or when a planned axis does not
    fit `image_size` (the first tile at 0, the last flush with the end: anything else would leave voxels out)."""
    from nnunetv2.inference.sliding_window_prediction import compute_steps_for_sliding_window

    if plan is None or len(image_size) != 3 or len(plan) != 3:
        return None
    steps = compute_steps_for_sliding_window(image_size, patch_size, step)
    for axis, starts in enumerate(plan):
        if starts is None:
            continue
        if starts[0] != 0 or starts[-1] + patch_size[axis] != image_size[axis] or \
                any(b - a > patch_size[axis] or b <= a for a, b in zip(starts, starts[1:])):
            return None
        steps[axis] = list(starts)
    return [tuple([slice(None), *[slice(s, s + p) for s, p in zip((sx, sy, sz), patch_size)]])
            for sx in steps[0] for sy in steps[1] for sz in steps[2]]

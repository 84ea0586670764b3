"""The paper's rootlet entry zone (cord dilated by a 3-voxel ball) and the spinal-level label image."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from RootletSegLogic.errors import UserError
from RootletSegLogic.images.grid import check_same_grid
from RootletSegLogic.levels.centerline import (
    POSITION_TOLERANCE_MM,
    GridGeometry,
    bounding_box,
    voxel_indices,
)
from RootletSegLogic.levels.types import LevelResult

ENTRY_ZONE_DILATION_VOXELS = 3


# ------------------------------------------------------------------------------------------------ entry zone
def _ball_offsets(radius: int) -> np.ndarray:
    r = np.arange(-radius, radius + 1)
    zz, yy, xx = np.meshgrid(r, r, r, indexing="ij")
    return (zz ** 2 + yy ** 2 + xx ** 2) <= radius ** 2


def entry_zone_mask(rootlets_zyx: np.ndarray, cord_zyx: np.ndarray, radius: int = ENTRY_ZONE_DILATION_VOXELS):
    """Boolean (z, y, x) mask of rootlet voxels (value > 0) lying in the cord dilated by a `radius`-voxel ball.

    Works on the bounding box where rootlets and the dilated cord can meet, so it is fast on large volumes.
    """
    from scipy import ndimage

    out = np.zeros(rootlets_zyx.shape, dtype=bool)
    cord_box, root_box = bounding_box(cord_zyx != 0), bounding_box(rootlets_zyx != 0)
    if cord_box is None or root_box is None:
        return out
    shape = np.array(rootlets_zyx.shape)
    lo = np.maximum(cord_box[0] - radius, root_box[0])
    hi = np.minimum(cord_box[1] + radius, root_box[1])
    if np.any(hi < lo):
        return out
    # cord context: the region plus `radius` voxels around it
    clo = np.maximum(lo - radius, 0)
    chi = np.minimum(hi + radius, shape - 1)
    cord_box = cord_zyx[clo[0]:chi[0] + 1, clo[1]:chi[1] + 1, clo[2]:chi[2] + 1] != 0
    dilated = ndimage.binary_dilation(cord_box, structure=_ball_offsets(radius))
    a, b = lo - clo, hi - clo
    dilated = dilated[a[0]:b[0] + 1, a[1]:b[1] + 1, a[2]:b[2] + 1]
    roots_box = rootlets_zyx[lo[0]:hi[0] + 1, lo[1]:hi[1] + 1, lo[2]:hi[2] + 1] != 0
    out[lo[0]:hi[0] + 1, lo[1]:hi[1] + 1, lo[2]:hi[2] + 1] = dilated & roots_box
    return out


# ------------------------------------------------------------------------------------------------ label image
def spinal_level_label_image(rootlets: sitk.Image, cord: sitk.Image, result: LevelResult) -> sitk.Image:
    """UInt8 image on the input grid: cord voxels whose centre S lies within a spinal level's bounds get its value.

    For axis-aligned grids these are exactly the cord voxels of the level's axial slices. Where two levels overlap
    (paper method), the more caudal level is kept; gapless levels share only their boundary slice, which goes to
    the lower level.
    """
    if cord is None:
        raise UserError("A spinal level label image needs a spinal cord mask: give --cord.")
    check_same_grid(cord, rootlets, what="spinal cord mask")
    geometry = GridGeometry(cord)
    cord_zyx = sitk.GetArrayViewFromImage(cord)
    out = np.zeros(cord_zyx.shape, dtype=np.uint8)
    zyx = voxel_indices(cord_zyx != 0)
    s = geometry.s_of_zyx(zyx)
    labels = np.zeros(len(zyx), dtype=np.uint8)
    for row in sorted(result.spinal(), key=lambda r: r.label_value):
        inside = (s <= row.rostral_S_mm + POSITION_TOLERANCE_MM) & (s >= row.caudal_S_mm - POSITION_TOLERANCE_MM)
        labels[inside] = row.label_value
    out[tuple(zyx.T)] = labels
    image = sitk.GetImageFromArray(out)
    image.CopyInformation(cord)
    return image

"""The phantom's truth computed from its sampled label maps: each level's rostral/caudal bounds at the rootlet entry
zone (`entry_zone_bounds`), and the TotalSpineSeg step-1 label map a spine (landmark) model learns (`spine_labels`).

Both work on NumPy (z, y, x) arrays of one grid, so the truth is exact for the grid the phantom was sampled on.
"""

from __future__ import annotations

from typing import Dict

import numpy as np

from RootletSegLogic.landmarks import scheme
from RootletSegLogic.synthetic.anatomy import DISC_VALUES

ENTRY_ZONE_DILATION_VOXELS = 3


def _ball(radius: int) -> np.ndarray:
    r = np.arange(-radius, radius + 1)
    zz, yy, xx = np.meshgrid(r, r, r, indexing="ij")
    return (xx ** 2 + yy ** 2 + zz ** 2) <= radius ** 2


def entry_zone_bounds(rootlets_zyx: np.ndarray, cord_zyx: np.ndarray, s_of_slice: np.ndarray,
                      radius_voxels: int = ENTRY_ZONE_DILATION_VOXELS) -> Dict[int, tuple]:
    """Per label: (rostral S, caudal S, n voxels) of rootlet voxels inside the cord dilated by a voxel ball.

    Arrays are NumPy (z, y, x) of a grid whose z axis is the S-I axis; `s_of_slice[k]` is the RAS S (mm) of slice k.
    The ball is {(i, j, k): i^2 + j^2 + k^2 <= radius^2} in voxels (scipy.ndimage.binary_dilation).
    """
    from scipy import ndimage

    zone = ndimage.binary_dilation(cord_zyx > 0, structure=_ball(radius_voxels))
    bounds = {}
    for value in np.unique(rootlets_zyx[zone]):
        if value == 0:
            continue
        slices = np.nonzero((rootlets_zyx == value) & zone)[0]
        s = s_of_slice[slices]
        bounds[int(value)] = (float(s.max()), float(s.min()), int(slices.size))
    return bounds


def spine_labels(cord, canal, disc_sd, body_sd, nearest_disc, above_c1_c2_disc) -> np.ndarray:
    """TotalSpineSeg step-1 label map (z, y, x) uint8 from the phantom's regions (see `Phantom`).

    nearest_disc[k]: index into DISC_VALUES of the disc nearest to slice k; above_c1_c2_disc[k]: slice k lies above
    the C1/C2 disc (its vertebral body is the phantom's "C1").
    """
    spine = np.zeros(cord.shape, dtype=np.uint8)
    body = body_sd < 0
    spine[body] = scheme.VERTEBRA
    spine[body & above_c1_c2_disc[:, None, None]] = scheme.VERTEBRA_C1
    disc_value = np.array([scheme.step1_value_for_sct_disc(DISC_VALUES[i]) for i in nearest_disc], dtype=np.uint8)
    disc = disc_sd < 0
    spine[disc] = np.broadcast_to(disc_value[:, None, None], spine.shape)[disc]
    spine[canal & ~cord] = scheme.CANAL
    spine[cord] = scheme.CORD
    return spine

"""World coordinates: LPS (ITK) <-> RAS (Slicer, nibabel) and voxel centres in mm."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from RootletSegLogic.images.orientation import direction_matrix


# ------------------------------------------------------------------------------------------ world coordinates
def lps_to_ras(points) -> np.ndarray:
    """LPS mm points (..., 3) to RAS mm (flip x and y)."""
    points = np.array(points, dtype=float)
    points[..., :2] *= -1
    return points


ras_to_lps = lps_to_ras  # the same sign flip, its own inverse


def voxel_centers_lps(image: sitk.Image, indices_ijk) -> np.ndarray:
    """LPS mm positions of voxel centres given as (N, 3) integer indices in ITK (i, j, k) order."""
    ijk = np.asarray(indices_ijk, dtype=float).reshape(-1, 3)
    scaled = ijk * np.asarray(image.GetSpacing())
    return scaled @ direction_matrix(image).T + np.asarray(image.GetOrigin())

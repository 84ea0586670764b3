"""Voxel-grid comparison: same size, spacing, origin and direction within a tolerance."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import SimpleITK as sitk

from RootletSegLogic.errors import UserError
from RootletSegLogic.images.orientation import axcodes_of


# ------------------------------------------------------------------------------------------------- grid checks
def same_grid(a: sitk.Image, b: sitk.Image, tolerance_mm: float = 1e-3) -> bool:
    """True when both images have the same size and, within `tolerance_mm`, spacing, origin and direction."""
    if a.GetSize() != b.GetSize():
        return False
    if not np.allclose(a.GetSpacing(), b.GetSpacing(), atol=tolerance_mm):
        return False
    if not np.allclose(a.GetOrigin(), b.GetOrigin(), atol=tolerance_mm):
        return False
    return np.allclose(a.GetDirection(), b.GetDirection(), atol=1e-4)


def check_same_grid(image: sitk.Image, reference: sitk.Image, tolerance_mm: float = 1e-3, what: str = "image",
                    reference_what: str = "reference image") -> None:
    """Raise UserError when `image` is not on the grid of `reference` (the message names both and their grids;
    origins in LPS mm, as ITK reads them)."""
    if not same_grid(image, reference, tolerance_mm):
        raise UserError(
            f"The {what} is not on the same voxel grid as the {reference_what} "
            f"(size {image.GetSize()} vs {reference.GetSize()}, spacing {_fmt(image.GetSpacing())} vs "
            f"{_fmt(reference.GetSpacing())} mm, origin {_fmt(image.GetOrigin())} vs {_fmt(reference.GetOrigin())} "
            f"mm LPS, orientation {axcodes_of(image)} vs {axcodes_of(reference)}): resample it onto the "
            f"{reference_what} first."
        )


def _fmt(values: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:g}" for v in values) + ")"

"""Orientation codes and exact axis permutations (no resampling) between orientations, by SimpleITK's DICOMOrient.

Letter convention: codes here are "to" letters, as SimpleITK's `DICOMOrient` / `DICOMOrientImageFilter` write
them (checked on SimpleITK 2.5 / ITK 5.4, and pinned by Testing/Python/test_images.py): "LPS" is the identity
direction (voxel axis i increases toward Left, j toward Posterior, k toward Superior in ITK's LPS world, mm), and
"RAS" is diag(-1, -1, 1). nibabel's `aff2axcodes` uses the same letters. ITK's older `OrientImageFilter` /
`SpatialOrientation` enums ("RAI" for the identity) and SCT ("LPI" for RAS) use "from" letters: SCT codes go through
`sct_to_axcodes` / `axcodes_to_sct`. The import-time check below refuses a SimpleITK whose DICOMOrient names
orientations otherwise, since a mixed-up convention mirrors the anatomy silently.

Oblique directions are read as the closest axis-aligned orientation (ITK pairs axes greedily from the largest
|cosine| down, as SCT does); the permutation then moves voxels only, so every round trip is exact.
"""

from __future__ import annotations

import itertools

import numpy as np
import SimpleITK as sitk

from RootletSegLogic.errors import UserError

_ITK = sitk.DICOMOrientImageFilter
_OPPOSITE = str.maketrans("RLAPSI", "LRPAIS")

# A wrong letter convention would mirror every result without any error, so it is refused up front.
if _ITK.GetOrientationFromDirectionCosines((1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)) != "LPS":
    raise ImportError(
        f"SimpleITK {sitk.Version.VersionString()} names orientations with 'from' letters, and RootletSeg needs "
        f"DICOMOrient's 'to' letters (SimpleITK 2.5 is tested): upgrade SimpleITK."
    )

ALL_AXCODES = tuple(
    "".join(letters)
    for perm in itertools.permutations(("LR", "AP", "SI"))
    for letters in itertools.product(*perm)
)
"""The 48 axis-aligned orientation codes ("to" letters)."""


# --------------------------------------------------------------------------------------------- orientation codes
def validate_axcodes(code: str) -> str:
    """Return `code` upper-cased if it names 3 distinct anatomical axes ("RAS", "psr", ...), else raise UserError."""
    code = code.upper()
    if len(code) != 3 or any(c not in "RLAPSI" for c in code):
        raise UserError(f"Orientation '{code}' is not valid: use three letters from R/L, A/P, S/I, such as RAS or LPS.")
    # ITK answers an all-zero matrix for a code that names an axis twice ("RRS", "RLS").
    if not any(_ITK.GetDirectionCosinesFromOrientation(code)):
        raise UserError(f"Orientation '{code}' names an axis twice: use one letter each of R/L, A/P and S/I.")
    return code


def sct_to_axcodes(sct_code: str) -> str:
    """SCT orientation ("from" letters, e.g. "LPI") to this project's "to" letters (e.g. "RAS")."""
    return validate_axcodes(sct_code).translate(_OPPOSITE)


def axcodes_to_sct(code: str) -> str:
    """This project's "to" letters (e.g. "RAS") to SCT's "from" letters (e.g. "LPI")."""
    return validate_axcodes(code).translate(_OPPOSITE)


def direction_matrix(image: sitk.Image) -> np.ndarray:
    """3x3 direction cosines of `image`: column n is the LPS unit vector of voxel axis n."""
    return np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)


def axcodes_of(image: sitk.Image) -> str:
    """Closest axis-aligned orientation code ("to" letters) of an image, oblique directions included."""
    code = _ITK.GetOrientationFromDirectionCosines(image.GetDirection())
    if code not in ALL_AXCODES:  # old ITK (5.2) answered "INVALID" for some oblique directions
        raise RuntimeError(f"SimpleITK found no orientation code for direction {image.GetDirection()}")
    return code


def direction_for_axcodes(code: str) -> tuple:
    """Direction tuple (row-major, for `SetDirection`) of an axis-aligned image with orientation `code`."""
    return tuple(_ITK.GetDirectionCosinesFromOrientation(validate_axcodes(code)))


class Reorientation:
    """An exact, invertible axis permutation + flips taking an image to a target orientation (DICOMOrient's plan).

    No resampling happens: voxel values are only moved, so `restore(apply(x))` is `x` bit for bit,
    and the restored image gets the original image's grid (size, spacing, origin, direction) exactly.
    `order[t]` is the input voxel axis that output axis t takes (SimpleITK x=0, y=1, z=2); `flips[t]` says
    whether output axis t is then reversed.
    """

    def __init__(self, reference: sitk.Image, target_code: str):
        self.reference = reference
        self.target_code = validate_axcodes(target_code)
        axcodes_of(reference)  # refuse a direction ITK cannot name before planning with it
        # The plan depends on the direction only, so ITK computes it on a one-voxel image with that direction.
        probe = sitk.Image([1, 1, 1], sitk.sitkUInt8)
        probe.SetDirection(reference.GetDirection())
        planner = _ITK()
        planner.SetDesiredCoordinateOrientation(self.target_code)
        planner.Execute(probe)
        self.order = [int(axis) for axis in planner.GetPermuteOrder()]
        self.flips = [bool(flip) for flip in planner.GetFlipAxes()]

    @property
    def is_identity(self) -> bool:
        return self.order == [0, 1, 2] and not any(self.flips)

    def apply(self, image: sitk.Image) -> sitk.Image:
        """`image` (on the reference grid) in the target orientation, with correct physical metadata (LPS mm)."""
        return sitk.DICOMOrient(image, self.target_code)

    def restore(self, image: sitk.Image) -> sitk.Image:
        """Inverse of `apply`: an image on the target-oriented grid back onto the reference grid exactly.

        Raises RuntimeError (a bug, not a user error) when `image` is not on the grid `apply` makes from the
        reference (size, or spacing / origin beyond 1e-3 mm, or direction beyond 1e-4).
        """
        # The explicit inverse of ITK's plan, rather than DICOMOrient back to axcodes_of(reference): that would
        # re-read an oblique direction and could pair axes differently near a 45-degree tie.
        if any(self.flips):
            image = sitk.Flip(image, self.flips, flipAboutOrigin=False)
        out = sitk.PermuteAxes(image, [int(axis) for axis in np.argsort(self.order)])
        # ITK's coordinate tolerance is in units of the first spacing: scaled so that it means 1e-3 mm.
        tolerance = 1e-3 / self.reference.GetSpacing()[0]
        if not out.IsSameImageGeometryAs(self.reference, tolerance, 1e-4):
            raise RuntimeError(
                f"image of size {image.GetSize()}, spacing {image.GetSpacing()}, origin {image.GetOrigin()} does not "
                f"come from reorienting the reference (size {self.reference.GetSize()}) to {self.target_code}"
            )
        out.CopyInformation(self.reference)  # bit-exact grid: the permutation only moved values
        return out

    def apply_array_zyx(self, array_zyx: np.ndarray) -> np.ndarray:
        """The same permutation/flips on a NumPy array in SimpleITK (z, y, x) order."""
        # axis t of the ITK image (x=0, y=1, z=2) is NumPy axis 2 - t
        transposed = np.transpose(array_zyx, [2 - self.order[2 - a] for a in range(3)])
        flip_axes = tuple(2 - t for t in range(3) if self.flips[t])
        return np.flip(transposed, flip_axes) if flip_axes else transposed

    def restore_array_zyx(self, array_zyx: np.ndarray) -> np.ndarray:
        """Inverse of `apply_array_zyx`."""
        flip_axes = tuple(2 - t for t in range(3) if self.flips[t])
        if flip_axes:
            array_zyx = np.flip(array_zyx, flip_axes)
        forward = [2 - self.order[2 - a] for a in range(3)]
        return np.transpose(array_zyx, np.argsort(forward))


def reorient(image: sitk.Image, target_code: str) -> sitk.Image:
    """`image` permuted/flipped (no resampling) to orientation `target_code` ("to" letters)."""
    return sitk.DICOMOrient(image, validate_axcodes(target_code))

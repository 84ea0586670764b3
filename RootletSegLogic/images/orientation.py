"""Orientation codes and exact axis permutations (no resampling) between orientations."""

from __future__ import annotations

import itertools

import numpy as np
import SimpleITK as sitk

from RootletSegLogic.errors import UserError

# Unit vector, in ITK LPS world coordinates, of the direction each "to" letter names.
_LETTER_TO_LPS = {
    "L": (1.0, 0.0, 0.0),
    "R": (-1.0, 0.0, 0.0),
    "P": (0.0, 1.0, 0.0),
    "A": (0.0, -1.0, 0.0),
    "S": (0.0, 0.0, 1.0),
    "I": (0.0, 0.0, -1.0),
}
_OPPOSITE = {"L": "R", "R": "L", "A": "P", "P": "A", "S": "I", "I": "S"}

ALL_AXCODES = tuple(
    "".join(letters)
    for perm in itertools.permutations(("LR", "AP", "SI"))
    for letters in itertools.product(*perm)
)


# --------------------------------------------------------------------------------------------- orientation codes
def validate_axcodes(code: str) -> str:
    """Return `code` upper-cased if it names 3 distinct anatomical axes ("RAS", "psr", ...), else raise UserError."""
    code = code.upper()
    if len(code) != 3 or any(c not in _LETTER_TO_LPS for c in code):
        raise UserError(f"Orientation '{code}' is not valid: use three letters from R/L, A/P, S/I, such as RAS or LPS.")
    axes = {frozenset((c, _OPPOSITE[c])) for c in code}
    if len(axes) != 3:
        raise UserError(f"Orientation '{code}' names an axis twice: use one letter each of R/L, A/P and S/I.")
    return code


def sct_to_axcodes(sct_code: str) -> str:
    """SCT orientation ("from" letters, e.g. "LPI") to this project's "to" letters (e.g. "RAS")."""
    return "".join(_OPPOSITE[c] for c in validate_axcodes(sct_code))


def axcodes_to_sct(code: str) -> str:
    """This project's "to" letters (e.g. "RAS") to SCT's "from" letters (e.g. "LPI")."""
    return "".join(_OPPOSITE[c] for c in validate_axcodes(code))


def direction_matrix(image: sitk.Image) -> np.ndarray:
    """3x3 direction cosines of `image`: column n is the LPS unit vector of voxel axis n."""
    return np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)


def axcodes_of(image: sitk.Image) -> str:
    """Closest axis-aligned orientation code ("to" letters) of an image, oblique directions included."""
    plan = _axis_plan(direction_matrix(image), "LPS")
    code = ["?"] * 3
    for target_axis, (source_axis, flip) in enumerate(plan):
        letter = "LPS"[target_axis]
        code[source_axis] = _OPPOSITE[letter] if flip else letter
    return "".join(code)


def direction_for_axcodes(code: str) -> tuple:
    """Direction tuple (row-major, for `SetDirection`) of an axis-aligned image with orientation `code`."""
    code = validate_axcodes(code)
    columns = np.array([_LETTER_TO_LPS[c] for c in code]).T
    return tuple(float(v) for v in columns.ravel())


def _axis_plan(direction: np.ndarray, target_code: str) -> list:
    """For each target voxel axis: (source voxel axis, flip?) so the result points along `target_code`.

    Works for oblique directions by pairing axes greedily from the largest |cosine| down, which is
    the closest axis-aligned reading of the direction matrix (as SCT and DICOMOrient do).
    """
    targets = np.array([_LETTER_TO_LPS[c] for c in validate_axcodes(target_code)])  # rows: target axes
    cosines = targets @ direction  # [target, source]
    plan: dict = {}
    used_sources: set = set()
    for flat in np.argsort(-np.abs(cosines), axis=None):
        target, source = divmod(int(flat), 3)
        if target in plan or source in used_sources:
            continue
        plan[target] = (source, bool(cosines[target, source] < 0))
        used_sources.add(source)
    return [plan[t] for t in range(3)]


class Reorientation:
    """An exact, invertible axis permutation + flips taking an image to a target orientation.

    No resampling happens: voxel values are only moved, so `restore(apply(x))` is `x` bit for bit,
    and the restored image gets the original image's grid (size, spacing, origin, direction) exactly.
    """

    def __init__(self, reference: sitk.Image, target_code: str):
        self.reference = reference
        self.target_code = validate_axcodes(target_code)
        plan = _axis_plan(direction_matrix(reference), self.target_code)
        self.order = [source for source, _ in plan]  # output axis t takes input axis order[t]
        self.flips = [flip for _, flip in plan]

    @property
    def is_identity(self) -> bool:
        return self.order == [0, 1, 2] and not any(self.flips)

    def apply(self, image: sitk.Image) -> sitk.Image:
        """`image` (on the reference grid) in the target orientation, with correct physical metadata."""
        out = sitk.PermuteAxes(image, self.order)
        if any(self.flips):
            out = sitk.Flip(out, self.flips, flipAboutOrigin=False)
        return out

    def restore(self, image: sitk.Image) -> sitk.Image:
        """Inverse of `apply`: an image on the target-oriented grid back onto the reference grid exactly."""
        if any(self.flips):
            image = sitk.Flip(image, self.flips, flipAboutOrigin=False)
        inverse = [0, 0, 0]
        for target, source in enumerate(self.order):
            inverse[source] = target
        out = sitk.PermuteAxes(image, inverse)
        if out.GetSize() != self.reference.GetSize():  # an image that was not made by `apply` on the reference
            raise ValueError(f"image of size {image.GetSize()} does not come from this reorientation")
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
    return Reorientation(image, target_code).apply(image)

"""Reading, checking and writing images; orientation helpers; atomic outputs.

Conventions used everywhere in RootletSeg:

- Images are `SimpleITK.Image`s in their own physical space. ITK physical coordinates are LPS (+x = Left,
  +y = Posterior, +z = Superior), in mm. Slicer and nibabel use RAS (+x = Right, +y = Anterior, +z = Superior):
  `ras = (-x, -y, z)` of the LPS point. Functions say which one they take.
- Orientation codes in this project are "to" letters, as nibabel's `aff2axcodes` and SimpleITK's `DICOMOrient`
  write them: "RAS" means voxel axis i increases toward Right, j toward Anterior, k toward Superior.
  SCT writes "from" letters (SCT "LPI" == "RAS" here): convert with `sct_to_axcodes`.
- NumPy arrays from SimpleITK are indexed (z, y, x) = (k, j, i), and their spacing is the reversed image spacing.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import tempfile
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import SimpleITK as sitk

from .errors import UserError

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")

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
"""The 48 axis-aligned orientation codes ("to" letters)."""


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
        check_same_grid(out, self.reference, tolerance_mm=1e-3, what="restored image")
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


def absolute_path(path: os.PathLike | str) -> Path:
    """Absolute, normalised path ("a/../b" -> "b"), without resolving symbolic links: what users see printed."""
    return Path(os.path.abspath(os.fspath(path)))


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


# ----------------------------------------------------------------------------------------------------- reading
def image_stem(path: os.PathLike | str) -> str:
    """File name without its image suffix and without nnU-Net's channel suffix `_0000`."""
    name = Path(path).name
    for suffix in IMAGE_SUFFIXES:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    if name.endswith("_0000"):
        name = name[: -len("_0000")]
    return name


def read_image(path: os.PathLike | str, what: str = "image") -> sitk.Image:
    """Read a 3D scalar image (NIfTI, NRRD, MetaImage) and check it can be segmented.

    A trailing 4th dimension of length 1 is dropped. Raises UserError (one sentence) for a missing file,
    a file that is not an image, a 2D or 4D image, a vector image, or NaN / infinite voxels.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"The {what} file '{path}' does not exist: check the path.")
    if path.is_dir():
        raise UserError(f"The {what} path '{path}' is a folder: give an image file (.nii.gz, .nii, .nrrd, .mha).")
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError:
        raise UserError(
            f"The {what} file '{path}' could not be read as an image: use NIfTI (.nii/.nii.gz), NRRD or MetaImage."
        ) from None
    if image.GetDimension() == 4 and image.GetSize()[3] == 1:
        image = image[:, :, :, 0]
    if image.GetDimension() != 3 or min(image.GetSize()) < 2:
        raise UserError(
            f"The {what} '{path.name}' has size {image.GetSize()}: a 3D volume is needed "
            f"(for a 4D series, extract one volume first)."
        )
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise UserError(f"The {what} '{path.name}' has several values per voxel (vector/RGB): give a scalar volume.")
    array = sitk.GetArrayViewFromImage(image)
    if (array.dtype.kind == "f" and not np.isfinite(array).all()) or _nifti_has_non_finite(path):
        raise UserError(f"The {what} '{path.name}' contains NaN or infinite voxels: fix or mask them first.")
    return image


def _nifti_has_non_finite(path: Path) -> bool:
    """ITK's NIfTI reader silently turns NaN into 0, so float NIfTI files are checked on their raw data."""
    if not path.name.lower().endswith((".nii", ".nii.gz")):
        return False
    import nibabel  # a dependency of nnunetv2; imported here because only NIfTI needs it

    try:
        proxy = nibabel.load(str(path)).dataobj
    except Exception:  # unreadable by nibabel but readable by ITK: nothing more to check
        return False
    if np.dtype(proxy.dtype).kind != "f":
        return False
    return not np.isfinite(np.asanyarray(proxy)).all()


def read_label_map(path: os.PathLike | str, what: str = "label map") -> sitk.Image:
    """Read a 3D label image; float files holding whole numbers are accepted and cast to int16."""
    image = read_image(path, what)
    array = sitk.GetArrayViewFromImage(image)
    if array.dtype.kind == "f":
        if not np.all(np.equal(np.mod(array, 1), 0)):
            raise UserError(f"The {what} '{Path(path).name}' has non-integer values: give a label map (whole numbers).")
        image = sitk.Cast(image, sitk.sitkInt16)
    return image


def file_sha256(path: os.PathLike | str, chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_bytes), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ----------------------------------------------------------------------------------------------- atomic writes
def _temporary_sibling(path: Path) -> Path:
    """A unique, hidden, not-yet-existing file name beside `path` with the same (possibly double) suffix,
    so that writers choosing the format by extension pick the right one."""
    name = path.name
    suffix = next((s for s in IMAGE_SUFFIXES + (".tsv", ".json", ".csv") if name.lower().endswith(s)), path.suffix)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=f".partial{suffix}", dir=path.parent)
    os.close(fd)
    os.unlink(tmp)  # only the unique name is wanted; the writer creates the file
    return Path(tmp)


def check_outputs(paths: Iterable[os.PathLike | str], overwrite: bool = False) -> list:
    """Raise UserError unless every output can be written: distinct paths, existing folders, and no existing
    file unless `overwrite`. Returns the absolute paths. Call it before long work so it fails early."""
    targets = [absolute_path(p) for p in paths]
    if len(set(targets)) != len(targets):
        raise UserError("Two outputs were given the same path: give each output its own file name.")
    for target in targets:
        if target.is_dir():
            raise UserError(f"The output '{target}' is a folder: give a file name.")
        if target.exists() and not overwrite:
            raise UserError(f"The output '{target}' already exists: choose another name or pass --overwrite.")
        if not target.parent.is_dir():
            raise UserError(f"The output folder '{target.parent}' does not exist: create it first.")
    return targets


def _default_file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_outputs(paths: Iterable[os.PathLike | str], overwrite: bool = False) -> Iterator[list]:
    """Write several outputs all-or-nothing.

    Checks first (`check_outputs`) that no output exists (unless `overwrite`) and that their folders exist, then
    yields temporary paths beside the outputs for the caller to write; on normal exit renames each onto its
    output (with the usual permissions for the user's umask), on any exception (Ctrl-C included) removes them.
    A user's existing file is never touched unless `overwrite` is True. Every yielded path must be written.
    """
    targets = check_outputs(paths, overwrite)
    temporaries: list = []
    try:
        for target in targets:
            temporaries.append(_temporary_sibling(target))
        yield temporaries
        missing = [str(target) for tmp, target in zip(temporaries, targets) if not tmp.exists()]
        if missing:
            raise RuntimeError(f"outputs were not written: {', '.join(missing)}")
        mode = _default_file_mode()
        for tmp in temporaries:
            os.chmod(tmp, mode)
        for tmp, target in zip(temporaries, targets):
            os.replace(tmp, target)
    finally:
        for tmp in temporaries:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


def write_image(image: sitk.Image, path: os.PathLike | str, overwrite: bool = False, compress: bool = True) -> Path:
    """Write one image atomically (never overwriting unless asked); returns the absolute path."""
    with atomic_outputs([path], overwrite) as (tmp,):
        sitk.WriteImage(image, str(tmp), compress)
    return absolute_path(path)


def write_text(text: str, path: os.PathLike | str, overwrite: bool = False) -> Path:
    """Write a text file atomically (never overwriting unless asked); returns the absolute path."""
    with atomic_outputs([path], overwrite) as (tmp,):
        Path(tmp).write_text(text, encoding="utf-8")
    return absolute_path(path)


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

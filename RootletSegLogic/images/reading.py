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

import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from RootletSegLogic.errors import UserError

"""The 48 axis-aligned orientation codes ("to" letters)."""


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

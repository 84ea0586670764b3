"""Reading and checking images (NIfTI, NRRD, MetaImage), each file's voxels decoded once.

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
from typing import Optional

import numpy as np
import SimpleITK as sitk

from RootletSegLogic.errors import UserError
from RootletSegLogic.images.files import remember_input


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
    remember_input(path)
    image = _read_nifti_float(path, what)
    if image is None:  # not a float NIfTI: ITK's own decoding loses nothing
        image = _itk_read(path, what)
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
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise UserError(f"The {what} '{path.name}' contains NaN or infinite voxels: fix or mask them first.")
    return image


def _itk_read(path: Path, what: str) -> sitk.Image:
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError:
        raise UserError(
            f"The {what} file '{path}' could not be read as an image: use NIfTI (.nii/.nii.gz), NRRD or MetaImage."
        ) from None


def _read_nifti_float(path: Path, what: str) -> Optional[sitk.Image]:
    """A float NIfTI file decoded once, by nibabel, as the SimpleITK image `sitk.ReadImage` gives; None otherwise.

    ITK's NIfTI reader (nifticlib) silently turns NaN and infinite voxels into 0, so a float file is decoded by
    nibabel, which keeps them for the check in `read_image`; the grid (size, spacing, LPS origin and direction)
    is ITK's own, from ITK reading the first voxel only, and the data scaling is ITK's (below), so the
    image is the one ITK would give, bit for bit, wherever the voxels are finite. Other files return None: ITK
    decodes them, and integer data cannot hold NaN.
    """
    if not path.name.lower().endswith((".nii", ".nii.gz")):
        return None
    import nibabel  # a dependency of nnunetv2; imported here because only NIfTI needs it

    try:
        nifti = nibabel.load(str(path))  # the header only: nibabel decodes voxels lazily
    except Exception:  # unreadable by nibabel: ITK reads it or says why not
        return None
    raw_dtype = np.dtype(nifti.header.get_data_dtype())
    if raw_dtype.kind != "f" or raw_dtype.itemsize not in (4, 8):  # float32/64 are the float types ITK reads
        return None
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
        size = reader.GetSize()
        if len(size) > 4 or reader.GetNumberOfComponents() != 1:  # vector intents, 5D+: ITK reads them its way
            return None
        # ITK streams just the first voxel: an image with the grid and header fields of sitk.ReadImage, bit for
        # bit (ReadImageInformation's direction can differ from it in the sign of zeros).
        reader.SetExtractSize([1] * len(size))
        corner = reader.Execute()
    except RuntimeError:
        return None  # _itk_read gives the user error
    raw = np.asarray(nifti.dataobj.get_unscaled())  # the one decode of the voxels, as stored (NaN kept)
    if raw.size != int(np.prod(size)):
        return None  # a layout ITK reads differently: leave it to ITK
    raw = raw.astype(raw.dtype.newbyteorder("="), copy=False)  # SimpleITK takes native byte order only
    slope, intercept = _itk_slope_intercept(_stored_header(nifti, path))
    if _itk_must_rescale(slope, intercept):
        # ITK's RescaleFunction: value * slope + intercept in double, stored back in the file's float type
        raw = (raw.astype(np.float64) * slope + intercept).astype(raw.dtype)
    # nibabel's array is indexed (i, j, k[, t]); SimpleITK's NumPy view is (…, k, j, i): the transpose reverses it.
    array_zyx = raw.reshape(size, order="F").T
    image = sitk.GetImageFromArray(array_zyx, isVector=False)
    if image.GetPixelID() != corner.GetPixelID():
        return None  # ITK would give another voxel type: its decoding decides
    image.SetSpacing(corner.GetSpacing())
    image.SetOrigin(corner.GetOrigin())  # the corner voxel is index 0, so its origin is the image's
    image.SetDirection(corner.GetDirection())
    for key in corner.GetMetaDataKeys():  # the header fields sitk.ReadImage keeps (ITK writes e.g. descrip back)
        image.SetMetaData(key, corner.GetMetaData(key))
    return image


def _stored_header(nifti, path: Path):
    """The file's header fields as stored: nibabel's `nifti.header` has scl_slope / scl_inter reset to NaN once it
    moved them into the array proxy, and interprets them differently from ITK (e.g. a zero slope)."""
    from nibabel.openers import ImageOpener

    with ImageOpener(str(path)) as stream:  # the header bytes only
        return nifti.header_class.from_fileobj(stream)


def _itk_slope_intercept(header) -> tuple:
    """(scl_slope, scl_inter) as ITK's NiftiImageIO holds them: nifticlib reads a non-finite value as 0, and ITK
    takes a zero slope as 1."""
    slope, intercept = (float(np.nan_to_num(header[key], nan=0.0, posinf=0.0, neginf=0.0))
                        for key in ("scl_slope", "scl_inter"))
    return (1.0 if abs(slope) < np.finfo(np.float64).eps else slope), intercept


def _itk_must_rescale(slope: float, intercept: float) -> bool:
    """ITK NiftiImageIO's MustRescale: scl_slope is not 0 and (slope, intercept) is not (1, 0)."""
    eps = np.finfo(np.float64).eps
    return abs(slope) > eps and (abs(slope - 1.0) > eps or abs(intercept) > eps)


def read_label_map(path: os.PathLike | str, what: str = "label map") -> sitk.Image:
    """Read a 3D label image; float files holding whole numbers are accepted and cast to int16."""
    image = read_image(path, what)
    array = sitk.GetArrayViewFromImage(image)
    if array.dtype.kind == "f":
        if not np.all(np.equal(np.mod(array, 1), 0)):
            raise UserError(f"The {what} '{Path(path).name}' has non-integer values: give a label map (whole numbers).")
        image = sitk.Cast(image, sitk.sitkInt16)
    return image

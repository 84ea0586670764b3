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

import io
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
    if path.name.lower().endswith((".nii", ".nii.gz")):
        check_nifti_file(path, what)  # before any decoding: ITK zero-fills short data and replaces bad spacing
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
    if image.GetPixelID() in (sitk.sitkComplexFloat32, sitk.sitkComplexFloat64):
        raise UserError(f"The {what} '{path.name}' has complex voxels: give a real-valued (magnitude) volume.")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise UserError(f"The {what} '{path.name}' has several values per voxel (vector/RGB): give a scalar volume.")
    check_geometry(image, f"{what} '{path.name}'")
    array = sitk.GetArrayViewFromImage(image)
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise UserError(f"The {what} '{path.name}' contains NaN or infinite voxels: fix or mask them first.")
    return image


# Voxel sizes outside these bounds (mm) are not an MRI: a header error (e.g. metres, or a zero ITK would make 1).
MIN_SPACING_MM = 1e-3
MAX_SPACING_MM = 100.0


def check_geometry(image: sitk.Image, what: str) -> None:
    """UserError unless the image's spacing is finite and within [MIN_SPACING_MM, MAX_SPACING_MM], and its origin
    and direction are finite with a non-singular direction."""
    spacing = np.asarray(image.GetSpacing(), dtype=float)
    if not np.all(np.isfinite(spacing)) or np.any(spacing < MIN_SPACING_MM) or np.any(spacing > MAX_SPACING_MM):
        shown = ", ".join(f"{v:g}" for v in spacing)
        raise UserError(f"The {what} has the voxel size ({shown}) mm, which is not possible for an image "
                        f"(each must be between {MIN_SPACING_MM:g} and {MAX_SPACING_MM:g} mm): fix its header.")
    origin = np.asarray(image.GetOrigin(), dtype=float)
    direction = np.asarray(image.GetDirection(), dtype=float)
    n = image.GetDimension()
    if (not np.all(np.isfinite(origin)) or not np.all(np.isfinite(direction))
            or abs(np.linalg.det(direction.reshape(n, n))) < 1e-6):
        raise UserError(f"The {what} has a non-finite origin or an invalid orientation matrix: fix its header.")


def _gzip_data_size(path: Path) -> int:
    """Bytes in a gzip file once decompressed (all members), by a streamed count. The ISIZE trailer is no proof: a
    truncated file ends in arbitrary bytes. Raises EOFError for a stream that ends early, zlib.error / OSError for
    a damaged one. Costs one gunzip (no voxel decoding), paid so that ITK never zero-fills a short file."""
    import zlib

    total = 0
    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    with io.FileIO(path, "rb") as handle:
        while True:
            chunk = handle.read(1 << 20)
            if not chunk:
                break
            while chunk:
                total += len(decoder.decompress(chunk, 1 << 24))
                chunk = decoder.unconsumed_tail
                if decoder.eof:  # a next gzip member may follow
                    chunk = decoder.unused_data
                    if chunk:
                        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    if not decoder.eof:
        raise EOFError("the compressed stream ends early")
    return total


def _header_bytes(path: Path, count: int) -> bytes:
    import gzip

    with io.FileIO(path, "rb") as raw:
        if path.name.lower().endswith(".gz"):
            with gzip.GzipFile(fileobj=raw) as stream:
                return stream.read(count)
        return raw.read(count)


def check_nifti_file(path: Path, what: str) -> None:
    """UserError for a NIfTI file ITK would read wrongly or not at all: a damaged or truncated (gzip) file, voxel
    data shorter than the header says (ITK fills the rest with zeros), complex voxels, impossible dimensions, or a
    zero / non-finite / absurd voxel size or orientation (ITK silently makes a zero spacing 1)."""
    import zlib

    import nibabel

    damaged = (f"The {what} file '{path}' is damaged or truncated (it ends before the data its header announces): "
               "copy or export it again.")
    import gzip

    try:
        block = _header_bytes(path, 540)
    except gzip.BadGzipFile:
        return  # not gzip at all: not a damaged NIfTI but not an image; ITK's reading says so
    except (OSError, EOFError, zlib.error):
        raise UserError(damaged) from None
    sizes = {int.from_bytes(block[:4], "little"), int.from_bytes(block[:4], "big")} if len(block) >= 4 else set()
    if 348 in sizes:
        header_class, header_size = nibabel.Nifti1Header, 348
    elif 540 in sizes:
        header_class, header_size = nibabel.Nifti2Header, 540
    else:
        if len(block) < 4:
            raise UserError(damaged)
        return  # not a NIfTI header: ITK says what it is not
    if len(block) < header_size:
        raise UserError(damaged)
    try:
        header = header_class.from_fileobj(io.BytesIO(block[:header_size]), check=False)
    except (ValueError, EOFError):
        raise UserError(damaged) from None
    try:
        dtype = np.dtype(header.get_data_dtype())
    except Exception:
        raise UserError(f"The {what} file '{path.name}' has an unknown voxel type in its header: the file is "
                        "damaged or not a NIfTI image.") from None
    if dtype.kind == "c":
        raise UserError(f"The {what} '{path.name}' has complex voxels: give a real-valued (magnitude) volume.")
    dim = [int(v) for v in header["dim"]]
    if not 1 <= dim[0] <= 7 or any(v < 1 for v in dim[1:dim[0] + 1]):
        raise UserError(f"The {what} '{path.name}' has impossible dimensions {dim[1:max(1, min(dim[0], 7)) + 1]} in "
                        "its header: the file is damaged.")
    zooms = [float(v) for v in header["pixdim"][1:4]]
    for index, zoom in enumerate(zooms[:min(dim[0], 3)]):
        if not np.isfinite(zoom) or not MIN_SPACING_MM <= abs(zoom) <= MAX_SPACING_MM:
            shown = ", ".join(f"{v:g}" for v in zooms[:min(dim[0], 3)])
            raise UserError(f"The {what} '{path.name}' has the voxel size ({shown}) mm in its header, which is not "
                            f"possible (each must be between {MIN_SPACING_MM:g} and {MAX_SPACING_MM:g} mm; ITK would "
                            "silently use 1 mm): fix its header.")
    if int(header["sform_code"]) > 0:
        srow = np.array([header["srow_x"], header["srow_y"], header["srow_z"]], dtype=float)[:, :3]
        if not np.all(np.isfinite(srow)) or abs(np.linalg.det(srow)) < 1e-12:
            raise UserError(f"The {what} '{path.name}' has a non-finite or singular orientation matrix (sform) in "
                            "its header: fix its header.")
    needed = int(header.get_data_offset()) + int(np.prod(dim[1:dim[0] + 1], dtype=np.int64)) * dtype.itemsize
    try:
        available = _gzip_data_size(path) if path.name.lower().endswith(".gz") else path.stat().st_size
    except (OSError, EOFError, zlib.error):
        raise UserError(damaged) from None
    if available < needed:
        raise UserError(f"The {what} file '{path}' is truncated: its header announces {needed} bytes but it holds "
                        f"{available}; copy or export it again.")


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
    try:
        raw = np.asarray(nifti.dataobj.get_unscaled())  # the one decode of the voxels, as stored (NaN kept)
    except (OSError, EOFError, ValueError) as error:
        import zlib  # noqa: F401  (zlib.error is an Exception subclass caught below)

        raise UserError(f"The {what} file '{path}' is damaged or truncated ({type(error).__name__}): "
                        "copy or export it again.") from None
    except Exception as error:
        if type(error).__name__ != "error":  # zlib.error
            raise
        raise UserError(f"The {what} file '{path}' is damaged (its compressed data is corrupt): "
                        "copy or export it again.") from None
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

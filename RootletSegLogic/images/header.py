"""An image file's grid read from its header only (no voxel decoding): for checks before the long work."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Tuple

import SimpleITK as sitk

from RootletSegLogic.errors import UserError


@dataclass(frozen=True)
class ImageHeader:
    """The voxel grid of an image file: size (i, j, k) in voxels, spacing in mm, origin in LPS mm (ITK's frame),
    direction cosines row-major (as `sitk.Image.GetDirection`). A trailing 4th axis of length 1 is dropped, as
    `images.reading.read_image` drops it. The Get* methods let `images.grid.check_same_grid` take a header where
    it takes an image."""

    path: Path
    size: Tuple[int, ...]
    spacing: Tuple[float, ...]
    origin: Tuple[float, ...]
    direction: Tuple[float, ...]

    def GetSize(self) -> Tuple[int, ...]:
        return self.size

    def GetSpacing(self) -> Tuple[float, ...]:
        return self.spacing

    def GetOrigin(self) -> Tuple[float, ...]:
        return self.origin

    def GetDirection(self) -> Tuple[float, ...]:
        return self.direction

    def GetDimension(self) -> int:
        return len(self.size)


def read_header(path: os.PathLike | str, what: str = "image") -> ImageHeader:
    """The grid of an image file from its header (`sitk.ImageFileReader.ReadImageInformation`): the voxels are
    not read. Raises UserError (one sentence) for a missing file, a folder, or a file that is not an image."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"The {what} file '{path}' does not exist: check the path.")
    if path.is_dir():
        raise UserError(f"The {what} path '{path}' is a folder: give an image file (.nii.gz, .nii, .nrrd, .mha).")
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        raise UserError(
            f"The {what} file '{path}' could not be read as an image: use NIfTI (.nii/.nii.gz), NRRD or MetaImage."
        ) from None
    size, spacing, origin = reader.GetSize(), reader.GetSpacing(), reader.GetOrigin()
    direction = reader.GetDirection()
    dimension = len(size)
    if dimension == 4 and size[3] == 1:  # as read_image: a 3D volume stored with a 4th axis of one
        direction = tuple(direction[row * 4 + col] for row in range(3) for col in range(3))
        size, spacing, origin, dimension = size[:3], spacing[:3], origin[:3], 3
    if dimension != 3:
        raise UserError(f"The {what} '{path.name}' has size {tuple(size)}: a 3D volume is needed "
                        "(for a 4D series, extract one volume first).")
    return ImageHeader(path, tuple(int(s) for s in size), tuple(float(s) for s in spacing),
                       tuple(float(o) for o in origin), tuple(float(d) for d in direction))

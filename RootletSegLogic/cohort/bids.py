"""BIDS discovery: the images of a dataset and the landmark files its derivatives hold for each.

Images: `sub-<label>/[ses-<label>/]anat/sub-<label>[_ses-<label>]_..._<suffix>.nii.gz` for each asked suffix
(T2w, UNIT1, ...). `--include` / `--exclude` globs (fnmatch) are matched against the image's path relative to the
dataset root (e.g. `sub-0*/anat/*_T2w.nii.gz`) and against its file name, so `sub-01*` works too.

Landmarks from the dataset's own derivatives, in spine-generic names, under
`derivatives/labels/<same relative folder>/`:
    <stem>_label-SC_seg.nii.gz       spinal cord mask
    <stem>_label-discs_dlabel.nii.gz disc labels (SCT values: 2 = C1/C2, ...)
    <stem>_label-PMJ_dlabel.nii.gz   PMJ label (value 50), if present (`label-pmj` accepted too)
where <stem> is the image's file name without `.nii.gz`.
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

from RootletSegLogic.errors import UserError

DEFAULT_SUFFIXES = ("T2w",)
DERIVATIVES_FOLDER = Path("derivatives") / "labels"
CORD_SUFFIXES = ("_label-SC_seg.nii.gz",)
DISC_SUFFIXES = ("_label-discs_dlabel.nii.gz",)
PMJ_SUFFIXES = ("_label-PMJ_dlabel.nii.gz", "_label-pmj_dlabel.nii.gz")
_ENTITY = re.compile(r"^(sub-[A-Za-z0-9]+)(?:_(ses-[A-Za-z0-9]+))?")


@dataclass(frozen=True)
class Landmarks:
    """Landmark files for one image (absolute paths or None) and where they came from ("derivatives" or "none")."""

    cord: Optional[str] = None
    discs: Optional[str] = None
    pmj: Optional[str] = None

    @property
    def source(self) -> str:
        return "derivatives" if (self.cord or self.discs or self.pmj) else "none"


@dataclass(frozen=True)
class BidsImage:
    """One image of the dataset. `relative` is its path relative to the dataset root (POSIX), `folder` the
    relative folder (`sub-01/ses-01/anat`) its outputs go to in the derivatives dataset."""

    path: str
    relative: str
    subject: str
    session: Optional[str]
    suffix: str
    stem: str
    landmarks: Landmarks

    @property
    def folder(self) -> str:
        return str(Path(self.relative).parent.as_posix())

    @property
    def participant_id(self) -> str:
        """sub-<label>, with _ses-<label> when the image has a session: unique per subject and session."""
        return f"{self.subject}_{self.session}" if self.session else self.subject


def _matches(relative: str, patterns: Sequence[str]) -> bool:
    name = Path(relative).name
    return any(fnmatch.fnmatchcase(relative, p) or fnmatch.fnmatchcase(name, p) for p in patterns)


def _first_existing(folder: Path, stem: str, suffixes: Sequence[str]) -> Optional[str]:
    for suffix in suffixes:
        candidate = folder / f"{stem}{suffix}"
        if candidate.is_file():
            return str(candidate)
    return None


def landmarks_for(root: Path, relative: str) -> Landmarks:
    """The derivatives' cord, discs and PMJ for the image at `relative` (see the module docstring)."""
    rel = Path(relative)
    stem = rel.name[: -len(".nii.gz")]
    folder = root / DERIVATIVES_FOLDER / rel.parent
    return Landmarks(_first_existing(folder, stem, CORD_SUFFIXES), _first_existing(folder, stem, DISC_SUFFIXES),
                     _first_existing(folder, stem, PMJ_SUFFIXES))


def find_images(root: os.PathLike | str, suffixes: Sequence[str] = DEFAULT_SUFFIXES,
                include: Sequence[str] = (), exclude: Sequence[str] = ()) -> List[BidsImage]:
    """The dataset's images with the given suffixes, sorted by path; UserError when `root` is not a BIDS dataset
    folder (no sub-* folder) or when no image matches."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise UserError(f"The BIDS dataset '{root}' is not a folder: give the dataset's root folder.")
    subjects = sorted(p for p in root.glob("sub-*") if p.is_dir())
    if not subjects:
        raise UserError(f"The folder '{root}' holds no sub-* folder: give the root of a BIDS dataset.")
    images: List[BidsImage] = []
    for suffix in suffixes:
        for pattern in (f"sub-*/anat/*_{suffix}.nii.gz", f"sub-*/ses-*/anat/*_{suffix}.nii.gz"):
            for path in root.glob(pattern):
                relative = path.relative_to(root).as_posix()
                if include and not _matches(relative, include):
                    continue
                if exclude and _matches(relative, exclude):
                    continue
                match = _ENTITY.match(path.name)
                if match is None or match.group(1) != relative.split("/")[0]:
                    continue  # not a BIDS name of this subject: not ours to guess
                images.append(BidsImage(str(path), relative, match.group(1), match.group(2), suffix,
                                        path.name[: -len(".nii.gz")], landmarks_for(root, relative)))
    if not images:
        shown = ", ".join(suffixes)
        raise UserError(f"No image with suffix {shown} was found under '{root}' (sub-*/[ses-*/]anat/*_<suffix>.nii.gz"
                        f"{' after --include/--exclude' if include or exclude else ''}): check --suffix and the filters.")
    return sorted(images, key=lambda image: image.relative)

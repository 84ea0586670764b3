"""Writing outputs all-or-nothing: checks before long work, temporaries beside the targets, renames."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

import SimpleITK as sitk

from RootletSegLogic.errors import UserError
from RootletSegLogic.images.files import IMAGE_SUFFIXES, absolute_path


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

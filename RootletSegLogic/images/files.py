"""File identities: image suffixes, absolute paths, sha256 of a file, the inputs a command has read (file
stems and output names are `RootletSegLogic.naming`'s)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")


def absolute_path(path: os.PathLike | str) -> Path:
    """Absolute, normalised path ("a/../b" -> "b"), without resolving symbolic links: what users see printed."""
    return Path(os.path.abspath(os.fspath(path)))


def file_sha256(path: os.PathLike | str, chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes (inputs are hashed for provenance: the file is remembered as an input)."""
    remember_input(path)
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_bytes), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ----------------------------------------------------------------------------------------------- inputs read
# Identities (device, inode) of the files this process has read as inputs, so that no output replaces one, whatever
# path or link names it (`images.atomic`). Off by default: a long-lived process (Slicer) legitimately reads a file
# and later replaces it; the command line turns it on for the one command it runs.
_inputs = {"tracking": False, "seen": set()}


def track_inputs(on: bool = True) -> None:
    """Start (forgetting earlier ones) or stop remembering the files read as inputs."""
    _inputs["tracking"] = bool(on)
    _inputs["seen"] = set()


def remember_input(path: os.PathLike | str) -> None:
    """Note that `path` (links followed) is an input of the running command, when tracking is on."""
    if not _inputs["tracking"]:
        return
    try:
        st = os.stat(path)
    except OSError:
        return
    _inputs["seen"].add((st.st_dev, st.st_ino))


def inputs_read() -> frozenset:
    return frozenset(_inputs["seen"])

"""Writing outputs all-or-nothing: checks before long work, temporaries beside the targets, a commit that restores.

The guarantee (`atomic_outputs`), for the outputs of one command, as a set:
- Before any long work (`check_outputs`): no two outputs are the same file and no output is an input, compared by
  file identity (device + inode, through symbolic links), not by path text; no output exists unless `overwrite`
  (a dangling symbolic link counts as existing); an existing output that is immutable cannot be replaced; each
  output folder exists, is writable and has room, probed by writing a real temporary file there.
- Every output is first written in full to a hidden temporary beside its target (same folder, same file system).
- The commit moves each existing target aside to a hidden backup, then renames each temporary onto its target. Any
  failure (a full disk, a target that cannot be replaced) and any SIGINT / SIGTERM arriving during the commit puts
  the backups back and removes the new files: the folder is as it was. Signals are held back during the commit and
  delivered once it is undone (so a cancel then means: nothing was written). Backups are deleted last.
- Not covered: SIGKILL, a power cut or a crash of the machine during the commit (a fraction of a second): then
  part of the set may be in place and hidden `.<name>.*.partial*` / `.<name>.*.backup` files may remain beside it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import tempfile
import threading
from pathlib import Path
from typing import Iterable, Iterator, List, Optional

import SimpleITK as sitk

from RootletSegLogic.errors import UserError
from RootletSegLogic.images.files import IMAGE_SUFFIXES, absolute_path, inputs_read

PROBE_BYTES = 64 * 1024  # room asked of each output folder by default: more than any sidecar or table


# ----------------------------------------------------------------------------------------------- identities
def _identity(path: Path):
    """What `path` names on disk: (device, inode) of the file it leads to when it exists (symbolic links followed),
    else the fully resolved path (a dangling link resolves to where the file would be written)."""
    try:
        st = os.stat(path)
        return ("inode", st.st_dev, st.st_ino)
    except OSError:
        return ("path", os.path.realpath(path))


def _same_as_input(target: Path, inputs: Iterable) -> Optional[str]:
    identity = _identity(target)
    for source in inputs:
        if _identity(Path(source)) == identity:
            return str(source)
    if identity[0] == "inode" and (identity[1], identity[2]) in inputs_read():
        return "a file this command reads"
    return None


def _is_immutable(path: Path) -> bool:
    """Linux immutable / append-only attribute (chattr +i / +a): such a file cannot be replaced, even by root."""
    try:
        import fcntl
        import struct

        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except (OSError, ImportError):
        return False
    try:
        flags = fcntl.ioctl(fd, 0x80086601, struct.pack("l", 0))  # FS_IOC_GETFLAGS
        return bool(struct.unpack("l", flags)[0] & 0x30)  # FS_IMMUTABLE_FL | FS_APPEND_FL
    except OSError:
        return False
    finally:
        os.close(fd)


def _reason(error: OSError) -> str:
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return "the disk is full"
    if error.errno == errno.EROFS:
        return "the file system is read-only"
    if error.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return error.strerror or type(error).__name__


def probe_folder(folder: Path, room_bytes: int = PROBE_BYTES) -> None:
    """Write (and remove) a real temporary file of `room_bytes` in `folder`: UserError when it is read-only, not
    permitted or full. A real write is the only test that sees read-only mounts, immutable folders and quotas."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".rootletseg-probe.", dir=folder)
    except OSError as error:
        raise UserError(f"The output folder '{folder}' cannot be written ({_reason(error)}): choose another "
                        "folder or make it writable.") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(b"\0" * room_bytes)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as error:
        raise UserError(f"The output folder '{folder}' has no room for the outputs ({_reason(error)}): free some "
                        "space or choose another folder.") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(probe)


# ----------------------------------------------------------------------------------------------- checks
def _temporary_sibling(path: Path, kind: str = "partial") -> Path:
    """A unique, hidden, not-yet-existing file name beside `path` with the same (possibly double) suffix,
    so that writers choosing the format by extension pick the right one."""
    name = path.name
    suffix = next((s for s in IMAGE_SUFFIXES + (".tsv", ".json", ".csv") if name.lower().endswith(s)), path.suffix)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=f".{kind}{suffix}", dir=path.parent)
    os.close(fd)
    os.unlink(tmp)  # only the unique name is wanted; the writer creates the file
    return Path(tmp)


def check_outputs(paths: Iterable[os.PathLike | str], overwrite: bool = False, inputs: Iterable = (),
                  room_bytes: int = PROBE_BYTES) -> list:
    """Raise UserError unless every output can be written (see the module docstring): distinct files, none an input,
    existing folders that are writable and have room, no existing file unless `overwrite`, none immutable.
    Returns the absolute paths. Call it before long work so it fails early."""
    targets = [absolute_path(p) for p in paths]
    inputs = [absolute_path(p) for p in inputs]
    identities = [_identity(t) for t in targets]
    if len(set(identities)) != len(identities) or len(set(targets)) != len(targets):
        raise UserError("Two outputs name the same file (directly or through a link): give each output its own file.")
    for target in targets:
        source = _same_as_input(target, inputs)
        if source is not None:
            raise UserError(f"The output '{target}' is the same file as the input '{source}' (directly or through a "
                            "link): choose another output name.")
        if target.is_dir():
            raise UserError(f"The output '{target}' is a folder: give a file name.")
        if os.path.lexists(target):  # lexists: a dangling symbolic link is an existing output too
            if not overwrite:
                raise UserError(f"The output '{target}' already exists: choose another name or pass --overwrite.")
            if _is_immutable(target):
                raise UserError(f"The output '{target}' is immutable and cannot be replaced: choose another name "
                                "(or clear its attribute with chattr -i).")
        if not target.parent.is_dir():
            raise UserError(f"The output folder '{target.parent}' does not exist: create it first.")
    for folder in dict.fromkeys(t.parent for t in targets):
        if _is_immutable(folder):
            raise UserError(f"The output folder '{folder}' is immutable and cannot be written: choose another folder.")
        probe_folder(folder, room_bytes)
    return targets


@contextlib.contextmanager
def output_folder(folder: os.PathLike | str) -> Iterator[Path]:
    """Create `folder` (and missing parents) for a set of outputs; if the block fails or is cancelled, remove the
    folders created here again (they are empty then: the outputs are written all or none). UserError when the
    folder cannot be created (read-only, no permission, a file in the way)."""
    folder = absolute_path(folder)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"The output '{folder}' is a file, not a folder: give a folder for the outputs.")
    created = []
    probe = folder
    while not os.path.lexists(probe) and probe != probe.parent:
        created.append(probe)
        probe = probe.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"The output folder '{folder}' cannot be created ({_reason(error)}): choose another "
                        "folder or make its parent writable.") from None
    try:
        yield folder
    except BaseException:
        for path in created:  # deepest first
            with contextlib.suppress(OSError):
                path.rmdir()
        raise


def _default_file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


# ----------------------------------------------------------------------------------------------- the commit
_HELD_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGBREAK") if hasattr(signal, name))


@contextlib.contextmanager
def signals_held() -> Iterator[list]:
    """Record SIGINT / SIGTERM instead of acting on them (the commit must not stop half-way); yields the list of
    signals received. Their own handlers are put back at the end. Only the main thread can hold signals; elsewhere
    (no Python signal handlers run there anyway) this does nothing."""
    received: list = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    previous = {}
    try:
        for sig in _HELD_SIGNALS:
            previous[sig] = signal.signal(sig, lambda number, _frame: received.append(number))
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def deliver_signals(received: list) -> None:
    """Act on held signals now, through their own handlers (the CLI's raises `Cancelled`)."""
    for number in dict.fromkeys(received):
        signal.raise_signal(number)


def commit(temporaries: List[Path], targets: List[Path]) -> None:
    """Rename each temporary onto its target, all or none (see the module docstring). Raises UserError when a target
    cannot be replaced; a SIGINT / SIGTERM during the commit undoes it and is then delivered."""
    mode = _default_file_mode()
    for tmp in temporaries:
        os.chmod(tmp, mode)
    backups: list = []  # (target, backup) of targets moved aside
    placed: list = []  # targets now holding a new file
    with signals_held() as received:
        try:
            for target in targets:
                if os.path.lexists(target):
                    backup = _temporary_sibling(target, "backup")
                    os.rename(target, backup)
                    backups.append((target, backup))
            for tmp, target in zip(temporaries, targets):
                os.rename(tmp, target)
                placed.append(target)
            if received:
                raise InterruptedError("cancelled during the commit")
        except BaseException as error:
            _undo(placed, backups)
            if isinstance(error, InterruptedError) and received:
                failure = None
            elif isinstance(error, OSError):
                failure = error
            else:
                raise
        else:
            failure = None
            for _, backup in backups:
                with contextlib.suppress(OSError):
                    os.unlink(backup)
    if received:
        deliver_signals(received)
    if failure is not None:
        name = failure.filename or (targets[0] if targets else "")
        raise UserError(f"The output '{name}' could not be written or replaced ({_reason(failure)}): nothing was "
                        "changed; free some space, make the folder writable or choose other names.") from None


def _undo(placed: list, backups: list) -> None:
    for target in placed:
        with contextlib.suppress(OSError):
            os.unlink(target)
    for target, backup in backups:
        with contextlib.suppress(OSError):
            os.rename(backup, target)


@contextlib.contextmanager
def atomic_outputs(paths: Iterable[os.PathLike | str], overwrite: bool = False, inputs: Iterable = (),
                   room_bytes: int = PROBE_BYTES) -> Iterator[list]:
    """Write several outputs all-or-nothing.

    Checks first (`check_outputs`), then yields temporary paths beside the outputs for the caller to write; on
    normal exit commits them (`commit`), on any exception (Ctrl-C included) removes them. A user's existing file is
    never touched unless `overwrite` is True, and never when it is an input. Every yielded path must be written.
    A disk that fills while the temporaries are written gives a UserError and leaves nothing behind.
    """
    targets = check_outputs(paths, overwrite, inputs, room_bytes)
    temporaries: list = []
    try:
        for target in targets:
            temporaries.append(_temporary_sibling(target))
        try:
            yield temporaries
        except OSError as error:
            if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM):
                raise UserError(f"The outputs could not be written in '{targets[0].parent}' ({_reason(error)}): "
                                "nothing was changed; free some space or choose another folder.") from None
            raise
        except RuntimeError as error:  # SimpleITK reports a failed write (e.g. a full disk) as a RuntimeError
            if "ImageFileWriter" in str(error) or "write" in str(error).lower():
                raise UserError(f"The outputs could not be written in '{targets[0].parent}' (the image writer "
                                "failed; the disk may be full): nothing was changed; free some space or choose "
                                "another folder.") from None
            raise
        missing = [str(target) for tmp, target in zip(temporaries, targets) if not tmp.exists()]
        if missing:
            raise RuntimeError(f"outputs were not written: {', '.join(missing)}")
        # Files read after the first check (e.g. a table named later) must not be replaced either.
        for target in targets:
            source = _same_as_input(target, inputs)
            if source is not None:
                raise UserError(f"The output '{target}' is the same file as the input '{source}' (directly or "
                                "through a link): choose another output name.")
        commit(temporaries, targets)
    finally:
        for tmp in temporaries:
            with contextlib.suppress(FileNotFoundError, OSError):
                os.unlink(tmp)


def write_image(image: sitk.Image, path: os.PathLike | str, overwrite: bool = False, compress: bool = True,
                inputs: Iterable = ()) -> Path:
    """Write one image atomically (never overwriting unless asked); returns the absolute path."""
    with atomic_outputs([path], overwrite, inputs) as (tmp,):
        sitk.WriteImage(image, str(tmp), compress)
    return absolute_path(path)


def write_text(text: str, path: os.PathLike | str, overwrite: bool = False, inputs: Iterable = ()) -> Path:
    """Write a text file atomically (never overwriting unless asked); returns the absolute path."""
    with atomic_outputs([path], overwrite, inputs) as (tmp,):
        Path(tmp).write_text(text, encoding="utf-8")
    return absolute_path(path)

"""Installing a model folder into the cache, safely: fetch a URL with progress, verify a sha256, extract a zip safely,
validate the result as an nnU-Net v2 model folder, move it into place atomically, and clean up on failure.

Knows nothing of the registry or of the cache layout: `models.py` passes the cache folder (`Staging(root)`) and the
target paths. Every install is staged in a hidden `<root>/.staging-*` folder and moved into place with one
`os.replace` of the folder; on any failure the staging folder, and any parent folders created for it, are removed.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import socket
import stat
import tempfile
import uuid
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import List, Optional, Tuple

from RootletSegLogic.errors import UserError
from RootletSegLogic.progress import ProgressCallback, ProgressEvent
from RootletSegLogic.segmentation.model_folder import ModelFolder, load_model_folder

DOWNLOAD_TIMEOUT_S = 60.0  # per connection attempt and per read, not for the whole download
CHUNK_BYTES = 1 << 20


# ------------------------------------------------------------------------------------------- staging (atomicity)


class Staging:
    """A hidden temporary folder in `root` (the cache's models folder); removed, with any parents it created, unless
    committed."""

    def __init__(self, root: Path) -> None:
        self.created: List[Path] = []  # folders created for this attempt, deepest last
        missing = []
        folder = root
        while not folder.exists():
            missing.append(folder)
            if folder.parent == folder:
                break
            folder = folder.parent
        for folder in reversed(missing):
            try:
                folder.mkdir()
            except FileExistsError:
                continue
            except OSError as error:
                self._remove_created()
                raise UserError(f"Cannot create the model cache folder '{folder}' ({error.strerror}): "
                                "set ROOTLETSEG_HOME to a writable folder.") from None
            self.created.append(folder)
        try:
            self.path = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
        except OSError as error:
            self._remove_created()
            raise UserError(f"Cannot write in the model cache '{root}' ({error.strerror}): "
                            "set ROOTLETSEG_HOME to a writable folder.") from None
        self.committed = False

    def _remove_created(self) -> None:
        for folder in reversed(self.created):
            try:
                folder.rmdir()  # only if still empty: another process may have used it meanwhile
            except OSError:
                pass

    def cleanup(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        if not self.committed:
            self._remove_created()

    def __enter__(self) -> "Staging":
        return self

    def __exit__(self, *_exc) -> None:
        self.cleanup()


def move_into_place(source: Path, target: Path, force: bool) -> bool:
    """Atomically put folder `source` at `target`. Returns False (and leaves `target`) when it exists and not force.

    With force, the old folder is renamed aside (a hidden `.old-*` name, never listed as a model) and put back if
    the new one cannot be moved in, on any error and on SIGINT / SIGTERM: those are held during the two renames
    and delivered after them (undoing the swap first), so an interrupted `--force` keeps the model it replaced.
    """
    from RootletSegLogic.images.atomic import deliver_signals, signals_held  # here: SimpleITK is slow to import

    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and not force:
        return False
    aside = None
    moved = False
    with signals_held() as received:
        try:
            if target.exists():
                aside = target.parent / f".old-{target.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
                os.replace(target, aside)
            os.replace(source, target)
            moved = True
            if received:
                raise InterruptedError("cancelled while the model was moved into place")
        except BaseException as error:
            if moved:  # undo: the new folder goes back to the staging area (removed with it)
                os.replace(target, source)
            replaced = aside is not None
            if replaced:
                os.replace(aside, target)
                aside = None
            if isinstance(error, InterruptedError) and received:
                pass  # delivered below, once the cache is as it was
            elif isinstance(error, OSError) and not replaced and not moved and target.exists() and not received:
                return False  # another process installed it meanwhile: keep theirs
            else:
                raise
    if received:
        deliver_signals(received)
        return False
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)
    return True


# ------------------------------------------------------------------------------------------------------- hashing
def normalise_sha256(value: Optional[str], what: str) -> Optional[str]:
    if value is None:
        return None
    value = value.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", value):
        raise UserError(f"The {what} '{value}' is not a sha256 checksum: give 64 hexadecimal digits.")
    return value


# ------------------------------------------------------------------------------------------------------ download


def human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"


def fetch(url: str, destination: Path, label: str, expected_size: Optional[int], progress: ProgressCallback) -> int:
    """Download `url` into `destination`, reporting stage "download" in bytes. Returns the size. UserError on failure."""
    advice = ("check the network connection, or download from a mirror with `rootletseg models download NAME "
              "--url URL`, or import a zip downloaded elsewhere with `rootletseg models import`")
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "rootletseg"})
        response = urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S)
    except urllib.error.HTTPError as error:
        raise UserError(f"Downloading {label} failed: {url} answered HTTP {error.code} {error.reason}: check the "
                        "URL, or download from a mirror with `rootletseg models download NAME --url URL`, or import "
                        "a zip downloaded elsewhere with `rootletseg models import`.") from None
    except urllib.error.URLError as error:
        reason = error.reason
        reason = getattr(reason, "strerror", None) or str(reason)
        raise UserError(f"Cannot download {label} from {url} ({reason}): {advice}.") from None
    except ValueError as error:
        raise UserError(f"Cannot download {label}: '{url}' is not a valid URL ({error}).") from None
    except (socket.timeout, TimeoutError):
        raise UserError(f"Cannot download {label} from {url} (no answer within {DOWNLOAD_TIMEOUT_S:.0f} s): "
                        f"{advice}.") from None
    except OSError as error:
        raise UserError(f"Cannot download {label} from {url} ({error.strerror or error}): {advice}.") from None
    with response:
        length_header = response.headers.get("Content-Length")
        announced = int(length_header) if length_header and length_header.isdigit() else None
        total = announced or expected_size or 0
        done = 0
        progress(ProgressEvent("download", 0, total, f"{label}: {url}"))
        try:
            handle = open(destination, "wb")
        except OSError as error:
            raise UserError(f"Cannot write the download to '{destination.parent}' ({error.strerror}): "
                            "set ROOTLETSEG_HOME to a writable folder.") from None
        with handle:
            while True:
                try:
                    # read1: whatever has arrived (up to a chunk), so progress and Ctrl-C follow the network
                    chunk = response.read1(CHUNK_BYTES) if hasattr(response, "read1") else response.read(CHUNK_BYTES)
                except (socket.timeout, TimeoutError):
                    raise UserError(f"The download of {label} from {url} stalled (no data for "
                                    f"{DOWNLOAD_TIMEOUT_S:.0f} s after {human_bytes(done)}): try again, or "
                                    f"{advice}.") from None
                except (OSError, http.client.HTTPException) as error:
                    raise UserError(f"The download of {label} from {url} was interrupted after "
                                    f"{human_bytes(done)} ({type(error).__name__}): try again, or {advice}.") from None
                if not chunk:
                    break
                try:
                    handle.write(chunk)
                except OSError as error:
                    raise UserError(f"Cannot write the download to '{destination.parent}' ({error.strerror}): "
                                    "free some disk space or set ROOTLETSEG_HOME to another folder.") from None
                done += len(chunk)
                progress(ProgressEvent("download", done, max(total, done), human_bytes(done)))
    if announced is not None and done != announced:
        raise UserError(f"The download of {label} from {url} was cut short ({human_bytes(done)} of "
                        f"{human_bytes(announced)}): try again, or {advice}.")
    if done == 0:
        raise UserError(f"The download of {label} from {url} is empty: check the URL, or {advice}.")
    progress(ProgressEvent("download", done, done, f"{human_bytes(done)}"))
    return done


# ----------------------------------------------------------------------------------------------- safe extraction


def _member_parts(info: zipfile.ZipInfo, zip_label: str) -> Optional[Tuple[str, ...]]:
    """Safe relative path parts of a zip entry; None to skip it (folders, macOS metadata). UserError if unsafe."""
    name = info.filename
    if "\x00" in name:
        raise UserError(f"The zip {zip_label} has an entry with a NUL character in its name: refusing to extract it.")
    unified = name.replace("\\", "/")
    if unified.startswith("/") or re.match(r"^[A-Za-z]:", unified):
        raise UserError(f"The zip {zip_label} has an entry with an absolute path ('{name}'): refusing to extract it.")
    parts = tuple(part for part in PurePosixPath(unified).parts if part not in ("", "."))
    if ".." in parts:
        raise UserError(f"The zip {zip_label} has an entry that escapes its folder ('{name}'): refusing to extract it.")
    mode = info.external_attr >> 16
    if info.create_system == 3 and stat.S_ISLNK(mode):  # made on Unix, a symbolic link
        raise UserError(f"The zip {zip_label} holds a symbolic link ('{name}'): refusing to extract it.")
    if info.create_system == 3 and stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise UserError(f"The zip {zip_label} holds a special file ('{name}'): refusing to extract it.")
    if not parts or parts[0] == "__MACOSX" or info.is_dir():
        return None
    return parts


def extract_zip(zip_path: Path, target: Path, zip_label: str, progress: ProgressCallback) -> None:
    """Extract `zip_path` into the (empty, existing) folder `target`, refusing anything unsafe or corrupt."""
    corrupt = f"The zip {zip_label} is corrupt or truncated"
    try:
        archive = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile:
        raise UserError(f"{corrupt} (it is not a readable zip file): download it again.") from None
    except OSError as error:
        raise UserError(f"Cannot read the zip {zip_label} ({error.strerror or error}).") from None
    with archive:
        infos = archive.infolist()
        plan = []
        for info in infos:
            parts = _member_parts(info, zip_label)
            if parts is not None:
                plan.append((info, parts))
        if not plan:
            raise UserError(f"The zip {zip_label} holds no files: it is not an nnU-Net v2 model.")
        needed = sum(info.file_size for info, _ in plan)
        free = shutil.disk_usage(target).free
        if needed > free:
            raise UserError(f"The zip {zip_label} needs {human_bytes(needed)} once extracted but the model cache "
                            f"has {human_bytes(free)} free: free some space or set ROOTLETSEG_HOME elsewhere.")
        progress(ProgressEvent("extract", 0, len(plan), zip_label))
        for index, (info, parts) in enumerate(plan, 1):
            destination = target.joinpath(*parts)
            if destination.exists():
                raise UserError(f"The zip {zip_label} holds '{info.filename}' twice: it is not a clean model zip.")
            destination.parent.mkdir(parents=True, exist_ok=True)
            try:
                with archive.open(info) as source, open(destination, "wb") as handle:
                    shutil.copyfileobj(source, handle, CHUNK_BYTES)
            except (zipfile.BadZipFile, zlib.error, EOFError, ValueError):
                raise UserError(f"{corrupt} (entry '{info.filename}' cannot be read back): "
                                "download it again.") from None
            except NotImplementedError:
                raise UserError(f"The zip {zip_label} uses a compression method Python cannot read "
                                f"('{info.filename}'): re-create it with standard deflate compression.") from None
            except RuntimeError as error:  # encrypted entries
                raise UserError(f"The zip {zip_label} cannot be extracted ('{info.filename}': {error}): "
                                "give an unencrypted zip.") from None
            progress(ProgressEvent("extract", index, len(plan), info.filename))


def validate(folder: Path, shown_as: str, metadata: Optional[dict] = None) -> ModelFolder:
    """load_model_folder, with the staging path in messages replaced by what the user knows (`shown_as`)."""
    try:
        return load_model_folder(folder, metadata)
    except UserError as error:
        message = str(error).replace(str(folder), shown_as)
        raise UserError(message) from None


# ---------------------------------------------------------------------------------------------------------- copy


def copy_model_folder(model: ModelFolder, destination: Path, progress: ProgressCallback) -> None:
    """Copy what inference needs: the trainer folder's JSON files and each used fold's checkpoint."""
    trainer = destination / model.trainer_dir.name
    trainer.mkdir(parents=True)
    files = [p for p in model.trainer_dir.iterdir() if p.is_file() and p.suffix == ".json"]
    files += list(model.checkpoints.values())
    progress(ProgressEvent("copy", 0, len(files), str(model.trainer_dir)))
    for index, source in enumerate(files, 1):
        relative = source.relative_to(model.trainer_dir)
        (trainer / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, trainer / relative)
        progress(ProgressEvent("copy", index, len(files), str(relative)))

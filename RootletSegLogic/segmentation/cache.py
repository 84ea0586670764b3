"""Model registry, per-user model cache, safe download / import / resolution of nnU-Net v2 rootlet models.

Registry names (and aliases):
- `rootletseg` (`multicon`, `r20250318`): official multi-contrast RootletSeg, C2–T1 dorsal + ventral, labels 2..9.
- `m5` (`r20240730`): earlier T2w dorsal-only model, C2–C8, labels 2..8.
- `demo`: small model trained on synthetic phantoms, embedded in the package (`Resources/Models/demo`); never
  downloaded.

Cache (per user): `$ROOTLETSEG_HOME` if set, else `%LOCALAPPDATA%/rootletseg` on Windows, else
`$XDG_CACHE_HOME/rootletseg`, else `~/.cache/rootletseg`. Layout:

    <cache>/models/<name>/                 registry model, as extracted from its release zip
    <cache>/models/imported/<name>/        `import_model` (a local zip or folder)
    <cache>/models/local/<sha256[:16]>/    a local zip given to `resolve_model`, extracted once
    each holding `rootletseg_model.json`  (name, release, url, sha256 of the zip, size_bytes, date, source, ...)

Every install is staged in a hidden `<cache>/models/.staging-*` folder and moved into place with one `os.replace`
of the folder: on any failure, or Ctrl-C (SIGINT/SIGTERM raise `Cancelled`), the cache is left exactly as it was
(folders created for the attempt are removed again). The download / extraction / staging machinery is in
`model_install.py`; this module holds the registry, the cache locations and the operations built on them.

Model checkpoints are Python pickles; they are loaded weights-only (`predictor.load_checkpoint`). Registry models
downloaded from the registry URL (or whose zip has the registry's sha256) and embedded models are `trusted`; a model
downloaded from a mirror without the registry's checksum is recorded as unverified (`"verified": false`, source
"mirror") and, like any other model, makes `resolve_model` call its `warn` callback once.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import re
import urllib.parse
from pathlib import Path, PurePosixPath
from typing import Callable, Dict, List, Optional, Tuple, Union

from RootletSegLogic.errors import UserError
from RootletSegLogic.levels.types import SPINAL_LEVEL_NAMES
from RootletSegLogic.progress import ProgressCallback, no_progress
from RootletSegLogic.segmentation.install import (
    CHUNK_BYTES,
    Staging,
    copy_model_folder,
    extract_zip,
    fetch,
    move_into_place,
    normalise_sha256,
    validate,
)
from RootletSegLogic.segmentation.model_folder import ModelFolder, load_model_folder
from RootletSegLogic.segmentation.registry import (
    RECORD_NAME,
    REGISTRY,
    TRUST_WARNING,
    ModelSpec,
    imported_root,
    installed_path,
    local_root,
    lookup,
    models_root,
    spec_or_error,
    unknown_name_error,
)

Warn = Callable[[str], None]
_log = logging.getLogger("rootletseg")


# -------------------------------------------------------------------------------- weights hash / install records


_weights_hash_cache: Dict[tuple, str] = {}


def weights_sha256(model: ModelFolder) -> str:
    """sha256 over a model folder's checkpoint files (fold key, file name, then the bytes, in ensemble order).

    Identifies the weights of a folder that did not come from a zip. Cached per process by path/size/mtime.
    """
    key = tuple(
        (str(path), path.stat().st_size, path.stat().st_mtime_ns) for path in model.checkpoints.values()
    )
    if key not in _weights_hash_cache:
        digest = hashlib.sha256()
        for fold, path in model.checkpoints.items():
            digest.update(f"{fold}:{path.name}\n".encode())
            with open(path, "rb") as handle:
                for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
                    digest.update(chunk)
        _weights_hash_cache[key] = digest.hexdigest()
    return _weights_hash_cache[key]


def _write_record(folder: Path, record: dict) -> None:
    (folder / RECORD_NAME).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _read_record(folder: Path) -> Optional[dict]:
    try:
        record = json.loads((folder / RECORD_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


# ------------------------------------------------------------------------------------------------------ download


def _resolve_warn(warn: Optional[Warn], progress: Optional[ProgressCallback]) -> Warn:
    if warn is not None:
        return warn
    reporter_warning = getattr(progress, "warning", None)
    if callable(reporter_warning):
        return reporter_warning
    return _log.warning


def download_model(
    name: str,
    url: Optional[str] = None,
    sha256: Optional[str] = None,
    force: bool = False,
    progress: Optional[ProgressCallback] = None,
    warn: Optional[Warn] = None,
) -> ModelFolder:
    """Download registry model `name` (or alias) into the cache and return it, validated.

    `url` replaces the registry URL (a mirror); `sha256` is the expected checksum of the zip when the registry has
    none. Already installed and not `force`: returns the installed copy without any network access. Progress:
    stage "download" (bytes), then "extract" (files). With no known checksum, `warn` (else `progress.warning`) gets
    the sha256 of what was downloaded. Any failure (UserError) or Ctrl-C leaves the cache exactly as before.
    """
    progress = progress or no_progress
    warn = _resolve_warn(warn, progress)
    spec = spec_or_error(name)
    if spec.embedded:
        raise UserError(f"The '{spec.name}' model is embedded in RootletSeg and is never downloaded: "
                        f"use it as '{spec.name}'.")
    given = normalise_sha256(sha256, "checksum given")
    if spec.sha256 and given and given != spec.sha256.lower():
        raise UserError(f"The checksum given ({given}) differs from the published checksum of '{spec.name}' "
                        f"({spec.sha256}): leave --sha256 out or correct it.")
    expected = given or (spec.sha256.lower() if spec.sha256 else None)
    target = installed_path(spec.name)
    if not force and (target / RECORD_NAME).is_file():
        return _load_installed(spec, warn)
    source_url = url or spec.url
    label = f"model '{spec.name}'"
    with Staging(models_root()) as staging:
        zip_path = staging.path / "download.zip"
        size = fetch(source_url, zip_path, label, spec.size_bytes, progress)
        from RootletSegLogic.images.files import (
            file_sha256,  # here, not at the top: SimpleITK adds 0.2 s to `models list`
        )
        actual = file_sha256(zip_path)
        if expected and actual != expected:
            raise UserError(f"The file downloaded for {label} from {source_url} has sha256 {actual}, not the "
                            f"expected {expected}: it is corrupt or not the published model; nothing was installed.")
        extracted = staging.path / "model"
        extracted.mkdir()
        shown = PurePosixPath(urllib.parse.urlparse(source_url).path).name or "model.zip"
        extract_zip(zip_path, extracted, f"'{shown}' downloaded for {label}", progress)
        validate(extracted, shown)
        record = {
            "name": spec.name,
            "title": spec.title,
            "release": spec.release,
            "url": source_url,
            "registry_url": spec.url,
            "sha256": actual,
            "weights_sha256": actual,
            "sha256_verified": bool(expected),
            # Trusted as the published release only when fetched from the registry URL or, from a mirror, when
            # the zip has the registry's own sha256 (a checksum the user gives only proves what they chose).
            "verified": _is_verified_release(spec, source_url, actual),
            "size_bytes": size,
            "date": _now(),
            "source": "registry",
        }
        _write_record(extracted, record)
        # Without force, a folder lacking its record (damaged) is replaced; one installed by another process
        # meanwhile (record present) is kept and ours dropped.
        move_into_place(extracted, target, force or not (target / RECORD_NAME).is_file())
        staging.committed = True
    if not expected:
        warn(f"Model '{spec.name}' has no published checksum; sha256 of what was downloaded: {actual} "
             f"({size} bytes), recorded in {target / RECORD_NAME}.")
    return _load_installed(spec, warn)


def _metadata(
    name: str, title: str, release: Optional[str], url: Optional[str], weights_hash: Optional[str],
    source: str, labels: Dict[int, str], trusted: bool, **extra,
) -> dict:
    meta = {
        "name": name, "title": title, "release": release, "url": url, "weights_sha256": weights_hash,
        "source": source, "labels": dict(labels), "trusted": trusted,
    }
    meta.update(extra)
    return meta


def _labels_from_dataset(model: ModelFolder) -> Dict[int, str]:
    """dataset.json labels as {value: level name}: values 2..9 get C2..T1, others keep the dataset's name."""
    labels = {}
    for label_name, value in model.labels.items():
        if isinstance(value, (list, tuple)):  # region-based labels: not a plain value
            continue
        try:
            value = int(value)
        except (TypeError, ValueError):
            continue
        if value != 0:
            labels[value] = SPINAL_LEVEL_NAMES.get(value, str(label_name))
    return dict(sorted(labels.items()))


def _is_verified_release(spec: ModelSpec, url: Optional[str], sha256: Optional[str]) -> bool:
    if spec.sha256:
        return bool(sha256) and sha256.lower() == spec.sha256.lower()
    return url is None or url == spec.url


def _record_verified(spec: ModelSpec, record: dict) -> bool:
    """A record's `verified`, computed for records written before it existed (URL / sha256 against the registry)."""
    if "verified" in record:
        return bool(record["verified"])
    return _is_verified_release(spec, record.get("url"), record.get("sha256"))


def _load_installed(spec: ModelSpec, warn: Optional[Warn] = None) -> ModelFolder:
    folder = installed_path(spec.name)
    record = _read_record(folder) or {}
    if spec.sha256 and record.get("sha256") and record["sha256"] != spec.sha256.lower():
        raise UserError(f"The installed model '{spec.name}' (sha256 {record['sha256']}) is not the published "
                        f"release (sha256 {spec.sha256}): run `rootletseg models download {spec.name} --force`.")
    try:
        model = load_model_folder(folder)
    except UserError as error:
        raise UserError(f"The installed model '{spec.name}' in '{folder}' is damaged ({str(error).rstrip('.')}): "
                        f"run `rootletseg models download {spec.name} --force`.") from None
    verified = _record_verified(spec, record)
    model.metadata = _metadata(
        spec.name, spec.title, spec.release, record.get("url", spec.url), record.get("sha256"),
        "registry" if verified else "mirror", spec.labels, verified, path=str(folder), installed=record.get("date"),
    )
    if not verified and warn is not None:
        warn(TRUST_WARNING.format(what=f"Model '{spec.name}' (downloaded from {record.get('url')}, not checked "
                                       "against the registry's checksum)"))
    return model


def _load_embedded(spec: ModelSpec) -> ModelFolder:
    folder = spec.embedded_path
    if not folder.is_dir():
        raise UserError(f"The {spec.name} model is not present in this installation (expected at '{folder}'): "
                        "reinstall RootletSeg, or train it with scripts/train_demo_model.py.")
    model = load_model_folder(folder)
    model.metadata = _metadata(
        spec.name, spec.title, spec.release, None, weights_sha256(model), "embedded", spec.labels, True,
        path=str(folder),
    )
    return model


# -------------------------------------------------------------------------------------------------------- import


def _safe_name(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip(".-")
    return name[:80] or "model"


def _default_import_name(path: Path) -> str:
    base = path.name[:-4] if path.name.lower().endswith(".zip") else path.name
    return _safe_name(base)


def import_model(
    zip_or_dir: Union[str, Path],
    name: Optional[str] = None,
    force: bool = False,
    progress: Optional[ProgressCallback] = None,
) -> ModelFolder:
    """Install a local model zip or folder into `<cache>/models/imported/<name>` (name defaults from the file name).

    A zip is extracted safely (as for downloads); a folder is validated and its JSON files and checkpoints copied.
    The model is then usable by `name` in `resolve_model`. It is not trusted (see TRUST_WARNING).
    """
    progress = progress or no_progress
    source = Path(zip_or_dir).expanduser()
    if not source.exists():
        raise UserError(f"'{source}' does not exist: give a model zip or an nnU-Net v2 model folder.")
    name = _safe_name(name) if name else _default_import_name(source)
    if lookup(name) is not None:
        raise UserError(f"'{name}' is a registry model name: choose another name with --name.")
    target = imported_root() / name
    if target.exists() and not force:
        raise UserError(f"A model named '{name}' is already imported ('{target}'): use --force to replace it, "
                        "or --name to choose another name.")
    with Staging(models_root()) as staging:
        content = staging.path / "model"
        content.mkdir()
        if source.is_dir():
            model = load_model_folder(source)
            copy_model_folder(model, content, progress)
            zip_hash, size = None, None
            weights_hash = weights_sha256(load_model_folder(content))
        else:
            label = f"'{source.name}'"
            from RootletSegLogic.images.files import (
                file_sha256,  # here, not at the top: SimpleITK adds 0.2 s to `models list`
            )
            zip_hash, size = file_sha256(source), source.stat().st_size
            extract_zip(source, content, label, progress)
            validate(content, source.name)
            weights_hash = zip_hash
        _write_record(content, {
            "name": name, "title": name, "release": None, "url": None, "sha256": zip_hash,
            "weights_sha256": weights_hash, "size_bytes": size, "date": _now(), "source": "import",
            "origin": str(source.resolve()),
        })
        if not move_into_place(content, target, force):
            raise UserError(f"A model named '{name}' was imported by another process meanwhile: use --force to "
                            "replace it.")
        staging.committed = True
    return _load_imported(name, warn=None)


def _load_imported(name: str, warn: Optional[Warn]) -> ModelFolder:
    folder = imported_root() / name
    record = _read_record(folder) or {}
    model = load_model_folder(folder)
    model.metadata = _metadata(
        name, record.get("title") or name, record.get("release"), record.get("url"),
        record.get("weights_sha256") or weights_sha256(model), "local", _labels_from_dataset(model), False,
        path=str(folder), origin=record.get("origin"),
    )
    if warn is not None:
        warn(TRUST_WARNING.format(what=f"Model '{name}' (imported from {record.get('origin', folder)})"))
    return model


def imported_names() -> List[str]:
    root = imported_root()
    if not root.is_dir():
        return []
    # hidden names are staging or set-aside folders of an install in progress (or killed), never models
    return sorted(p.name for p in root.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and (p / RECORD_NAME).is_file())


# ------------------------------------------------------------------------------------------------------- resolve


def _load_local_zip(path: Path, progress: ProgressCallback) -> Tuple[ModelFolder, str]:
    from RootletSegLogic.images.files import (
        file_sha256,  # here, not at the top: SimpleITK adds 0.2 s to `models list`
    )
    zip_hash = file_sha256(path)
    target = local_root() / zip_hash[:16]
    if not (target / RECORD_NAME).is_file():
        with Staging(models_root()) as staging:
            content = staging.path / "model"
            content.mkdir()
            extract_zip(path, content, f"'{path.name}'", progress)
            validate(content, path.name)
            _write_record(content, {
                "name": _default_import_name(path), "release": None, "url": None, "sha256": zip_hash,
                "weights_sha256": zip_hash, "size_bytes": path.stat().st_size, "date": _now(), "source": "local",
                "origin": str(path.resolve()),
            })
            move_into_place(content, target, force=False)  # False: another process extracted it meanwhile
            staging.committed = True
    return load_model_folder(target), zip_hash


def resolve_model(
    name_or_path: Union[str, Path],
    progress: Optional[ProgressCallback] = None,
    download: bool = True,
    warn: Optional[Warn] = None,
) -> ModelFolder:
    """The model to run, validated, with `metadata` filled in.

    Order: a registry name or alias (installed copy, downloaded when missing and `download`; `demo` is the embedded
    folder), an imported model name, else an existing folder or zip path (a zip is extracted once into the cache,
    keyed by its sha256). Paths containing a separator or ending in .zip are always taken as paths.
    Local and imported models are not trusted: `warn` (else `progress.warning`, else the log) gets TRUST_WARNING.
    """
    progress = progress or no_progress
    warn = _resolve_warn(warn, progress)
    text = os.fspath(name_or_path) if isinstance(name_or_path, os.PathLike) else str(name_or_path)
    looks_like_path = isinstance(name_or_path, os.PathLike) or "/" in text or os.sep in text or text.lower().endswith(".zip")
    if not looks_like_path:
        spec = lookup(text)
        if spec is not None:
            if spec.embedded:
                return _load_embedded(spec)
            if (installed_path(spec.name) / RECORD_NAME).is_file():
                return _load_installed(spec, warn)
            if not download:
                raise UserError(f"The model '{spec.name}' is not installed: run `rootletseg models download "
                                f"{spec.name}` (or allow downloads).")
            return download_model(spec.name, progress=progress, warn=warn)
        if text in imported_names():
            return _load_imported(text, warn)
    path = Path(text).expanduser()
    if not path.exists():
        if looks_like_path:
            raise UserError(f"The model path '{path}' does not exist: give an nnU-Net v2 model folder or zip.")
        raise unknown_name_error(text)
    if path.is_dir():
        model = load_model_folder(path)
        weights_hash = weights_sha256(model)
        display = path.resolve().name
    else:
        model, weights_hash = _load_local_zip(path, progress)
        display = _default_import_name(path)
    model.metadata = _metadata(
        display, display, None, None, weights_hash, "local", _labels_from_dataset(model), False,
        path=str(model.trainer_dir), origin=str(path.resolve()),
    )
    warn(TRUST_WARNING.format(what=f"The model '{path}'"))
    return model


# ------------------------------------------------------------------------------------------------ listing / info


def _registry_state(spec: ModelSpec) -> Tuple[str, Optional[Path], Optional[dict]]:
    """('embedded' | 'missing' | 'yes' | 'no', path, record)."""
    if spec.embedded:
        present = spec.embedded_path.is_dir()
        return ("embedded" if present else "missing"), spec.embedded_path, None
    folder = installed_path(spec.name)
    record = _read_record(folder)
    return ("yes" if record is not None else "no"), folder, record


def list_models() -> List[dict]:
    """Registry models then imported ones: name, aliases, title, release, labels, installed, path, url, sha256..."""
    rows = []
    for spec in REGISTRY.values():
        state, folder, record = _registry_state(spec)
        rows.append({
            "name": spec.name, "aliases": list(spec.aliases), "title": spec.title, "release": spec.release,
            "labels": spec.labels_summary, "installed": state in ("yes", "embedded"), "state": state,
            "path": str(folder) if state in ("yes", "embedded") else None, "url": spec.url,
            "sha256": (record or {}).get("sha256") or spec.sha256, "size_bytes": (record or {}).get("size_bytes")
            or spec.size_bytes, "source": "embedded" if spec.embedded else ("registry" if record is None
            or _record_verified(spec, record) else "mirror"),
            "trusted": record is None or _record_verified(spec, record),
        })
    for name in imported_names():
        folder = imported_root() / name
        record = _read_record(folder) or {}
        rows.append({
            "name": name, "aliases": [], "title": record.get("title") or name, "release": record.get("release"),
            "labels": "", "installed": True, "state": "imported", "path": str(folder), "url": record.get("origin"),
            "sha256": record.get("sha256"), "size_bytes": record.get("size_bytes"), "source": "local",
            "trusted": False,
        })
    return rows


def model_info(name: str) -> dict:
    """Everything known about a registry or imported model; adds folds/trainer/labels when it is available."""
    spec = lookup(name)
    if spec is not None:
        state, folder, record = _registry_state(spec)
        info = {
            "name": spec.name, "aliases": list(spec.aliases), "title": spec.title, "release": spec.release,
            "url": spec.url, "published_sha256": spec.sha256, "size_bytes": spec.size_bytes,
            "labels": {str(k): v for k, v in spec.labels.items()}, "contrasts": list(spec.contrasts),
            "description": spec.description,
            "source": "embedded" if spec.embedded else ("registry" if record is None
                                                          or _record_verified(spec, record) else "mirror"),
            "trusted": record is None or _record_verified(spec, record), "installed": state in ("yes", "embedded"), "state": state, "path": str(folder),
            "record": record,
        }
        loader = (lambda: _load_embedded(spec)) if spec.embedded else (lambda: _load_installed(spec))
    elif name in imported_names():
        folder = imported_root() / name
        info = {"name": name, "source": "local", "trusted": False, "installed": True, "state": "imported",
                "path": str(folder), "record": _read_record(folder)}
        loader = lambda: _load_imported(name, warn=None)  # noqa: E731
    else:
        raise unknown_name_error(name)
    if info["installed"]:
        try:
            model = loader()
        except UserError as error:
            info["problem"] = str(error)
        else:
            info.update({
                "trainer": model.trainer_name, "trainer_dir": str(model.trainer_dir),
                "folds": [str(f) for f in model.folds], "dataset_labels": model.labels,
                "weights_sha256": model.metadata.get("weights_sha256"),
            })
            if spec is None:
                info["labels"] = {str(k): v for k, v in model.metadata["labels"].items()}
    return info

"""The models already in the per-user cache (and the embedded ones), read back: install records, model metadata,
whether a registry model is the verified release, and loading a registry, embedded or imported model.

`segmentation/cache_install.py` writes what this module reads; `segmentation/cache.py` resolves a name or path to a
model and lists them. Cache layout and trust: see `segmentation/cache.py`.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import re
from pathlib import Path
from typing import Callable, Dict, List, Optional

from RootletSegLogic.errors import UserError
from RootletSegLogic.levels.types import SPINAL_LEVEL_NAMES
from RootletSegLogic.progress import ProgressCallback
from RootletSegLogic.segmentation.install import CHUNK_BYTES
from RootletSegLogic.segmentation.model_folder import ModelFolder, load_model_folder
from RootletSegLogic.segmentation.registry import (
    RECORD_NAME,
    TRUST_WARNING,
    ModelSpec,
    imported_root,
    installed_path,
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


def write_record(folder: Path, record: dict) -> None:
    (folder / RECORD_NAME).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def read_record(folder: Path) -> Optional[dict]:
    try:
        record = json.loads((folder / RECORD_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def utc_now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def resolve_warn(warn: Optional[Warn], progress: Optional[ProgressCallback]) -> Warn:
    """Where trust and checksum warnings go: `warn`, else the progress reporter's `warning`, else the log."""
    if warn is not None:
        return warn
    reporter_warning = getattr(progress, "warning", None)
    if callable(reporter_warning):
        return reporter_warning
    return _log.warning


def model_metadata(
    name: str, title: str, release: Optional[str], url: Optional[str], weights_hash: Optional[str],
    source: str, labels: Dict[int, str], trusted: bool, **extra,
) -> dict:
    meta = {
        "name": name, "title": title, "release": release, "url": url, "weights_sha256": weights_hash,
        "source": source, "labels": dict(labels), "trusted": trusted,
    }
    meta.update(extra)
    return meta


def labels_from_dataset(model: ModelFolder) -> Dict[int, str]:
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


def is_verified_release(spec: ModelSpec, url: Optional[str], sha256: Optional[str]) -> bool:
    if spec.sha256:
        return bool(sha256) and sha256.lower() == spec.sha256.lower()
    return url is None or url == spec.url


def record_verified(spec: ModelSpec, record: dict) -> bool:
    """A record's `verified`, computed for records written before it existed (URL / sha256 against the registry)."""
    if "verified" in record:
        return bool(record["verified"])
    return is_verified_release(spec, record.get("url"), record.get("sha256"))


def load_installed(spec: ModelSpec, warn: Optional[Warn] = None) -> ModelFolder:
    folder = installed_path(spec.name)
    record = read_record(folder) or {}
    if spec.sha256 and record.get("sha256") and record["sha256"] != spec.sha256.lower():
        raise UserError(f"The installed model '{spec.name}' (sha256 {record['sha256']}) is not the published "
                        f"release (sha256 {spec.sha256}): run `rootletseg models download {spec.name} --force`.")
    try:
        model = load_model_folder(folder)
    except UserError as error:
        raise UserError(f"The installed model '{spec.name}' in '{folder}' is damaged ({str(error).rstrip('.')}): "
                        f"run `rootletseg models download {spec.name} --force`.") from None
    verified = record_verified(spec, record)
    model.metadata = model_metadata(
        spec.name, spec.title, spec.release, record.get("url", spec.url), record.get("sha256"),
        "registry" if verified else "mirror", spec.labels, verified, path=str(folder), installed=record.get("date"),
    )
    if not verified and warn is not None:
        warn(TRUST_WARNING.format(what=f"Model '{spec.name}' (downloaded from {record.get('url')}, not checked "
                                       "against the registry's checksum)"))
    return model


def load_embedded(spec: ModelSpec) -> ModelFolder:
    folder = spec.embedded_path
    if not folder.is_dir():
        raise UserError(f"The {spec.name} model is not present in this installation (expected at '{folder}'): "
                        "reinstall RootletSeg, or train it with scripts/train_demo_model.py.")
    model = load_model_folder(folder)
    model.metadata = model_metadata(
        spec.name, spec.title, spec.release, None, weights_sha256(model), "embedded", spec.labels, True,
        path=str(folder),
    )
    return model


def safe_name(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip(".-")
    return name[:80] or "model"


def default_import_name(path: Path) -> str:
    base = path.name[:-4] if path.name.lower().endswith(".zip") else path.name
    return safe_name(base)



def load_imported(name: str, warn: Optional[Warn]) -> ModelFolder:
    folder = imported_root() / name
    record = read_record(folder) or {}
    model = load_model_folder(folder)
    model.metadata = model_metadata(
        name, record.get("title") or name, record.get("release"), record.get("url"),
        record.get("weights_sha256") or weights_sha256(model), "local", labels_from_dataset(model), False,
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

"""Which nnU-Net v2 rootlet model to run: resolve a registry name, imported name or path; list the models.

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
`install.py`, the registry and the cache locations in `registry.py`. This module resolves a name or path to a model
(`resolve_model`) and lists the models (`list_models`, `model_info`); adding a model to the cache (`download_model`,
`import_model`) is `cache_install.py`, reading installed models back (records, metadata, trust) `cached_models.py`.

Model checkpoints are Python pickles; they are loaded weights-only (`checkpoints.load_checkpoint`). Registry models
downloaded from the registry URL (or whose zip has the registry's sha256) and embedded models are `trusted`; a model
downloaded from a mirror without the registry's checksum is recorded as unverified (`"verified": false`, source
"mirror") and, like any other model, makes `resolve_model` call its `warn` callback once.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional, Tuple, Union

from RootletSegLogic.errors import UserError
from RootletSegLogic.progress import ProgressCallback, no_progress
from RootletSegLogic.segmentation.cache_install import download_model, load_local_zip
from RootletSegLogic.segmentation.cached_models import (
    Warn,
    default_import_name,
    imported_names,
    labels_from_dataset,
    load_embedded,
    load_imported,
    load_installed,
    model_metadata,
    read_record,
    record_verified,
    resolve_warn,
    weights_sha256,
)
from RootletSegLogic.segmentation.model_folder import ModelFolder, load_model_folder
from RootletSegLogic.segmentation.registry import (
    RECORD_NAME,
    REGISTRY,
    TRUST_WARNING,
    ModelSpec,
    imported_root,
    installed_path,
    lookup,
    unknown_name_error,
)

# ------------------------------------------------------------------------------------------------------- resolve


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
    warn = resolve_warn(warn, progress)
    text = os.fspath(name_or_path) if isinstance(name_or_path, os.PathLike) else str(name_or_path)
    looks_like_path = isinstance(name_or_path, os.PathLike) or "/" in text or os.sep in text or text.lower().endswith(".zip")
    if not looks_like_path:
        spec = lookup(text)
        if spec is not None:
            if spec.embedded:
                return load_embedded(spec)
            if (installed_path(spec.name) / RECORD_NAME).is_file():
                return load_installed(spec, warn)
            if not download:
                raise UserError(f"The model '{spec.name}' is not installed: run `rootletseg models download "
                                f"{spec.name}` (or allow downloads).")
            return download_model(spec.name, progress=progress, warn=warn)
        if text in imported_names():
            return load_imported(text, warn)
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
        model, weights_hash = load_local_zip(path, progress)
        display = default_import_name(path)
    model.metadata = model_metadata(
        display, display, None, None, weights_hash, "local", labels_from_dataset(model), False,
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
    record = read_record(folder)
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
            or record_verified(spec, record) else "mirror"),
            "trusted": record is None or record_verified(spec, record),
        })
    for name in imported_names():
        folder = imported_root() / name
        record = read_record(folder) or {}
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
                                                          or record_verified(spec, record) else "mirror"),
            "trusted": record is None or record_verified(spec, record), "installed": state in ("yes", "embedded"), "state": state, "path": str(folder),
            "record": record,
        }
        loader = (lambda: load_embedded(spec)) if spec.embedded else (lambda: load_installed(spec))
    elif name in imported_names():
        folder = imported_root() / name
        info = {"name": name, "source": "local", "trusted": False, "installed": True, "state": "imported",
                "path": str(folder), "record": read_record(folder)}
        loader = lambda: load_imported(name, warn=None)  # noqa: E731
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

"""One provenance shape for every output: the model record and the input-file records.

The segmentation sidecar (`segmentation.sidecar.build_sidecar`) and the level outputs' planning JSON
(`levels.files`) both describe the model with `model_record` and their input files with `FileRecords`, so a
`model` entry is the same dict whether it came from `segment`, `segment --cord ...`, `demo` or Slicer.

A file record is {"path": absolute path, "sha256": hex digest of its bytes}. Each file is hashed once per
command (`FileRecords` remembers digests). A file this command writes itself is never read back to hash it: its
record is {"path": ..., "written_by": "this command"}, and the sidecar says how it was made.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Dict, Iterable, Optional, Tuple, Union

from RootletSegLogic import __version__
from RootletSegLogic.errors import UserError
from RootletSegLogic.images.files import absolute_path, file_sha256

if TYPE_CHECKING:  # only for annotations: provenance needs no model loading
    from RootletSegLogic.segmentation.model_folder import ModelFolder

PathLike = Union[str, os.PathLike]
SOFTWARE = "rootletseg"


def model_record(model: "ModelFolder", records: Optional["FileRecords"] = None) -> dict:
    """What identifies a model: registry name, title, release, url, weights sha256, source, trust, and its folder,
    trainer, configuration, folds, checkpoints (file relative to the trainer folder + sha256) and labels.

    `weights_sha256` is the registry's (the release zip's) when known, else None; each checkpoint's own sha256 is
    always recorded. `records` shares checkpoint digests with other records of the same command."""
    records = records or FileRecords()
    meta = dict(model.metadata)
    checkpoints = {
        str(fold): {"file": str(Path(path).relative_to(model.trainer_dir)), "sha256": records.sha256(path)}
        for fold, path in model.checkpoints.items()
    }
    return {
        "name": meta.get("name"),
        "title": meta.get("title"),
        "release": meta.get("release"),
        "url": meta.get("url"),
        "weights_sha256": meta.get("weights_sha256"),
        "source": meta.get("source"),
        "trusted": meta.get("trusted"),
        "folder": str(model.trainer_dir),
        "trainer": model.trainer_name,
        "configuration": model.configuration,
        "folds": [str(f) for f in model.folds],
        "checkpoints": checkpoints,
        "labels": model.labels,
    }


class FileRecords:
    """{"path", "sha256"} records of input files, each file hashed at most once (by absolute path).

    Files this command wrote are registered with `mark_written` and then get {"path", "written_by"} instead of a
    digest, so they are never opened for reading."""

    def __init__(self) -> None:
        self._digests: Dict[Path, str] = {}
        self._written: set = set()

    def know(self, digests: Dict[Path, str]) -> None:
        """Take digests computed elsewhere (absolute path -> sha256), e.g. `Segmenter.checkpoint_sha256`."""
        for path, digest in digests.items():
            self._digests.setdefault(absolute_path(path), digest)

    def sha256(self, path: PathLike) -> str:
        key = absolute_path(path)
        if key not in self._digests:
            self._digests[key] = file_sha256(key)
        return self._digests[key]

    def mark_written(self, path: PathLike) -> None:
        self._written.add(absolute_path(path))

    def record(self, path: PathLike) -> dict:
        key = absolute_path(path)
        if key in self._written:
            return {"path": str(key), "written_by": "this command"}
        return {"path": str(key), "sha256": self.sha256(key)}

    def records(self, named: Iterable[Tuple[str, PathLike]]) -> Dict[str, dict]:
        return {name: self.record(path) for name, path in named}


def level_provenance(inputs: Dict[str, dict], method: str, model: Optional[dict] = None) -> dict:
    """The `provenance` of level outputs: input-file records, method, software and version, and the model record
    of the segmentation when it is known (`model_record`, or `model_record_from_sidecar`)."""
    record = {"inputs": inputs, "method": method, "software": SOFTWARE, "software_version": __version__}
    if model is not None:
        record["model"] = model
    return record


def read_sidecar(path: PathLike) -> dict:
    """A segmentation sidecar (`<stem>_rootlets.json`) as a dict; UserError (one sentence) when it is missing or
    not a RootletSeg sidecar."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as handle:
            sidecar = json.load(handle)
    except FileNotFoundError:
        raise UserError(f"The segmentation sidecar '{path}' does not exist: segment again or give its path.") from None
    except (OSError, ValueError):
        raise UserError(f"The segmentation sidecar '{path}' could not be read as JSON: it is damaged.") from None
    if not isinstance(sidecar, dict) or not isinstance(sidecar.get("model"), dict):
        raise UserError(f"The file '{path}' is not a RootletSeg segmentation sidecar (no model record).")
    return sidecar


def model_record_from_sidecar(path: PathLike) -> dict:
    """The model record (`model_record`'s shape) stored in a segmentation sidecar, for outputs made later from
    that segmentation (e.g. level exports in Slicer). UserError when the file is missing or not a sidecar."""
    return read_sidecar(path)["model"]

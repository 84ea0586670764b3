"""What a batch remembers: per-subject resume records, the status table and the dataset description.

Resume record: `<out>/<image folder>/<stem>_rootletseg-batch.json`, written LAST inside the subject's one
all-or-nothing output set. It holds the sha256 of every input file (image, cord, discs, PMJ), the model's identity
(name, release, configuration, folds, checkpoint sha256s; not the cache folder, which differs between machines)
and the settings that change results (levels method, distance mode, landmark model), the outputs (relative to the
record's folder) and the subject's summary for the report. A subject is skipped when its record exists, every
input hashes to the recorded sha256, model and settings are equal and every output listed exists.

Status table `<out>/rootletseg_status.tsv`: one row per image (STATUS_COLUMNS); status is done, skipped, failed
(with its one-sentence reason) or not-run (the batch was stopped before it ran).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

from RootletSegLogic import __version__
from RootletSegLogic.images.atomic import atomic_outputs
from RootletSegLogic.images.files import file_sha256

RECORD_SUFFIX = "_rootletseg-batch.json"
STATUS_FILE = "rootletseg_status.tsv"
DESCRIPTION_FILE = "dataset_description.json"
STATUS_COLUMNS = ("participant_id", "session_id", "image", "suffix", "status", "reason", "seconds", "flags",
                  "outputs_folder")
PAPER_DOI = "10.1038/s41598-026-49164-0"


@dataclass(frozen=True)
class Settings:
    """Everything but the inputs and the model that changes a subject's results (part of the resume key)."""

    method: str = "paper"  # paper | gapless | gapless-caudal
    landmark_model: str = "totalspineseg"  # for a cord or discs the derivatives lack
    distance: str = "pmj"  # pmj | sct (levels.method.compute_levels)

    def as_dict(self) -> dict:
        """The settings as recorded. The default distance is left out: records written before the distance mode
        existed hold none and measured from the PMJ, so they still match (no rerun of a finished dataset), while
        "sct" is in the key and never matches them."""
        settings = asdict(self)
        if settings["distance"] == "pmj":
            del settings["distance"]
        return settings


def model_identity(record: dict) -> dict:
    """The parts of a model record (`provenance.model_record`) that identify the weights, not where they lie."""
    checkpoints = {fold: entry.get("sha256") for fold, entry in (record.get("checkpoints") or {}).items()}
    return {key: record.get(key) for key in ("name", "release", "weights_sha256", "configuration", "folds")} | {
        "checkpoints": checkpoints}


def record_path(out_root: Path, folder: str, stem: str) -> Path:
    return Path(out_root) / folder / f"{stem}{RECORD_SUFFIX}"


def input_hashes(paths: Dict[str, Optional[str]]) -> Dict[str, Optional[str]]:
    """{role: sha256 or None} for the image and landmark files (None where a role has no file)."""
    return {role: (file_sha256(path) if path else None) for role, path in paths.items()}


def read_record(path: Path) -> Optional[dict]:
    """The record as a dict, or None when it is missing or not readable JSON (then the subject runs again)."""
    try:
        with open(path, encoding="utf-8") as handle:
            record = json.load(handle)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def record_matches(record: Optional[dict], hashes: dict, model: dict, settings: Settings, folder: Path) -> bool:
    """True when a previous run's record shows the same inputs, model and settings and its outputs all exist."""
    if record is None or record.get("status") != "done":
        return False
    if record.get("input_sha256") != hashes or record.get("model") != model:
        return False
    if record.get("settings") != settings.as_dict():
        return False
    outputs = record.get("outputs") or {}
    return bool(outputs) and all((folder / name).is_file() for name in outputs.values())


@dataclass
class Outcome:
    """What happened to one image. `summary` (levels, flags, warnings) feeds the report and the group stats."""

    relative: str
    status: str  # done | skipped | failed | not-run
    reason: str = ""
    seconds: float = 0.0
    outputs: Dict[str, str] = field(default_factory=dict)  # name -> file name inside the subject's output folder
    summary: dict = field(default_factory=dict)
    worker: str = ""
    network_loads: Dict[str, int] = field(default_factory=dict)  # networks this image built ({} when not run)


def status_tsv(images, outcomes: Dict[str, Outcome]) -> str:
    """The status table text (STATUS_COLUMNS), one row per image in discovery order."""
    def cell(value) -> str:
        return " ".join(str(value).split())  # one line, no tab: the reason is a sentence

    lines = ["\t".join(STATUS_COLUMNS)]
    for image in images:
        outcome = outcomes.get(image.relative) or Outcome(image.relative, "not-run", "the batch stopped first")
        flags = ";".join(flag["code"] for flag in outcome.summary.get("flags", []))
        lines.append("\t".join(cell(v) for v in (
            image.subject, image.session or "n/a", image.relative, image.suffix, outcome.status, outcome.reason,
            f"{outcome.seconds:.1f}", flags, image.folder)))
    return "\n".join(lines) + "\n"


def write_text_replacing(path: Path, text: str) -> None:
    """Write one of the batch's own summary files atomically, replacing the previous run's version."""
    with atomic_outputs([path], overwrite=True) as (tmp,):
        Path(tmp).write_text(text, encoding="utf-8")


def dataset_description(source_root: Path, model: dict) -> dict:
    """BIDS derivatives `dataset_description.json`: GeneratedBy names RootletSeg, its version and the model."""
    return {
        "Name": "RootletSeg spinal nerve rootlets and spinal levels",
        "BIDSVersion": "1.9.0",
        "DatasetType": "derivative",
        "GeneratedBy": [{
            "Name": "RootletSeg",
            "Version": __version__,
            "Description": f"rootletseg batch; model {model.get('name')} ({model.get('release')})",
            "CodeURL": "https://github.com/ivadomed/model-spinal-rootlets",
        }],
        "SourceDatasets": [{"URL": Path(source_root).resolve().as_uri()}],
        "ReferencesAndLinks": [f"https://doi.org/{PAPER_DOI}"],
    }


def is_rootletseg_derivatives(out_root: Path) -> bool:
    """True when `out_root/dataset_description.json` says RootletSeg generated the folder."""
    record = read_record(Path(out_root) / DESCRIPTION_FILE)
    if record is None:
        return False
    return any(isinstance(g, dict) and g.get("Name") == "RootletSeg" for g in record.get("GeneratedBy") or [])


def outcome_from_record(relative: str, record: dict) -> Outcome:
    """A skipped subject's outcome, from its previous record (its outputs and summary stay valid)."""
    return Outcome(relative, "skipped", "same inputs, model and settings as the finished run",
                   float(record.get("seconds", 0.0)), dict(record.get("outputs") or {}), dict(record.get("summary") or {}))


def environment_threads(jobs: int) -> int:
    """PyTorch threads per worker: the machine's CPUs shared between the workers, at least 1."""
    return max(1, (os.cpu_count() or 1) // max(1, jobs))

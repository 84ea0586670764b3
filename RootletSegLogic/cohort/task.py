"""The per-subject task a Dask worker runs: one image in; its outputs, figures and resume record out, as one
all-or-nothing set in the derivatives dataset.

`segment_subject` is the ONE place that turns an image and its landmarks into outputs: the `run` workflow
(`pipeline.run.run_pipeline`) with the dataset's cord, discs and PMJ, and the landmark models for what is missing.
Everything is first written into a private staging folder under `<out>/.rootletseg-staging/`, then moved into
place with `images.atomic.atomic_outputs` together with the resume record, so a killed worker leaves either the
whole set or nothing (a staging folder left by a killed worker is removed by the next batch).

Each worker process resolves the models once (`_model`, `_landmark_model`) and keeps them for every image it is
given; the `run` workflow still builds its network from the resolved model for each image.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Tuple

from RootletSegLogic import __version__
from RootletSegLogic.cohort.bids import BidsImage
from RootletSegLogic.cohort.records import Outcome, Settings, record_path
from RootletSegLogic.errors import UserError

STAGING_FOLDER = ".rootletseg-staging"
_MODELS: Dict[str, object] = {}  # model name or path -> ModelFolder, per worker process


@dataclass(frozen=True)
class SubjectTask:
    """Everything a worker needs for one image (plain data: it travels to the worker by pickle)."""

    image: BidsImage
    out_root: str
    model: str
    model_identity: dict
    input_sha256: dict
    settings: Settings
    device: str = "auto"
    threads: int = 1
    overwrite: bool = False


def _model(name: str):
    """The ModelFolder of `name`, resolved once per worker process."""
    if name not in _MODELS:
        from RootletSegLogic.segmentation.workflow import resolve_model

        _MODELS[name] = resolve_model(name)
    return _MODELS[name]


def _landmark_model(name: str):
    """The landmark ModelFolder of `name`, resolved once per worker process (only for images that need it)."""
    key = f"landmarks:{name}"
    if key not in _MODELS:
        from RootletSegLogic.pipeline.landmarks import resolve_landmark_model

        _MODELS[key] = resolve_landmark_model(name)
    return _MODELS[key]


def segment_subject(image: BidsImage, staging: Path, task: SubjectTask):
    """Image + the derivatives' landmarks -> every output in `staging`, named as `rootletseg run` names them
    (`pipeline.run.run_pipeline`: landmark models for a cord or discs the derivatives lack, rootlets on the cord's
    region, levels, tables, planning JSON, markups, figures). Returns (PipelineRun, warnings, landmarks source:
    "derivatives" when cord and discs came from the dataset, else "automatic")."""
    from RootletSegLogic.pipeline.run import run_pipeline

    marks = image.landmarks
    automatic = not (marks.cord and marks.discs)
    landmark_model = _landmark_model(task.settings.landmark_model) if automatic else task.settings.landmark_model
    warnings: list = []
    run = run_pipeline(image.path, staging, model=_model(task.model), landmark_model=landmark_model,
                       cord=marks.cord, discs=marks.discs, pmj=marks.pmj, device=task.device, threads=task.threads,
                       method=task.settings.method, warn=warnings.append)
    return run, warnings, "automatic" if automatic else "derivatives"


def _summary(run, warnings, landmarks_source: str) -> dict:
    """Levels, flags and warnings of one subject, for the report and the group statistics."""
    import numpy as np
    import SimpleITK as sitk

    from RootletSegLogic.analysis.flags import level_summary_rows, review_flags

    result = run.levels
    labels = sitk.GetArrayFromImage(sitk.ReadImage(run.outputs["segmentation"]))  # a copy: a view would outlive its image
    counts = np.bincount(labels.ravel().astype(np.int64), minlength=10)
    rootlet_voxels = {v: int(counts[v]) for v in range(2, 10)}
    rows = level_summary_rows(result)
    return {
        "levels": rows,
        "method": result.method,
        "distance_reference": result.distance_reference,
        "landmarks": landmarks_source,
        "warnings": list(dict.fromkeys(list(warnings) + list(result.warnings))),
        "flags": review_flags(rows, rootlet_voxels, landmarks_source, result.method, result.distance_reference),
    }


def _commit(task: SubjectTask, staged: Dict[str, Path], record: dict) -> Dict[str, str]:
    """Move the staged files and the record into the subject's folder as one all-or-nothing set."""
    from RootletSegLogic.images.atomic import atomic_outputs

    image = task.image
    folder = Path(task.out_root) / image.folder
    folder.mkdir(parents=True, exist_ok=True)
    names = {name: path.name for name, path in staged.items()}
    record["outputs"] = names
    targets = [folder / file for file in names.values()] + [record_path(task.out_root, image.folder, image.stem)]
    with atomic_outputs(targets, task.overwrite) as temporaries:
        for source, temporary in zip(staged.values(), temporaries):
            os.replace(source, temporary)
        Path(temporaries[-1]).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return names


def _run(task: SubjectTask, staging: Path, start: float) -> Tuple[Dict[str, str], dict]:
    run, warnings, landmarks_source = segment_subject(task.image, staging, task)
    staged = {name: Path(path) for name, path in run.outputs.items()}
    summary = _summary(run, warnings, landmarks_source)
    record = {
        "status": "done",
        "image": task.image.relative,
        "input_sha256": task.input_sha256,
        "model": task.model_identity,
        "settings": task.settings.as_dict(),
        "software_version": __version__,
        "summary": summary,
        "seconds": round(time.monotonic() - start, 2),  # until the commit: the figures included
    }
    return _commit(task, staged, record), summary


def process_subject(task: SubjectTask) -> Outcome:
    """Run one image; never raises for a problem of this image: it becomes a failed Outcome with one sentence."""
    start = time.monotonic()
    staging = Path(task.out_root) / STAGING_FOLDER / f"{task.image.stem}-{uuid.uuid4().hex[:8]}"
    worker = f"{socket.gethostname()}:{os.getpid()}"
    try:
        staging.mkdir(parents=True)
        outputs, summary = _run(task, staging, start)
        outcome = Outcome(task.image.relative, "done", "", 0.0, outputs, summary)
    except UserError as error:
        reason = str(error).replace(str(staging), str(Path(task.out_root) / task.image.folder))
        outcome = Outcome(task.image.relative, "failed", reason)
    except Exception as error:  # one image's surprise must not stop the others; its reason is kept
        outcome = Outcome(task.image.relative, "failed",
                          f"Unexpected error ({type(error).__name__}: {error}): please report it with this image.")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    outcome.seconds = time.monotonic() - start
    outcome.worker = worker
    return outcome

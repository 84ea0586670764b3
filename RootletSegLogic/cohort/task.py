"""The per-subject task a Dask worker runs: one image in; its outputs, figures and resume record out, as one
all-or-nothing set in the derivatives dataset.

`segment_subject` is the ONE place that turns an image and its landmarks into outputs: the `run` workflow
(`pipeline.run.run_pipeline`) with the dataset's cord, discs and PMJ, and the landmark models for what is missing.
Everything is first written into a private staging folder under `<out>/.rootletseg-staging/`, then moved into
place with `images.atomic.atomic_outputs` together with the resume record, so a killed worker leaves either the
whole set or nothing (a staging folder left by a killed worker is removed by the next batch).

Each worker process loads each network once and reuses it for every image it is given: `_loaded_models` keeps
`pipeline.models.LoadedModels` per process, keyed by the model's identity (checkpoint sha256s, so a worker that
outlives a batch never runs stale weights under a new record) and the settings that shape the networks (landmark
model, device, threads). nnU-Net's predictor is not safe to share between threads, so a LoadedModels serves one
image at a time: our clusters run one Dask thread per worker (one load per worker); a worker with more threads
builds one more set only when its threads run images at the same time. The landmark network is built only when an
image lacks a cord or discs. Each outcome says how many networks its image had to build (`Outcome.network_loads`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

from RootletSegLogic import __version__
from RootletSegLogic.cohort.bids import BidsImage
from RootletSegLogic.cohort.records import Outcome, Settings, record_path
from RootletSegLogic.errors import UserError

STAGING_FOLDER = ".rootletseg-staging"
_IDLE: Dict[tuple, List[object]] = {}  # key -> LoadedModels not in use by any thread, per worker process
_IDLE_LOCK = threading.Lock()


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


def _models_key(task: SubjectTask) -> tuple:
    """What the loaded networks depend on: the rootlet model (name and weights), the landmark model, device, threads."""
    return (task.model, json.dumps(task.model_identity, sort_keys=True), task.settings.landmark_model, task.device,
            task.threads)


@contextlib.contextmanager
def _loaded_models(task: SubjectTask) -> Iterator[object]:
    """This worker's LoadedModels for `task`'s key, for this thread alone while inside; made (nothing loaded yet)
    when none is idle, and kept for the next image afterwards, whatever happened to this one (a failing image does
    not damage a loaded network). Idle sets of other keys are dropped: a long-lived worker keeps one batch's models."""
    from RootletSegLogic.pipeline.models import LoadedModels

    key = _models_key(task)
    with _IDLE_LOCK:
        for other in [k for k in _IDLE if k != key]:
            del _IDLE[other]
        idle = _IDLE.setdefault(key, [])
        models = idle.pop() if idle else None
    if models is None:
        models = LoadedModels(task.model, task.settings.landmark_model, task.device, task.threads)
    try:
        yield models
    finally:
        with _IDLE_LOCK:
            _IDLE.setdefault(key, []).append(models)


def segment_subject(image: BidsImage, staging: Path, task: SubjectTask, models=None):
    """Image + the derivatives' landmarks -> every output in `staging`, named as `rootletseg run` names them
    (`pipeline.run.run_pipeline`: landmark models for a cord or discs the derivatives lack, rootlets on the cord's
    region, levels, tables, planning JSON, markups, figures), with `models` (a `LoadedModels`; None: loaded for this
    image). Returns (PipelineRun, warnings, landmarks source: "derivatives" when cord and discs came from the
    dataset, else "automatic")."""
    from RootletSegLogic.pipeline.run import run_pipeline

    marks = image.landmarks
    automatic = not (marks.cord and marks.discs)
    warnings: list = []
    run = run_pipeline(image.path, staging, model=task.model, landmark_model=task.settings.landmark_model,
                       cord=marks.cord, discs=marks.discs, pmj=marks.pmj, device=task.device, threads=task.threads,
                       method=task.settings.method, distance=task.settings.distance, warn=warnings.append,
                       models=models)
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


def _run(task: SubjectTask, staging: Path, start: float, loads: Dict[str, int]) -> Tuple[Dict[str, str], dict]:
    """Segment, summarise and commit one image with this worker's loaded networks; `loads` gets the networks this
    image had to build (0 each when an earlier image of this worker built them)."""
    with _loaded_models(task) as models:
        before = dict(models.loads)
        try:
            run, warnings, landmarks_source = segment_subject(task.image, staging, task, models)
        finally:
            loads.update({kind: models.loads[kind] - before[kind] for kind in before})
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
    loads: Dict[str, int] = {}
    try:
        staging.mkdir(parents=True)
        outputs, summary = _run(task, staging, start, loads)
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
    outcome.network_loads = loads
    return outcome

"""The per-subject task a Dask worker runs: one image in; its outputs, figures and resume record out, as one
all-or-nothing set in the derivatives dataset.

`segment_subject` is the ONE place that turns an image and its landmarks into outputs (today the segment
workflow with the dataset's cord, discs and PMJ; the `run` workflow with the landmark models once it exists).
Everything is first written into a private staging folder under `<out>/.rootletseg-staging/`, then moved into
place with `images.atomic.atomic_outputs` together with the resume record, so a killed worker leaves either the
whole set or nothing (a staging folder left by a killed worker is removed by the next batch).

Each worker process resolves the model once (`_model`) and keeps it for every image it is given.
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
FIGURES = ("qc_sagittal", "level_chart")
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


def segment_subject(image: BidsImage, staging: Path, task: SubjectTask):
    """Image + landmarks -> outputs in `staging`, named as `naming.py` names them; returns (SegmentRun, warnings).

    The single switch point to the `run` workflow (landmarks for what is missing, then rootlets and levels).
    Until the landmark models exist, an image without a cord mask and without disc labels in the derivatives
    fails with one sentence.
    """
    from RootletSegLogic import naming
    from RootletSegLogic.segmentation.workflow import level_request_for, segment_and_levels

    marks = image.landmarks
    if not (marks.cord or marks.discs):
        raise UserError("No cord mask (_label-SC_seg) and no disc labels (_label-discs_dlabel) were found under "
                        "derivatives/labels for this image, and no landmark model is available to detect them: "
                        "add them to the derivatives.")
    segmentation = staging / naming.segmentation_path(Path(image.path)).name
    levels = level_request_for(segmentation, cord=marks.cord, discs=marks.discs, pmj=marks.pmj,
                               method=task.settings.method)
    warnings = []
    run = segment_and_levels(image.path, segmentation, model=_model(task.model), device=task.device,
                             tta=task.settings.tta, step=task.settings.step, threads=task.threads,
                             levels=levels, warn=warnings.append)
    return run, warnings


def _figures(image: BidsImage, run, staging: Path) -> Dict[str, Path]:
    """The sagittal QC and the level chart (PNG + SVG) of one subject, in `staging`."""
    from RootletSegLogic.analysis.figures import level_chart
    from RootletSegLogic.analysis.qc_figure import sagittal_qc

    marks = image.landmarks
    qc = sagittal_qc(image.path, run.labels, marks.cord, marks.discs, run.levels,
                     out_base=staging / f"{image.stem}_qc_sagittal", title=f"{image.stem}: rootlets, cord, levels")
    chart = level_chart(run.levels, staging / f"{image.stem}_level_chart", title=f"{image.stem}: levels")
    return {"qc_sagittal": qc[0], "qc_sagittal_svg": qc[1], "level_chart": chart[0], "level_chart_svg": chart[1]}


def _summary(image: BidsImage, run, warnings) -> dict:
    """Levels, flags and warnings of one subject, for the report and the group statistics."""
    import numpy as np
    import SimpleITK as sitk

    from RootletSegLogic.analysis.flags import level_summary_rows, review_flags

    result = run.levels
    counts = np.bincount(sitk.GetArrayViewFromImage(run.labels).ravel().astype(np.int64), minlength=10)
    rootlet_voxels = {v: int(counts[v]) for v in range(2, 10)}
    rows = level_summary_rows(result)
    return {
        "levels": rows,
        "method": result.method,
        "distance_reference": result.distance_reference,
        "landmarks": image.landmarks.source,
        "warnings": list(dict.fromkeys(list(warnings) + list(result.warnings))),
        "flags": review_flags(rows, rootlet_voxels, image.landmarks.source, result.method,
                              result.distance_reference),
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
    run, warnings = segment_subject(task.image, staging, task)
    if run.levels is None:
        raise UserError("No levels were computed for this image: the derivatives hold no cord mask or discs.")
    staged = {name: Path(path) for name, path in run.outputs.items()}
    staged.update(_figures(task.image, run, staging))
    summary = _summary(task.image, run, warnings)
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

"""The batch workflow: a BIDS dataset in; a RootletSeg derivatives dataset out, resumable, on Dask.

1. Find the images (`bids.find_images`) and their landmark files in the dataset's derivatives.
2. Plan: hash every input once; an image whose resume record shows the same inputs, model and settings, with all
   its outputs present, is skipped (`records.record_matches`); `overwrite` runs everything again.
3. Run the others on Dask (`runners`): one task per image; each finished image is one all-or-nothing set.
   The status table is rewritten after every image, so a stopped batch shows where it was.
4. Summaries from every done or skipped image's record: the group Bland–Altman per image suffix and the HTML QC
   report (`group.py`).

Only one batch at a time writes into an output folder (a lock file); a folder that holds files but is not a
RootletSeg derivatives dataset is refused (never mixing our outputs into a user's folder unasked).
"""

from __future__ import annotations

import contextlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence

from RootletSegLogic.cohort.bids import DEFAULT_SUFFIXES, find_images
from RootletSegLogic.cohort.records import (
    DESCRIPTION_FILE,
    STATUS_FILE,
    Outcome,
    Settings,
    dataset_description,
    input_hashes,
    is_rootletseg_derivatives,
    model_identity,
    outcome_from_record,
    read_record,
    record_matches,
    record_path,
    status_tsv,
    write_text_replacing,
)
from RootletSegLogic.cohort.runners import Engine, dask_client, default_jobs, run_tasks
from RootletSegLogic.cohort.task import STAGING_FOLDER, SubjectTask
from RootletSegLogic.errors import UserError
from RootletSegLogic.images.files import absolute_path
from RootletSegLogic.progress import ProgressCallback, ProgressEvent, no_progress

LOCK_FILE = ".rootletseg-batch.lock"


@dataclass
class BatchRequest:
    bids_root: str
    out_root: str
    model: str = "rootletseg"
    suffixes: Sequence[str] = DEFAULT_SUFFIXES
    include: Sequence[str] = ()
    exclude: Sequence[str] = ()
    settings: Settings = field(default_factory=Settings)
    engine: Engine = field(default_factory=Engine)
    device: str = "auto"
    threads: Optional[int] = None  # PyTorch threads per task; None: CPUs shared between local workers, else 1
    overwrite: bool = False


@dataclass
class BatchResult:
    outputs: Dict[str, str]
    counts: Dict[str, int]
    outcomes: Dict[str, Outcome]
    warnings: List[str]


@contextlib.contextmanager
def _output_lock(out_root: Path) -> Iterator[None]:
    """Hold an exclusive lock on the output folder (a second batch into it is refused with one sentence)."""
    import fcntl

    handle = open(out_root / LOCK_FILE, "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise UserError(f"Another batch is writing into '{out_root}' right now: wait for it or choose another "
                            "output folder.") from None
        yield
    finally:
        handle.close()


def _check_out_root(bids_root: Path, out_root: Path, overwrite: bool) -> None:
    if out_root.exists() and not out_root.is_dir():
        raise UserError(f"The output '{out_root}' is a file: give a folder for the derivatives dataset.")
    if out_root == bids_root or bids_root in out_root.parents and out_root.parts[len(bids_root.parts)].startswith("sub-"):
        raise UserError(f"The output '{out_root}' is inside the dataset's subject folders: write the derivatives to "
                        "BIDS_ROOT/derivatives/rootletseg or elsewhere.")
    if out_root.is_dir() and not is_rootletseg_derivatives(out_root):
        others = [p.name for p in out_root.iterdir() if p.name not in (LOCK_FILE, STAGING_FOLDER)]
        if others and not overwrite:
            raise UserError(f"The folder '{out_root}' holds files but is not a RootletSeg derivatives dataset: choose "
                            "an empty or new folder, or pass --overwrite.")


def _threads(request: BatchRequest, jobs: int) -> int:
    if request.threads:
        return int(request.threads)
    if request.engine.slurm:
        return request.engine.slurm.cores
    if request.engine.address:
        return 1
    from RootletSegLogic.cohort.records import environment_threads

    return environment_threads(jobs)


def _resolve_model_identity(model: str, warn) -> dict:
    from RootletSegLogic.provenance import model_record
    from RootletSegLogic.segmentation.workflow import resolve_model

    return model_identity(model_record(resolve_model(model, warn=warn)))


def _collect_committed(tasks: List[SubjectTask], outcomes: Dict[str, Outcome], model: dict,
                       settings: Settings) -> None:
    """Images a worker finished (its record committed) whose outcome never reached us (the batch was stopped
    meanwhile) are done: their record says so."""
    for task in tasks:
        image = task.image
        if image.relative in outcomes:
            continue
        record = read_record(record_path(task.out_root, image.folder, image.stem))
        if record_matches(record, task.input_sha256, model, settings, Path(task.out_root) / image.folder):
            outcomes[image.relative] = Outcome(image.relative, "done", "", float(record.get("seconds", 0.0)),
                                                dict(record["outputs"]), dict(record.get("summary") or {}))


def run_batch(request: BatchRequest, progress: Optional[ProgressCallback] = None,
              warn: Optional[Callable[[str], None]] = None) -> BatchResult:
    """Run (or resume) a batch; see the module docstring. UserError for a bad dataset, output or engine;
    a subject's problem is a failed row in the status table, not an error."""
    from RootletSegLogic.cohort.group import write_group_outputs

    progress = progress or no_progress
    warnings: List[str] = []

    def note(message: str) -> None:
        warnings.append(message)
        if warn:
            warn(message)

    bids_root, out_root = absolute_path(request.bids_root), absolute_path(request.out_root)
    images = find_images(bids_root, request.suffixes, request.include, request.exclude)
    _check_out_root(bids_root, out_root, request.overwrite)
    engine = request.engine
    if not engine.address and not engine.slurm:
        engine.jobs = engine.jobs or default_jobs()
        if engine.jobs < 1:
            raise UserError("--jobs must be at least 1.")
    model = _resolve_model_identity(request.model, note)  # a missing model fails before anything is written
    out_root.mkdir(parents=True, exist_ok=True)
    with _output_lock(out_root):
        shutil.rmtree(out_root / STAGING_FOLDER, ignore_errors=True)  # left by killed workers of an earlier run
        write_text_replacing(out_root / DESCRIPTION_FILE, json.dumps(dataset_description(bids_root, model), indent=2) + "\n")
        outcomes: Dict[str, Outcome] = {}
        tasks: List[SubjectTask] = []
        threads = _threads(request, engine.jobs or 1)
        progress(ProgressEvent("plan", 0, len(images), "hashing inputs"))
        for index, image in enumerate(images):
            marks = image.landmarks
            hashes = input_hashes({"image": image.path, "cord": marks.cord, "discs": marks.discs, "pmj": marks.pmj})
            record = read_record(record_path(out_root, image.folder, image.stem))
            if not request.overwrite and record_matches(record, hashes, model, request.settings,
                                                        out_root / image.folder):
                outcomes[image.relative] = outcome_from_record(image.relative, record)
            else:
                tasks.append(SubjectTask(image, str(out_root), request.model, model, hashes, request.settings,
                                         request.device, threads, request.overwrite))
            progress(ProgressEvent("plan", index + 1, len(images), image.relative))
        status_file = out_root / STATUS_FILE
        write_text_replacing(status_file, status_tsv(images, outcomes))
        total = len(images)

        def finished(outcome: Outcome) -> None:
            outcomes[outcome.relative] = outcome
            write_text_replacing(status_file, status_tsv(images, outcomes))
            progress(ProgressEvent("batch", len(outcomes), total, f"{outcome.relative}: {outcome.status}"))

        progress(ProgressEvent("batch", len(outcomes), total, f"{len(tasks)} to run on {engine.describe()}"))
        try:
            if tasks:
                with dask_client(engine) as client:
                    run_tasks(client, tasks, finished)
        finally:
            _collect_committed(tasks, outcomes, model, request.settings)
            write_text_replacing(status_file, status_tsv(images, outcomes))
        outputs = {"status": str(status_file), "dataset_description": str(out_root / DESCRIPTION_FILE)}
        outputs.update(write_group_outputs(out_root, images, outcomes, note))
    counts = {status: sum(1 for o in outcomes.values() if o.status == status)
              for status in ("done", "skipped", "failed")}
    return BatchResult(outputs, counts, outcomes, warnings)

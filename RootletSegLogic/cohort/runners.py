"""Running subject tasks on Dask: a local cluster of worker processes, a running scheduler, or SLURM.

- local (`jobs` N): `distributed.LocalCluster` of N worker processes, one Dask thread each (one image at a time
  per process; the model is loaded once per process); PyTorch gets the machine's CPUs shared between them.
- an existing scheduler (`tcp://host:8786`): its workers run the tasks; they need RootletSeg installed and the
  dataset and output folder at the same paths.
- SLURM (`slurm.py`): dask-jobqueue starts jobs, each one worker.

A worker that dies (killed, out of memory, node lost) is replaced or its task moves to another worker: Dask
reschedules the task (up to `distributed.scheduler.allowed-failures` times, 3 by default); a task whose workers
keep dying becomes a failed subject with that reason. A failing subject never stops the others: `process_subject`
returns failures as outcomes.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from typing import Callable, Iterator, List, Optional

from RootletSegLogic.cohort.records import Outcome
from RootletSegLogic.cohort.slurm import SlurmOptions, slurm_cluster
from RootletSegLogic.cohort.task import SubjectTask, process_subject
from RootletSegLogic.errors import UserError

GIB = 1024 ** 3
MEMORY_PER_WORKER_GIB = 4  # one nnU-Net model and one image; a real spine-generic T2w needs about this on CPU


def default_jobs() -> int:
    """Worker processes for this machine: half the CPUs (PyTorch uses the others' threads), at most one per
    `MEMORY_PER_WORKER_GIB` of memory, at least 1."""
    cpus = os.cpu_count() or 1
    try:
        memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB
    except (ValueError, OSError, AttributeError):
        memory_gib = MEMORY_PER_WORKER_GIB
    return max(1, min(cpus // 2, int(memory_gib // MEMORY_PER_WORKER_GIB)))


@dataclass
class Engine:
    """Where the tasks run: `jobs` local workers, or a scheduler `address`, or `slurm` options."""

    jobs: Optional[int] = None
    address: Optional[str] = None
    slurm: Optional[SlurmOptions] = None

    def describe(self) -> str:
        if self.address:
            return f"Dask scheduler {self.address}"
        if self.slurm:
            return f"SLURM via dask-jobqueue ({self.slurm.jobs} job(s))"
        return f"local Dask cluster of {self.jobs} worker process(es)"


@contextlib.contextmanager
def dask_client(engine: Engine) -> Iterator[object]:
    """A distributed.Client for `engine`; the cluster it started (if any) is closed on exit, whatever happens."""
    from distributed import Client, LocalCluster

    cluster = None
    try:
        if engine.address:
            try:
                client = Client(engine.address, timeout="15s")
            except (OSError, TimeoutError) as error:
                raise UserError(f"No Dask scheduler answered at {engine.address} ({type(error).__name__}): start "
                                "one (dask scheduler) or check the address.") from None
        elif engine.slurm:
            cluster = slurm_cluster(engine.slurm)
            cluster.scale(jobs=engine.slurm.jobs)
            client = Client(cluster)
        else:
            cluster = LocalCluster(n_workers=engine.jobs, threads_per_worker=1, processes=True,
                                   dashboard_address=None, silence_logs=logging.CRITICAL)
            client = Client(cluster)
        try:
            yield client
        finally:
            client.close()
    finally:
        if cluster is not None:
            cluster.close()


def run_tasks(client, tasks: List[SubjectTask], on_outcome: Callable[[Outcome], None]) -> None:
    """Submit every task and hand each Outcome to `on_outcome` as it finishes (in the caller's thread).

    If the caller is interrupted (a signal raises in this thread), the tasks not yet started are cancelled; the
    ones running finish on their workers or are dropped with them, and their outputs are all-or-nothing either way.
    """
    from distributed import as_completed

    futures = {}
    for index, task in enumerate(tasks):
        future = client.submit(process_subject, task, key=f"rootletseg-{index}-{task.image.stem}", pure=False)
        futures[future.key] = (future, task)
    pending = set(futures)
    try:
        for future in as_completed([f for f, _ in futures.values()]):
            task = futures[future.key][1]
            pending.discard(future.key)
            try:
                outcome = future.result()
            except Exception as error:  # KilledWorker, a lost scheduler, ...: this subject failed, the rest go on
                outcome = Outcome(task.image.relative, "failed", _engine_failure(error))
            on_outcome(outcome)
    finally:
        if pending:
            with contextlib.suppress(Exception):
                client.cancel([futures[key][0] for key in pending])


def _engine_failure(error: Exception) -> str:
    name = type(error).__name__
    if name == "KilledWorker":
        return ("The Dask workers running this image died repeatedly (killed, out of memory or lost): give the "
                "workers more memory or run this subject alone.")
    return f"The Dask task for this image failed ({name}: {error}): check the workers' logs and run again."

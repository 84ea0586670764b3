"""SLURM through dask-jobqueue: the `--slurm-*` options as one dataclass, and the SLURMCluster made from them.

Each SLURM job runs ONE Dask worker process that takes ONE image at a time (`cores=1` for Dask's task slots) and
gives PyTorch the job's CPUs (`job_cpu` = --slurm-cores) and its GPUs (`--gres=gpu:N`); the model is loaded once
per job and used for every image the job is given. `jobs` jobs are asked for (`cluster.scale(jobs=...)`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from RootletSegLogic.errors import UserError


@dataclass
class SlurmOptions:
    queue: Optional[str] = None  # partition (-p)
    account: Optional[str] = None  # -A
    cores: int = 4  # CPUs per job (--cpus-per-task), PyTorch threads of the worker
    memory: str = "16GB"  # memory per job
    walltime: str = "02:00:00"  # -t
    gpus: int = 0  # GPUs per job (--gres=gpu:N); the worker then runs on cuda
    jobs: int = 1  # how many jobs (workers) to start
    interface: Optional[str] = None  # network interface the workers reach the scheduler on (e.g. ib0)
    python: Optional[str] = None  # python on the compute nodes (default: this one)
    job_extra: List[str] = field(default_factory=list)  # more #SBATCH directives, e.g. --qos=normal
    local_directory: Optional[str] = None  # worker scratch folder on the nodes

    def check(self) -> None:
        if self.cores < 1 or self.jobs < 1 or self.gpus < 0:
            raise UserError("--slurm-cores and --slurm-jobs must be at least 1 and --slurm-gpus at least 0.")


def slurm_cluster_kwargs(options: SlurmOptions) -> dict:
    """Keyword arguments of dask_jobqueue.SLURMCluster for `options` (see the module docstring)."""
    options.check()
    extra = list(options.job_extra)
    if options.gpus:
        extra.append(f"--gres=gpu:{options.gpus}")
    kwargs = dict(cores=1, processes=1, job_cpu=options.cores, memory=options.memory, walltime=options.walltime,
                  queue=options.queue, account=options.account, job_extra_directives=extra,
                  job_name="rootletseg", scheduler_options={"dashboard_address": None})
    if options.interface:
        kwargs["interface"] = options.interface
    if options.python:
        kwargs["python"] = options.python
    if options.local_directory:
        kwargs["local_directory"] = options.local_directory
    return kwargs


def slurm_cluster(options: SlurmOptions):
    """A dask_jobqueue.SLURMCluster (its scheduler runs in this process); jobs are asked for by the caller."""
    from dask_jobqueue import SLURMCluster

    try:
        return SLURMCluster(**slurm_cluster_kwargs(options))
    except (ValueError, OSError) as error:
        raise UserError(f"The SLURM cluster could not be set up ({error}): check the --slurm-* options.") from None


def slurm_job_script(options: SlurmOptions) -> str:
    """The job script dask-jobqueue would submit for `options` (nothing is submitted)."""
    cluster = slurm_cluster(options)
    try:
        return cluster.job_script()
    finally:
        cluster.close()

"""`rootletseg batch BIDS_ROOT -o OUT [...]`: a BIDS dataset in; a RootletSeg derivatives dataset, a status
table, the group Bland–Altman and an HTML QC report out; resumable; on Dask (local workers, a running scheduler,
or SLURM through dask-jobqueue). The work is `cohort.batch.run_batch`; this module only parses.

Exit status: 0 when every image is done or skipped, 1 when some failed (the status table says why), 130 / 143
when stopped by SIGINT / SIGTERM (finished subjects are kept; run the same command again to go on).
"""

from __future__ import annotations

import argparse
import sys

from RootletSegLogic.cli.levels import DISTANCE_HELP, DISTANCES, METHOD_HELP, METHODS
from RootletSegLogic.cli.main import add_progress_option
from RootletSegLogic.errors import Cancelled


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "batch",
        help="segment every image of a BIDS dataset (resumable, on Dask) and write derivatives, a QC report and "
             "the group Bland–Altman",
        description=(
            "Find sub-*/[ses-*/]anat/*_<suffix>.nii.gz images, take the cord, discs and PMJ from "
            "derivatives/labels (spine-generic names), find what is missing with the landmark model (the PMJ is "
            "never found), segment the rootlets and compute the spinal and vertebral levels as 'rootletseg run' does (Krejci et al., Scientific Reports 2026, doi 10.1038/s41598-026-49164-0). A rerun skips every "
            "image whose inputs (sha256), model and settings are unchanged."),
    )
    parser.add_argument("bids_root", metavar="BIDS_ROOT", help="root folder of the BIDS dataset")
    parser.add_argument("-o", "--output-dir", required=True, metavar="OUT",
                        help="derivatives folder to write (e.g. BIDS_ROOT/derivatives/rootletseg)")
    parser.add_argument("--model", default="rootletseg", help="registry name, model folder or zip (default rootletseg)")
    parser.add_argument("--landmark-model", default="totalspineseg",
                        help="landmark model (registry name, folder or zip) that finds the cord and/or discs of images "
                             "whose derivatives lack them (default totalspineseg; demo-spine for phantoms); loaded "
                             "only when an image needs it")
    parser.add_argument("--suffix", action="append", dest="suffixes", metavar="SUFFIX",
                        help="BIDS suffix of the images to process, repeatable (default T2w)")
    parser.add_argument("--include", action="append", default=[], metavar="GLOB",
                        help="only images whose relative path or file name matches, repeatable")
    parser.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                        help="leave out images whose relative path or file name matches, repeatable")
    parser.add_argument("--method", choices=METHODS, default="paper", help=METHOD_HELP)
    parser.add_argument("--distance", choices=DISTANCES, default="pmj",
                        help=DISTANCE_HELP + " (sct: an image without a PMJ in its derivatives fails with that "
                             "reason; part of the resume key)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (on the workers)")
    parser.add_argument("--threads", type=int, default=None,
                        help="PyTorch threads per image (default: the CPUs shared between local workers; 1 on an "
                             "existing scheduler; --slurm-cores on SLURM)")
    parser.add_argument("--overwrite", action="store_true",
                        help="run every image again and replace its outputs, even when unchanged")
    engine = parser.add_argument_group("where the images run (Dask)")
    engine.add_argument("--jobs", type=int, default=None,
                        help="worker processes of a local Dask cluster (default: half the CPUs, one per 4 GiB)")
    engine.add_argument("--dask-scheduler", metavar="ADDRESS", default=None,
                        help="use a running Dask scheduler, e.g. tcp://host:8786")
    engine.add_argument("--slurm", action="store_true", help="start workers as SLURM jobs (dask-jobqueue)")
    engine.add_argument("--slurm-queue", help="SLURM partition")
    engine.add_argument("--slurm-account", help="SLURM account")
    engine.add_argument("--slurm-cores", type=int, default=4, help="CPUs per job (default 4)")
    engine.add_argument("--slurm-memory", default="16GB", help="memory per job (default 16GB)")
    engine.add_argument("--slurm-walltime", default="02:00:00", help="time limit per job (default 02:00:00)")
    engine.add_argument("--slurm-gpus", type=int, default=0, help="GPUs per job (default 0)")
    engine.add_argument("--slurm-jobs", type=int, default=1, help="number of jobs (workers) (default 1)")
    engine.add_argument("--slurm-interface", help="network interface the workers reach this machine on (e.g. ib0)")
    engine.add_argument("--slurm-job-extra", action="append", default=[], metavar="DIRECTIVE",
                        help="extra #SBATCH directive, repeatable; write it with = (e.g. --slurm-job-extra=--qos=normal)")
    engine.add_argument("--slurm-print-script", action="store_true",
                        help="print the SLURM job script dask-jobqueue would submit, and stop")
    add_progress_option(parser)
    parser.set_defaults(func=run)


def _slurm_options(args):
    from RootletSegLogic.cohort.slurm import SlurmOptions

    return SlurmOptions(queue=args.slurm_queue, account=args.slurm_account, cores=args.slurm_cores,
                        memory=args.slurm_memory, walltime=args.slurm_walltime, gpus=args.slurm_gpus,
                        jobs=args.slurm_jobs, interface=args.slurm_interface, job_extra=list(args.slurm_job_extra))


def run(args: argparse.Namespace, reporter) -> int:
    from RootletSegLogic.cohort.batch import BatchRequest, run_batch
    from RootletSegLogic.cohort.records import Settings
    from RootletSegLogic.cohort.runners import Engine
    from RootletSegLogic.cohort.slurm import slurm_job_script
    from RootletSegLogic.errors import UserError

    if args.slurm_print_script:
        sys.stdout.write(slurm_job_script(_slurm_options(args)))
        return 0
    chosen = [bool(args.jobs), bool(args.dask_scheduler), bool(args.slurm)]
    if sum(chosen) > 1:
        raise UserError("Choose one of --jobs, --dask-scheduler and --slurm.")
    engine = Engine(jobs=args.jobs, address=args.dask_scheduler, slurm=_slurm_options(args) if args.slurm else None)
    request = BatchRequest(args.bids_root, args.output_dir, model=args.model,
                           suffixes=tuple(args.suffixes or ("T2w",)), include=tuple(args.include),
                           exclude=tuple(args.exclude),
                           settings=Settings(method=args.method, landmark_model=args.landmark_model,
                                             distance=args.distance), engine=engine,
                           device=args.device, threads=args.threads, overwrite=args.overwrite)
    try:
        result = run_batch(request, progress=reporter, warn=reporter.warning)
    except Cancelled as cancelled:
        print("rootletseg: batch stopped; finished images are kept, run the same command again to go on.",
              file=sys.stderr)
        reporter.error("cancelled", cancelled.exit_code)
        return cancelled.exit_code
    outputs = dict(result.outputs)
    outputs.update({f"n_{status}": str(n) for status, n in result.counts.items()})
    reporter.result(outputs)
    if result.counts.get("failed"):
        print(f"rootletseg: {result.counts['failed']} image(s) failed: see {result.outputs['status']}.",
              file=sys.stderr)
        return 1
    return 0

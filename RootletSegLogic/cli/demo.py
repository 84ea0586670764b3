"""`rootletseg demo`: `rootletseg run`, offline, on a synthetic phantom with the embedded demo models.

Arguments only: the work is `RootletSegLogic.synthetic.demo.run_demo` (phantom, then `run`'s workflow: cord and
discs by demo-spine, rootlets by demo, levels, figures). Prints where everything went.
"""

from __future__ import annotations

import argparse

from RootletSegLogic.cli.main import add_progress_option


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run RootletSeg offline on a synthetic phantom with the embedded demo models",
        description="Write a synthetic spine phantom into --out and run the whole pipeline on it, as `rootletseg "
        "run` does: cord and discs found by the embedded demo-spine model, rootlets by the demo model, levels, tables "
        "and figures (the PMJ is the phantom's, as a user would place it). Prints where everything went. Offline.",
    )
    parser.add_argument("--out", default="rootletseg_demo", help="output folder (default: ./rootletseg_demo)")
    parser.add_argument("--seed", type=int, default=0, help="phantom seed (default 0)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing files in the output folder")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for the network (default: all CPUs)")
    add_progress_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, reporter) -> int:
    from RootletSegLogic.synthetic.demo import run_demo

    outputs = run_demo(args.out, seed=args.seed, overwrite=args.overwrite, threads=args.threads, progress=reporter,
                       warn=reporter.warning)
    reporter.result(outputs)
    return 0

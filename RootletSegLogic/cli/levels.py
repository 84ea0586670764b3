"""`rootletseg levels`: spinal levels from rootlets (+ cord), vertebral levels from discs, their correspondence.

    rootletseg levels --rootlets R.nii.gz [--cord C.nii.gz] [--discs D.nii.gz | --disc-points P.json|.csv|.mrk.json]
                      [--pmj PMJ.nii.gz] -o OUT.tsv [--json OUT.json] [--markups OUT.mrk.json] [--pairings P.tsv]
                      [--label-image OUT_levels.nii.gz] [--method paper|gapless] [--overwrite]

All outputs are written together or not at all. Disc and PMJ label images may be on any grid (only their world
positions are used); the cord mask must be on the rootlets' grid. A PMJ point (value 50) inside the disc file is
used when --pmj is not given.
"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "levels",
        help="spinal levels from rootlets and vertebral levels from discs, in mm (table, JSON, markups)",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--rootlets", required=True, metavar="R.nii.gz",
                        help="rootlet label map (2 = C2 ... 9 = T1), e.g. the output of `rootletseg segment`")
    parser.add_argument("--cord", metavar="C.nii.gz",
                        help="spinal cord mask on the rootlets' grid; without it the levels come from the rootlets "
                             "alone (method 'rootlets-only', not the paper's method)")
    discs = parser.add_mutually_exclusive_group()
    discs.add_argument("--discs", metavar="D.nii.gz", help="SCT disc label image (2 = C1/C2, 3 = C2/C3, ..., 50 = PMJ)")
    discs.add_argument("--disc-points", metavar="P.json", help="disc points: .csv/.tsv/.json/.mrk.json (see docs)")
    parser.add_argument("--pmj", metavar="PMJ.nii.gz", help="PMJ label image (value 50, or a single label)")
    parser.add_argument("-o", "--output", required=True, metavar="OUT.tsv", help="level table (TSV)")
    parser.add_argument("--json", metavar="OUT.json", help="planning JSON (points in RAS and LPS, provenance)")
    parser.add_argument("--markups", metavar="OUT.mrk.json", help="Slicer markups with the level bounds")
    parser.add_argument("--pairings", metavar="PAIRS.tsv", help="table of vertebral/spinal pairings (both pairings)")
    parser.add_argument("--label-image", metavar="OUT_levels.nii.gz",
                        help="spinal level label image: cord voxels marked with their level (needs --cord)")
    parser.add_argument("--method", choices=("paper", "gapless"), default="paper",
                        help="paper: bounds of each level's rootlets (default); gapless: each level runs to the "
                             "next level's rostral bound (SCT issue 5111)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    from RootletSegLogic.cli.main import add_progress_option

    add_progress_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, reporter) -> int:
    from pathlib import Path

    from RootletSegLogic.levels.files import (
        LevelInputs,
        LevelOutputs,
        levels_from_files_to_files,
    )

    def path(value):
        return Path(value) if value else None

    inputs = LevelInputs(path(args.rootlets), path(args.cord), path(args.discs), path(args.disc_points), path(args.pmj))
    outputs = LevelOutputs(path(args.output), path(args.json), path(args.markups), path(args.pairings),
                           path(args.label_image))
    _, written = levels_from_files_to_files(inputs, outputs, args.method, args.overwrite,
                                            progress=reporter, warn=reporter.warning)
    reporter.result(written)
    return 0

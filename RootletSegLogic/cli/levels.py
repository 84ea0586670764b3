"""`rootletseg levels`: spinal levels from rootlets (+ cord), vertebral levels from discs, their correspondence.

    rootletseg levels --rootlets R.nii.gz [--cord C.nii.gz] [--discs D.nii.gz | --disc-points P.json|.csv|.mrk.json]
                      [--pmj PMJ.nii.gz] -o OUT.tsv [--json OUT.json] [--markups OUT.mrk.json] [--pairings P.tsv]
                      [--label-image OUT_levels.nii.gz] [--method paper|gapless|gapless-caudal]
                      [--distance pmj|sct] [--overwrite]

All outputs are written together or not at all. Disc and PMJ label images may be on any grid (only their world
positions are used); the cord mask must be on the rootlets' grid. A PMJ point (value 50) inside the disc file is
used when --pmj is not given.
"""

from __future__ import annotations

import argparse

# Shared by `levels`, `run` and `batch`: the same words for the same choices on every face.
METHODS = ("paper", "gapless", "gapless-caudal")
METHOD_HELP = ("spinal level bounds. paper (default): each level spans its own rootlets' entry zone, as the paper "
               "measures it (levels may leave gaps or overlap); gapless: each level runs from its rostral bound to "
               "the next level's rostral bound, so the levels tile the cord; gapless-caudal: SCT issue 5111's "
               "gap-free definition, from the caudal bound of the level above to the level's own caudal bound")
DISTANCES = ("pmj", "sct")
DISTANCE_HELP = ("how distances from the PMJ are measured. pmj (default): arc length along the lightly smoothed "
                 "cord centerline from the PMJ point projected onto it; the default because it starts at the "
                 "anatomical landmark itself, so a cord mask reaching above the PMJ or a PMJ a few mm off the cord "
                 "does not shift every distance. sct: as SCT and the paper's analysis scripts measure, from the top "
                 "slice of cord + PMJ voxel along SCT's 50 mm Hanning-smoothed centerline, for comparing with "
                 "tables made by SCT; needs a cord mask and a PMJ. Absolute distances may differ by several mm "
                 "between the two; heights and differences between levels by 0.3 mm or less")



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
    parser.add_argument("--method", choices=METHODS, default="paper", help=METHOD_HELP)
    parser.add_argument("--distance", choices=DISTANCES, default="pmj", help=DISTANCE_HELP)
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
                                            progress=reporter, warn=reporter.warning, distance=args.distance)
    reporter.result(written)
    return 0

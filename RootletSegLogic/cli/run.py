"""`rootletseg run IMAGE`: the whole job in one command -- cord and discs (unless given), rootlets, levels, tables,
planning JSON, markups and figures -- and the level table printed.

Arguments only: the work is `RootletSegLogic.pipeline.run.run_pipeline`.
"""

from __future__ import annotations

import argparse
import sys

from RootletSegLogic.cli.levels import DISTANCE_HELP, DISTANCES, METHOD_HELP, METHODS
from RootletSegLogic.cli.main import add_progress_option
from RootletSegLogic.cli.segment import BACKENDS, DEFAULT_ROI_MARGIN_MM, DEVICE_CHOICES

TABLE_COLUMNS = ("level_type", "level", "rostral_S_mm", "caudal_S_mm", "midpoint_distance_mm", "height_mm")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "run",
        help="cord, discs, rootlets and the level table of an image in one command",
        description="Find the spinal cord and discs (unless given), segment the rootlets, compute the spinal and "
        "vertebral levels and write everything (cord, discs, label map, sidecars, level table, planning JSON, "
        "markups, pairings, level label image, figures) into OUT_DIR as one set; print the level table. The PMJ is "
        "never found automatically: give --pmj, or distances run along the superior-inferior axis.",
    )
    parser.add_argument("image", help="input image (.nii.gz, .nii, .nrrd, .mha)")
    parser.add_argument("-o", "--out-dir", help="output folder (default: the input's folder)")
    parser.add_argument("--model", default="rootletseg",
                        help="rootlet model: rootletseg (default), m5, demo, or a model folder/zip")
    parser.add_argument("--landmark-model", default="totalspineseg",
                        help="cord/disc model: totalspineseg (default), demo-spine, or a model folder/zip")
    parser.add_argument("--cord", metavar="C.nii.gz", help="spinal cord mask on the image grid (skips finding it)")
    discs = parser.add_mutually_exclusive_group()
    discs.add_argument("--discs", metavar="D.nii.gz", help="SCT disc label image (skips finding the discs)")
    discs.add_argument("--disc-points", metavar="P.json", help="disc points: .csv/.tsv/.json/.mrk.json")
    parser.add_argument("--pmj", metavar="PMJ.nii.gz", help="PMJ label image (value 50)")
    parser.add_argument("--method", choices=METHODS, default="paper", help=METHOD_HELP)
    parser.add_argument("--distance", choices=DISTANCES, default="pmj",
                        help=DISTANCE_HELP + " (the PMJ is never found: sct needs --pmj)")
    parser.add_argument("--device", choices=DEVICE_CHOICES, default="auto",
                        help="where to run the networks (default auto: cuda, else mps, else cpu)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for the networks (default: all)")
    parser.add_argument("--backend", choices=BACKENDS, default="auto",
                        help="what runs the rootlet network (as `segment --backend`; default auto)")
    parser.add_argument("--roi-margin-mm", type=float, default=DEFAULT_ROI_MARGIN_MM, metavar="MM",
                        help="the rootlet network runs on the cord's box (given or found) dilated by this many mm "
                        f"(default {DEFAULT_ROI_MARGIN_MM:g}), grown onto the model's grid")
    parser.add_argument("--no-crop", dest="crop_to_cord", action="store_false",
                        help="run the rootlet network on the whole volume")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    add_progress_option(parser)
    parser.set_defaults(func=run)


def format_level_table(result) -> str:
    """The level table as aligned text (mm), for the terminal."""
    from RootletSegLogic.levels.tables import level_table_rows

    rows = level_table_rows(result)
    cells = [list(TABLE_COLUMNS)] + [
        [f"{row[c]:.1f}" if isinstance(row[c], float) else ("-" if row[c] is None else str(row[c]))
         for c in TABLE_COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(TABLE_COLUMNS))]
    text = "\n".join("  ".join(value.ljust(width) for value, width in zip(line, widths)).rstrip() for line in cells)
    return f"{text}\n(distances: {result.distance_reference})\n"


def run(args: argparse.Namespace, reporter) -> int:
    from RootletSegLogic.pipeline.run import run_pipeline
    from RootletSegLogic.progress import JsonProgress

    pipeline_run = run_pipeline(
        args.image, args.out_dir, model=args.model, landmark_model=args.landmark_model, cord=args.cord,
        discs=args.discs, disc_points=args.disc_points, pmj=args.pmj, device=args.device, threads=args.threads,
        overwrite=args.overwrite, method=args.method, progress=reporter, warn=reporter.warning, backend=args.backend,
        roi_margin_mm=args.roi_margin_mm, crop_to_cord=args.crop_to_cord, distance=args.distance)
    if not isinstance(reporter, JsonProgress):  # stdout of the JSON-lines protocol carries JSON lines only
        sys.stdout.write(format_level_table(pipeline_run.levels))
    reporter.result(pipeline_run.outputs)
    return 0

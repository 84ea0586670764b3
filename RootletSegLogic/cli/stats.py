"""`rootletseg stats TABLE.tsv [TABLE.tsv ...] -o DIR [--heights participants.tsv] [--overwrite]`.

Bland–Altman of vertebral vs spinal level midpoints over many subjects (statistics.py), written into DIR:
`bland_altman.tsv` (per level and over all levels, both pairings), `bland_altman_points.tsv` (every paired midpoint
used) and the figure `bland_altman.png` / `.svg`. All outputs are written all-or-nothing; existing files are kept
unless --overwrite.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from RootletSegLogic.cli.main import add_progress_option


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "stats",
        help="Bland–Altman of spinal vs vertebral levels over many subjects (level tables from 'rootletseg levels')",
        description=(
            "Compare spinal and vertebral level midpoints over subjects, as the RootletSeg paper does: difference = "
            "vertebral - spinal midpoint (mm below the PMJ), bias = median, limits of agreement = 2.5th/97.5th "
            "percentiles, Spearman correlation between spinal and vertebral midpoints and the linear fit, for the "
            "'not shifted' and 'shifted' pairings (Krejci et al., Scientific Reports 2026, doi "
            "10.1038/s41598-026-49164-0). Not in the paper, and labelled so: the Spearman of differences vs means, "
            "and the vertebral C1 / spinal C2 pair (pairing 'shifted_extra', kept out of the 'all' rows). The subject "
            "id of a table is its participant_id column, else the sub-<label> at the start of its file name, else "
            "its name."
        ),
    )
    parser.add_argument("tables", nargs="+", metavar="TABLE.tsv", help="level tables, one per subject")
    parser.add_argument("-o", "--output-dir", required=True, metavar="DIR", help="folder for the outputs (created)")
    parser.add_argument(
        "--heights",
        metavar="participants.tsv",
        help="normalise midpoints by body height (columns participant_id and height in cm): midpoint / height x median height",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace outputs that already exist")
    add_progress_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, reporter) -> int:
    from RootletSegLogic.analysis.bland_altman import (
        group_bland_altman,
        load_subjects,
        points_tsv,
        read_heights,
        stats_tsv,
    )
    from RootletSegLogic.analysis.figures import DPI, bland_altman_plot
    from RootletSegLogic.images.atomic import atomic_outputs, output_folder
    from RootletSegLogic.images.files import absolute_path

    subjects = load_subjects(args.tables)
    heights = read_heights(args.heights) if args.heights else None
    stats = group_bland_altman(subjects, heights)
    for message in stats.warnings:
        reporter.warning(message)
    out_dir = Path(args.output_dir)
    table = out_dir / "bland_altman.tsv"
    points = out_dir / "bland_altman_points.tsv"
    png, svg = out_dir / "bland_altman.png", out_dir / "bland_altman.svg"
    # One set: the tables and the figure are written all or none, and a folder created here is removed again
    # when the set is not written (refused, disk full, cancelled).
    with output_folder(out_dir), atomic_outputs([table, points, png, svg], args.overwrite, inputs=args.tables) as (
            table_tmp, points_tmp, png_tmp, svg_tmp):
        Path(table_tmp).write_text(stats_tsv(stats), encoding="utf-8")
        Path(points_tmp).write_text(points_tsv(stats), encoding="utf-8")
        figure = bland_altman_plot(stats)
        figure.savefig(str(png_tmp), format="png", dpi=DPI)
        figure.savefig(str(svg_tmp), format="svg")
    outputs = {
        "bland_altman": str(absolute_path(table)),
        "points": str(absolute_path(points)),
        "figure_png": str(absolute_path(png)),
        "figure_svg": str(absolute_path(svg)),
    }
    reporter.result(outputs)
    return 0

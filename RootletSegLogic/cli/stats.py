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
from RootletSegLogic.errors import UserError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "stats",
        help="Bland–Altman of spinal vs vertebral levels over many subjects (level tables from 'rootletseg levels')",
        description=(
            "Compare spinal and vertebral level midpoints over subjects, as the RootletSeg paper does: difference = "
            "vertebral - spinal midpoint (mm below the PMJ), bias = median, limits of agreement = 2.5th/97.5th "
            "percentiles, Spearman correlation, for the 'not shifted' and 'shifted' pairings. The subject id of a "
            "table is its participant_id column, else the sub-<label> at the start of its file name, else its name."
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
    from RootletSegLogic.analysis.figures import bland_altman_figure
    from RootletSegLogic.images.atomic import atomic_outputs
    from RootletSegLogic.images.files import absolute_path

    subjects = load_subjects(args.tables)
    heights = read_heights(args.heights) if args.heights else None
    stats = group_bland_altman(subjects, heights)
    for message in stats.warnings:
        reporter.warning(message)
    out_dir = Path(args.output_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"The output '{out_dir}' is a file, not a folder: give a folder for the outputs.")
    out_dir.mkdir(parents=True, exist_ok=True)
    table = out_dir / "bland_altman.tsv"
    points = out_dir / "bland_altman_points.tsv"
    figure_base = out_dir / "bland_altman"
    # refuse before writing anything if any output exists
    for path in (table, points, figure_base.with_suffix(".png"), figure_base.with_suffix(".svg")):
        if path.exists() and not args.overwrite:
            raise UserError(f"The output '{absolute_path(path)}' already exists: choose another folder or pass --overwrite.")
    with atomic_outputs([table, points], args.overwrite) as (table_tmp, points_tmp):
        Path(table_tmp).write_text(stats_tsv(stats), encoding="utf-8")
        Path(points_tmp).write_text(points_tsv(stats), encoding="utf-8")
        png, svg = bland_altman_figure(stats, figure_base, overwrite=args.overwrite)
    outputs = {
        "bland_altman": str(absolute_path(table)),
        "points": str(absolute_path(points)),
        "figure_png": str(png),
        "figure_svg": str(svg),
    }
    reporter.result(outputs)
    return 0

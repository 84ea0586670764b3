"""Figures (matplotlib, Agg backend; PNG and SVG): level chart, Bland–Altman plot, sagittal QC.

matplotlib is imported inside the functions, so importing this module is cheap. Every function takes `out_base`
(a path without extension; a trailing .png/.svg is dropped), writes `out_base.png` and `out_base.svg`
all-or-nothing (never overwriting unless `overwrite`), and returns [png_path, svg_path].

Frames: the sagittal QC is drawn in world RAS mm (horizontal: A, anterior on the left as in Slicer's sagittal view;
vertical: S, superior up) after resampling every input into an RAS-aligned grid, so the file orientation of the
inputs does not matter and the aspect ratio is physical.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import numpy as np

from RootletSegLogic.images.atomic import atomic_outputs
from RootletSegLogic.images.files import absolute_path
from RootletSegLogic.levels.colors import level_color
from RootletSegLogic.levels.types import LevelResult

DPI = 100


# ------------------------------------------------------------------------------------------------ helpers
def _out_paths(out_base) -> List[Path]:
    base = str(out_base)
    for suffix in (".png", ".svg"):
        if base.lower().endswith(suffix):
            base = base[: -len(suffix)]
    return [Path(base + ".png"), Path(base + ".svg")]


def new_figure(width_in: float, height_in: float):
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width_in, height_in), dpi=DPI)
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure, out_base, overwrite: bool) -> List[Path]:
    paths = _out_paths(out_base)
    with atomic_outputs(paths, overwrite) as (png_tmp, svg_tmp):
        figure.savefig(str(png_tmp), format="png", dpi=DPI)
        figure.savefig(str(svg_tmp), format="svg")
    return [absolute_path(p) for p in paths]


def text_color(rgb) -> str:
    luminance = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    return "black" if luminance > 0.5 else "white"


def shown_rows(result: LevelResult):
    """Rows to draw: all spinal levels, and the vertebral levels down to the one below the lowest spinal level
    (a disc file may describe the whole spine; the thoracic vertebrae far below the rootlets would only squeeze
    the cervical levels). Without spinal levels: vertebral levels down to T1."""
    spinal = result.spinal()
    vertebral = sorted(result.vertebral(), key=lambda r: r.label_value)
    if spinal:
        lowest = min(min(r.rostral_S_mm, r.caudal_S_mm) for r in spinal)
        above = [r for r in vertebral if max(r.rostral_S_mm, r.caudal_S_mm) > lowest]
        vertebral = vertebral[: len(above) + 1] if above else vertebral[:1]
    else:
        vertebral = [r for r in vertebral if r.label_value <= 8]
    return spinal + vertebral


# ------------------------------------------------------------------------------------------------ level chart
def _row_span(row, use_pmj: bool):
    if use_pmj:
        return row.rostral_pmj_mm, row.caudal_pmj_mm
    return row.rostral_S_mm, row.caudal_S_mm


def level_chart(result: LevelResult, out_base, overwrite: bool = False, title: Optional[str] = None) -> List[Path]:
    """`level_chart_figure` written as PNG + SVG at `out_base` (all-or-nothing); returns [png_path, svg_path]."""
    return save_figure(level_chart_figure(result, title), out_base, overwrite)


def level_chart_figure(result: LevelResult, title: Optional[str] = None):
    """The matplotlib Figure of `level_chart` (tests read its artists back). Per-subject chart like the paper's:
    vertebral levels (left column) beside spinal levels (right column).

    y = distance below the PMJ along the cord centerline (mm, increasing downward) when every row has it, else the
    world RAS S coordinate (mm, superior up). Each level is a bar from its rostral to its caudal bound, in its colour
    (colors.py), labelled with its name; thin grey lines join the midpoints of the "not shifted" pairings. Vertebral
    levels are shown down to the one below the lowest spinal level.
    """
    rows = shown_rows(result)
    use_pmj = bool(rows) and all(r.rostral_pmj_mm is not None and r.caudal_pmj_mm is not None for r in rows)
    figure = new_figure(5.0, 7.0)
    ax = figure.add_axes([0.16, 0.08, 0.80, 0.84])
    columns = {"vertebral": 0.0, "spinal": 1.0}
    width = 0.6
    spans = []
    for row in rows:
        top, bottom = _row_span(row, use_pmj)
        if top is None or bottom is None:
            continue
        x = columns.get(row.level_type, 0.5)
        if row.level_type == "spinal":
            x += 0.06 if row.label_value % 2 else -0.06  # stagger so overlapping spinal levels stay visible
        low, high = min(top, bottom), max(top, bottom)
        colour = level_color(row.level)
        ax.bar(x, high - low, bottom=low, width=width, color=colour, edgecolor="black", linewidth=0.8,
               hatch="//" if row.level_type == "vertebral" else None)
        ax.text(x, (low + high) / 2, row.level, ha="center", va="center", fontsize=10, fontweight="bold",
                color=text_color(colour),
                bbox=dict(boxstyle="round,pad=0.15", facecolor=colour, edgecolor="none") if row.level_type == "vertebral" else None)
        spans.extend([low, high])
    by_name = {(r.level_type, r.level): r for r in rows}
    for vertebral, spinal in (("C2", "C2"), ("C3", "C3"), ("C4", "C4"), ("C5", "C5"), ("C6", "C6"), ("C7", "C7"), ("T1", "C8")):
        v, s = by_name.get(("vertebral", vertebral)), by_name.get(("spinal", spinal))
        if v is None or s is None:
            continue
        vm = sum(x for x in _row_span(v, use_pmj) if x is not None) / 2 if None not in _row_span(v, use_pmj) else None
        sm = sum(x for x in _row_span(s, use_pmj) if x is not None) / 2 if None not in _row_span(s, use_pmj) else None
        if vm is not None and sm is not None:
            ax.plot([width / 2, 1 - width / 2], [vm, sm], color="0.4", linewidth=0.8, linestyle=":")
    ax.set_xticks([0.0, 1.0])
    ax.set_xticklabels(["vertebral levels\n(discs)", f"spinal levels\n(rootlets, {result.method})"])
    ax.set_xlim(-0.6, 1.6)
    if spans:
        pad = 0.05 * (max(spans) - min(spans) or 10.0)
        low, high = min(spans) - pad, max(spans) + pad
        if use_pmj:
            low = min(low, 0.0 - pad)
            ax.set_ylim(high, low)  # distance increases downward
            ax.axhline(0.0, color="black", linewidth=1.0)
            ax.text(1.55, 0.0, "PMJ", ha="right", va="bottom", fontsize=8)
        else:
            ax.set_ylim(low, high)
    ax.set_ylabel("distance below the PMJ along the cord (mm)" if use_pmj else "S coordinate, RAS (mm)")
    ax.grid(axis="y", color="0.85", linewidth=0.6)
    ax.set_axisbelow(True)
    ax.set_title(title or "Spinal vs vertebral levels", fontsize=11)
    if not result.vertebral():
        ax.text(0.0, np.mean(spans) if spans else 0.0, "no discs", ha="center", va="center", color="0.4")
    return figure


# ------------------------------------------------------------------------------------------------ Bland–Altman
def bland_altman_figure(stats, out_base, overwrite: bool = False, title: Optional[str] = None) -> List[Path]:
    """`bland_altman_plot` written as PNG + SVG at `out_base` (all-or-nothing); returns [png_path, svg_path]."""
    return save_figure(bland_altman_plot(stats, title), out_base, overwrite)


def bland_altman_plot(stats, title: Optional[str] = None):
    """The matplotlib Figure of `bland_altman_figure` (tests read its artists back). Bland–Altman plots (one panel
    per pairing: "not shifted", "shifted") from `statistics.group_bland_altman`.

    x = mean of vertebral and spinal midpoints (mm), y = vertebral − spinal midpoint (mm). Points are coloured by
    vertebral level; a short line in the level's colour marks each level's bias (median) over its range of means;
    black lines: bias over all levels (solid) and the 2.5th / 97.5th percentile limits of agreement (dashed).
    """
    pairings = [p for p in ("not_shifted", "shifted") if any(r["pairing"] == p for r in stats.rows)]
    figure = new_figure(7.4 * max(1, len(pairings)), 5.0)
    unit = "mm, height-normalised" if stats.normalised else "mm"
    for index, pairing in enumerate(pairings):
        ax = figure.add_subplot(1, len(pairings), index + 1)
        points = [p for p in stats.points if p["pairing"] == pairing]
        levels = []
        for p in points:
            if p["vertebral_level"] not in levels:
                levels.append(p["vertebral_level"])
        for level in levels:
            chosen = [p for p in points if p["vertebral_level"] == level]
            spinal = chosen[0]["spinal_level"]
            means = np.array([p["mean_mm"] for p in chosen])
            diffs = np.array([p["difference_mm"] for p in chosen])
            colour = level_color(level)
            ax.scatter(means, diffs, s=28, color=colour, edgecolor="black", linewidth=0.5,
                       label=f"vert. {level} / spinal {spinal}", zorder=3)
            row = next(r for r in stats.rows if r["pairing"] == pairing and r["vertebral_level"] == level)
            span = (means.min() - 2, means.max() + 2)
            ax.plot(span, [row["bias_mm"]] * 2, color=colour, linewidth=2.5, zorder=2)
        overall = next((r for r in stats.rows if r["pairing"] == pairing and r["vertebral_level"] == "all"), None)
        if overall is not None:
            ax.axhline(overall["bias_mm"], color="black", linewidth=1.2)
            ax.axhline(overall["loa_lower_mm"], color="black", linewidth=1.0, linestyle="--")
            ax.axhline(overall["loa_upper_mm"], color="black", linewidth=1.0, linestyle="--")
            for value, name in ((overall["bias_mm"], "median"), (overall["loa_lower_mm"], "2.5%"),
                                (overall["loa_upper_mm"], "97.5%")):
                ax.annotate(f"{name} {value:.2f}", xy=(1.0, value), xycoords=("axes fraction", "data"),
                            xytext=(-3, 2), textcoords="offset points", ha="right", va="bottom", fontsize=8)
            rho = overall["spearman_rho"]
            text = f"n = {overall['n']}" + ("" if rho != rho else f", Spearman ρ (spinal vs vertebral midpoints) = {rho:.2f}")
            ax.text(0.02, 0.98, text, transform=ax.transAxes, ha="left", va="top", fontsize=8)
        ax.axhline(0.0, color="0.6", linewidth=0.8, linestyle=":")
        ax.set_xlabel(f"mean of vertebral and spinal midpoints ({unit})")
        ax.set_ylabel(f"vertebral − spinal midpoint ({unit})")
        ax.set_title(pairing.replace("_", " "), fontsize=11)
        ax.grid(color="0.9", linewidth=0.6)
        ax.set_axisbelow(True)
        if levels:
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure

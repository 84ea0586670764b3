"""Figures (matplotlib, Agg backend; PNG and SVG): level chart, Bland–Altman plot, sagittal QC.

matplotlib is imported inside the functions, so importing this module is cheap. Every function takes `out_base`
(a path without extension; a trailing .png/.svg is dropped), writes `out_base.png` and `out_base.svg`
all-or-nothing (never overwriting unless `overwrite`), and returns [png_path, svg_path].

Frames: the sagittal QC is drawn in world RAS mm (horizontal: A, anterior on the left as in Slicer's sagittal view;
vertical: S, superior up) after resampling every input into an RAS-aligned grid, so the file orientation of the
inputs does not matter and the aspect ratio is physical.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional

import numpy as np

from .colors import level_color
from .imageio import absolute_path, atomic_outputs
from .level_types import DiscPoint, LevelResult

DPI = 100


# ------------------------------------------------------------------------------------------------ helpers
def _out_paths(out_base) -> List[Path]:
    base = str(out_base)
    for suffix in (".png", ".svg"):
        if base.lower().endswith(suffix):
            base = base[: -len(suffix)]
    return [Path(base + ".png"), Path(base + ".svg")]


def _new_figure(width_in: float, height_in: float):
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    figure = Figure(figsize=(width_in, height_in), dpi=DPI)
    FigureCanvasAgg(figure)
    return figure


def _save(figure, out_base, overwrite: bool) -> List[Path]:
    paths = _out_paths(out_base)
    with atomic_outputs(paths, overwrite) as (png_tmp, svg_tmp):
        figure.savefig(str(png_tmp), format="png", dpi=DPI)
        figure.savefig(str(svg_tmp), format="svg")
    return [absolute_path(p) for p in paths]


def _text_color(rgb) -> str:
    luminance = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    return "black" if luminance > 0.5 else "white"


def _shown_rows(result: LevelResult):
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
    """Per-subject chart like the paper's: vertebral levels (left column) beside spinal levels (right column).

    y = distance below the PMJ along the cord centerline (mm, increasing downward) when every row has it, else the
    world RAS S coordinate (mm, superior up). Each level is a bar from its rostral to its caudal bound, in its colour
    (colors.py), labelled with its name; thin grey lines join the midpoints of the "not shifted" pairings. Vertebral
    levels are shown down to the one below the lowest spinal level.
    """
    rows = _shown_rows(result)
    use_pmj = bool(rows) and all(r.rostral_pmj_mm is not None and r.caudal_pmj_mm is not None for r in rows)
    figure = _new_figure(5.0, 7.0)
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
                color=_text_color(colour),
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
    return _save(figure, out_base, overwrite)


# ------------------------------------------------------------------------------------------------ Bland–Altman
def bland_altman_figure(stats, out_base, overwrite: bool = False, title: Optional[str] = None) -> List[Path]:
    """Bland–Altman plots (one panel per pairing: "not shifted", "shifted") from `statistics.group_bland_altman`.

    x = mean of vertebral and spinal midpoints (mm), y = vertebral − spinal midpoint (mm). Points are coloured by
    vertebral level; a short line in the level's colour marks each level's bias (median) over its range of means;
    black lines: bias over all levels (solid) and the 2.5th / 97.5th percentile limits of agreement (dashed).
    """
    pairings = [p for p in ("not_shifted", "shifted") if any(r["pairing"] == p for r in stats.rows)]
    figure = _new_figure(7.4 * max(1, len(pairings)), 5.0)
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
            text = f"n = {overall['n']}" + ("" if rho != rho else f", Spearman ρ = {rho:.2f}")
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
    return _save(figure, out_base, overwrite)


# ------------------------------------------------------------------------------------------------ sagittal QC
def _as_image(value, what: str, label: bool):
    import SimpleITK as sitk

    from .imageio import read_image, read_label_map

    if value is None or isinstance(value, sitk.Image):
        return value
    return read_label_map(value, what) if label else read_image(value, what)


def _ras_grid(image, max_voxels: int = 30_000_000):
    """Origin, spacing and size (LPS, identity direction) of an axis-aligned grid covering `image`."""
    size = np.array(image.GetSize())
    corners = np.array([[i, j, k] for i in (0, size[0] - 1) for j in (0, size[1] - 1) for k in (0, size[2] - 1)])
    from .imageio import voxel_centers_lps

    points = voxel_centers_lps(image, corners)
    low, high = points.min(axis=0), points.max(axis=0)
    spacing = float(min(image.GetSpacing()))
    extent = high - low
    while np.prod(np.floor(extent / spacing) + 1) > max_voxels:
        spacing *= 1.25
    grid_size = [int(v) for v in np.floor(extent / spacing) + 1]
    return low, spacing, grid_size


def _resample(image, origin, spacing, size, nearest: bool):
    import SimpleITK as sitk

    resampler = sitk.ResampleImageFilter()
    resampler.SetOutputOrigin([float(v) for v in origin])
    resampler.SetOutputSpacing([spacing] * 3)
    resampler.SetSize([int(v) for v in size])
    resampler.SetOutputDirection((1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    resampler.SetInterpolator(sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear)
    resampler.SetDefaultPixelValue(0)
    if not nearest:
        image = sitk.Cast(image, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(resampler.Execute(image))  # (z, y, x) = (S, P, L)


def _disc_points(discs, what="disc labels") -> List[DiscPoint]:
    """DiscPoints from a list (returned as is) or from an SCT disc-label image (centroid per label value, RAS)."""
    import SimpleITK as sitk

    if discs is None:
        return []
    if not isinstance(discs, sitk.Image) and not isinstance(discs, (str, os.PathLike)):
        return list(discs)
    from .discs import label_centroids

    centroids = label_centroids(_as_image(discs, what, label=True), what)
    return [DiscPoint(value, position) for value, position in sorted(centroids.items())]


def sagittal_qc_planes(image, rootlets, cord=None):
    """The arrays behind `sagittal_qc`, in world space (all inputs resampled to one RAS-aligned grid).

    Returns a dict: "mri" (S, A) MRI sagittal slice through the cord (linear interpolation), "rootlets" (S, A)
    rootlet labels projected over R–L (largest label value along each ray, nearest-neighbour resampling, so labels
    are never blended and none is cropped), "cord" (S, A) cord projected over R–L (bool, or None), "plane_R_mm"
    (RAS R of the slice), "extent" (A at the left edge, A at the right edge, S bottom, S top; anterior on the left),
    "spacing_mm". Row 0 is the most inferior row.
    """
    image = _as_image(image, "image", label=False)
    rootlets = _as_image(rootlets, "rootlet label map", label=True)
    cord = _as_image(cord, "cord mask", label=True)
    origin, spacing, size = _ras_grid(image)
    labels_zyx = _resample(rootlets, origin, spacing, size, nearest=True)
    cord_zyx = _resample(cord, origin, spacing, size, nearest=True) > 0 if cord is not None else None
    # mid-cord plane: median LPS x of the cord (else of the rootlets, else the grid centre)
    mask = cord_zyx if cord_zyx is not None and cord_zyx.any() else labels_zyx > 0
    if mask.any():
        x_index = int(round(float(np.median(np.nonzero(mask)[2]))))
    else:
        x_index = size[0] // 2
    slice_origin = (origin[0] + x_index * spacing, origin[1], origin[2])
    mri = _resample(image, slice_origin, spacing, (1, size[1], size[2]), nearest=False)[:, :, 0]
    rootlet_projection = labels_zyx.max(axis=2)
    cord_projection = cord_zyx.any(axis=2) if cord_zyx is not None else None
    y0 = origin[1]
    extent = (
        -(y0 - spacing / 2),  # A at the left edge (column 0 = smallest LPS y = most anterior)
        -(y0 + (size[1] - 1) * spacing + spacing / 2),
        origin[2] - spacing / 2,
        origin[2] + (size[2] - 1) * spacing + spacing / 2,
    )
    return {
        "mri": mri,
        "rootlets": rootlet_projection,
        "cord": cord_projection,
        "plane_R_mm": -(origin[0] + x_index * spacing),
        "extent": extent,
        "spacing_mm": spacing,
    }


def _s_range_of_interest(planes, result, discs, margin_mm: float = 20.0):
    """S range (mm) holding every rootlet voxel, every level bound, the PMJ and the discs of the levels shown."""
    left, right, bottom, top = planes["extent"]
    values = []
    rows_with_labels = np.nonzero(planes["rootlets"].any(axis=1))[0]
    if rows_with_labels.size:
        step = planes["spacing_mm"]
        values += [bottom + (rows_with_labels.min()) * step, bottom + (rows_with_labels.max() + 1) * step]
    highest_disc = 9  # T1/T2: the caudal bound of vertebral T1
    if result is not None:
        shown = _shown_rows(result)
        for row in shown:
            values += [row.rostral_S_mm, row.caudal_S_mm]
        if result.pmj_ras is not None:
            values.append(result.pmj_ras[2])
        vertebral = [r.label_value for r in shown if r.level_type == "vertebral"]
        if vertebral:
            highest_disc = max(vertebral) + 1
    values += [d.position_ras[2] for d in discs if d.value <= highest_disc or d.value >= 49]
    if not values:
        return bottom, top
    return max(bottom, min(values) - margin_mm), min(top, max(values) + margin_mm)


def sagittal_qc(image, rootlets, cord=None, discs=None, result: Optional[LevelResult] = None, out_base="sagittal_qc",
                overwrite: bool = False, title: Optional[str] = None, return_layout: bool = False,
                crop: bool = True):
    """Sagittal QC: MRI slice through the cord, rootlets coloured by level, cord outline, discs, level bounds.

    `image`, `rootlets`, `cord`: SimpleITK images or paths (any orientation, any grid: each is resampled into world
    space). `discs`: DiscPoints (RAS mm), an SCT disc-label image / path, or None. `result`: LevelResult whose spinal
    bounds (rostral/caudal S) are drawn as dashed lines in the level colour and as bars in the right margin, and whose
    vertebral levels (down to the one below the lowest spinal level) are bars in the left margin. The view shows the whole image (nothing is cropped away); the
    rootlets are a projection over R–L of the whole volume, drawn opaque in their level colours. With `crop` (default)
    the S range is limited to what matters (every rootlet voxel, level bounds, PMJ, the discs down to T1/T2 or to the
    lowest vertebral level shown, plus 20 mm), never cutting a rootlet; `crop=False` shows the whole field of view.

    Returns [png, svg]; with `return_layout`, ([png, svg], layout) where layout gives the axes box in PNG pixels
    ("axes_px": left, top, right, bottom from the image's top-left corner) and the data limits ("xlim" in A mm,
    "ylim" in S mm), so a caller can find a world point in the PNG.
    """
    planes = sagittal_qc_planes(image, rootlets, cord)
    mri, labels, cord_projection = planes["mri"], planes["rootlets"], planes["cord"]
    disc_points = _disc_points(discs)
    left, right, bottom, top = planes["extent"]
    view_bottom, view_top = _s_range_of_interest(planes, result, disc_points) if crop else (bottom, top)
    width_mm, height_mm = abs(left - right), abs(view_top - view_bottom)
    margin_mm = max(0.2 * width_mm, 14.0)
    plot_w_mm = width_mm + 2 * margin_mm
    height_in = 8.0
    width_in = max(5.5, min(16.0, height_in * 0.86 * plot_w_mm / height_mm + 1.4))
    figure = _new_figure(width_in, height_in)
    ax = figure.add_axes([0.14, 0.07, 0.80, 0.84])
    finite = mri[np.isfinite(mri)]
    vmin, vmax = (np.percentile(finite, [1, 99.5]) if finite.size else (0.0, 1.0))
    if vmax <= vmin:
        vmax = vmin + 1.0
    ax.imshow(mri, cmap="gray", vmin=vmin, vmax=vmax, origin="lower", extent=planes["extent"],
              interpolation="nearest", aspect="equal")
    overlay = np.zeros(labels.shape + (4,), dtype=float)
    present = [int(v) for v in np.unique(labels) if v != 0]
    for value in present:
        overlay[labels == value] = (*level_color(value), 1.0)
    ax.imshow(overlay, origin="lower", extent=planes["extent"], interpolation="nearest", aspect="equal")
    if cord_projection is not None and cord_projection.any():
        ny, nz = cord_projection.shape[1], cord_projection.shape[0]
        xs = np.linspace(left, right, ny, endpoint=False) + (right - left) / (2 * ny)
        zs = np.linspace(bottom, top, nz, endpoint=False) + (top - bottom) / (2 * nz)
        ax.contour(xs, zs, cord_projection.astype(float), levels=[0.5], colors=["red"], linewidths=1.0)
    # level bounds
    x_spinal = (right, right - margin_mm)  # right margin (A decreases to the right)
    x_vert = (left + margin_mm, left)
    if result is not None:
        for row in _shown_rows(result):
            colour = level_color(row.level)
            high, low = max(row.rostral_S_mm, row.caudal_S_mm), min(row.rostral_S_mm, row.caudal_S_mm)
            xs = x_spinal if row.level_type == "spinal" else x_vert
            if row.level_type == "spinal":  # two sub-columns, so overlapping spinal levels stay visible
                half = (xs[1] - xs[0]) / 2
                xs = (xs[0], xs[0] + half) if row.label_value % 2 == 0 else (xs[0] + half, xs[1])
            ax.fill_between(xs, [low, low], [high, high], color=colour, alpha=0.9, linewidth=0.6, edgecolor="black",
                            hatch="//" if row.level_type == "vertebral" else None)
            ax.text(sum(xs) / 2, (low + high) / 2, row.level, ha="center", va="center", fontsize=8,
                    fontweight="bold", color=_text_color(colour))
            if row.level_type == "spinal":
                for s in (low, high):
                    ax.plot([left, right], [s, s], color=colour, linewidth=0.8, linestyle="--")
    for disc in disc_points:
        a, s = disc.position_ras[1], disc.position_ras[2]
        if not (view_bottom <= s <= view_top):
            continue
        ax.plot([a], [s], marker="o", markersize=5, markerfacecolor="white", markeredgecolor="black", linestyle="none")
        ax.annotate(disc.name, xy=(a, s), xytext=(4, 0), textcoords="offset points", fontsize=7, color="white",
                    va="center", bbox=dict(boxstyle="round,pad=0.1", facecolor="black", alpha=0.5, edgecolor="none"))
    ax.set_xlim(left + margin_mm, right - margin_mm)
    ax.set_ylim(view_bottom, view_top)
    ax.set_aspect("equal")
    ax.set_xlabel("A (mm, RAS)   anterior ←  → posterior")
    ax.set_ylabel("S (mm, RAS)")
    ax.text(0.0, 1.005, "vertebral", transform=ax.transAxes, ha="left", va="bottom", fontsize=7)
    ax.text(1.0, 1.005, "spinal", transform=ax.transAxes, ha="right", va="bottom", fontsize=7)
    plane_r = planes["plane_R_mm"] + 0.0 if abs(planes["plane_R_mm"]) >= 0.05 else 0.0
    ax.set_title(title or f"Sagittal QC: MRI slice at R = {plane_r:.1f} mm\nrootlets (max over R–L), cord outline (red)",
                 fontsize=9, pad=14)
    paths = _save(figure, out_base, overwrite)
    if not return_layout:
        return paths
    figure.canvas.draw()
    box = ax.get_window_extent()
    fig_h = figure.get_figheight() * DPI
    layout = {
        "axes_px": (box.x0, fig_h - box.y1, box.x1, fig_h - box.y0),
        "xlim": tuple(ax.get_xlim()),
        "ylim": tuple(ax.get_ylim()),
    }
    return paths, layout

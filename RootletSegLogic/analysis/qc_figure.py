"""Sagittal QC figure in world RAS mm: image, rootlets, cord, discs and level bounds."""

from __future__ import annotations

import os
from typing import List, Optional

import numpy as np

from RootletSegLogic.analysis.figures import (
    DPI,
    new_figure,
    save_figure,
    shown_rows,
    text_color,
)
from RootletSegLogic.levels.colors import level_color
from RootletSegLogic.levels.types import DiscPoint, LevelResult


# ------------------------------------------------------------------------------------------------ sagittal QC
def _as_image(value, what: str, label: bool):
    import SimpleITK as sitk

    from RootletSegLogic.images.reading import read_image, read_label_map

    if value is None or isinstance(value, sitk.Image):
        return value
    return read_label_map(value, what) if label else read_image(value, what)


def _ras_grid(image, max_voxels: int = 30_000_000):
    """Origin, spacing and size (LPS, identity direction) of an axis-aligned grid covering `image`."""
    size = np.array(image.GetSize())
    corners = np.array([[i, j, k] for i in (0, size[0] - 1) for j in (0, size[1] - 1) for k in (0, size[2] - 1)])
    from RootletSegLogic.images.world import voxel_centers_lps

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
    from RootletSegLogic.levels.discs import label_centroids

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
        shown = shown_rows(result)
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
    figure = new_figure(width_in, height_in)
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
        for row in shown_rows(result):
            colour = level_color(row.level)
            high, low = max(row.rostral_S_mm, row.caudal_S_mm), min(row.rostral_S_mm, row.caudal_S_mm)
            xs = x_spinal if row.level_type == "spinal" else x_vert
            if row.level_type == "spinal":  # two sub-columns, so overlapping spinal levels stay visible
                half = (xs[1] - xs[0]) / 2
                xs = (xs[0], xs[0] + half) if row.label_value % 2 == 0 else (xs[0] + half, xs[1])
            ax.fill_between(xs, [low, low], [high, high], color=colour, alpha=0.9, linewidth=0.6, edgecolor="black",
                            hatch="//" if row.level_type == "vertebral" else None)
            ax.text(sum(xs) / 2, (low + high) / 2, row.level, ha="center", va="center", fontsize=8,
                    fontweight="bold", color=text_color(colour))
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
    paths = save_figure(figure, out_base, overwrite)
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

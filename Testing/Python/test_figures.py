"""Figures: real PNG/SVG files, non-trivial; the sagittal QC puts the rootlet colours where the rootlets are."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest
import SimpleITK as sitk
from level_results import result_from_files, synthetic_result

from RootletSegLogic.analysis.bland_altman import group_bland_altman, load_subjects
from RootletSegLogic.analysis.figures import (
    bland_altman_figure,
    bland_altman_plot,
    level_chart,
    level_chart_figure,
    shown_rows,
)
from RootletSegLogic.analysis.qc_figure import sagittal_qc, sagittal_qc_planes
from RootletSegLogic.errors import UserError
from RootletSegLogic.images.orientation import reorient
from RootletSegLogic.images.world import lps_to_ras, voxel_centers_lps
from RootletSegLogic.levels.colors import LEVEL_COLORS, level_color

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _check_files(paths):
    png, svg = paths
    assert png.suffix == ".png" and svg.suffix == ".svg"
    assert png.read_bytes()[:8] == PNG_SIGNATURE and png.stat().st_size > 10_000
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg") and svg.stat().st_size > 10_000
    from matplotlib.image import imread

    pixels = imread(str(png))
    assert pixels.shape[0] > 300 and pixels.shape[1] > 300
    assert np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0).shape[0] > 20  # not a blank image
    return pixels


def _has_colour(pixels, rgb, tolerance=2.5 / 255):
    return np.any(np.all(np.abs(pixels[..., :3] - np.array(rgb)) <= tolerance, axis=-1))


def test_level_colours_are_distinct():
    colours = np.array(list(LEVEL_COLORS.values()))
    assert sorted(LEVEL_COLORS) == list(range(2, 10))
    distances = np.linalg.norm(colours[:, None] - colours[None], axis=-1) + np.eye(len(colours))
    assert distances.min() > 0.15
    assert level_color("C5") == LEVEL_COLORS[5] and level_color("T1") == LEVEL_COLORS[9]


def test_level_chart(tmp_path):
    paths = level_chart(synthetic_result(), tmp_path / "chart")
    pixels = _check_files(paths)
    for value in range(2, 9):  # every level appears in its colour
        assert _has_colour(pixels, LEVEL_COLORS[value]), value
    with pytest.raises(UserError, match="already exists"):
        level_chart(synthetic_result(), tmp_path / "chart.png")
    level_chart(synthetic_result(with_pmj=False), tmp_path / "chart_s")
    assert (tmp_path / "chart_s.svg").exists()


def _bars(ax):
    """(x centre, bottom, top, face RGB) of every bar, in drawing order."""
    return [(p.get_x() + p.get_width() / 2, p.get_y(), p.get_y() + p.get_height(), tuple(p.get_facecolor()[:3]))
            for p in ax.patches]


@pytest.mark.parametrize("with_pmj", [True, False])
def test_level_chart_bars_are_the_table_rows(with_pmj):
    """One bar per level from its rostral to its caudal bound (mm), in its colour and column, labelled at its middle;
    with a PMJ the distance axis is inverted (rostral up), without it the S axis points up."""
    result = synthetic_result(with_pmj=with_pmj)
    ax = level_chart_figure(result).axes[0]
    rows = shown_rows(result)
    assert len(rows) == 14 and len(ax.patches) == len(rows)
    for (x, bottom, top, colour), row in zip(_bars(ax), rows):
        if with_pmj:
            span = (row.rostral_pmj_mm, row.caudal_pmj_mm)
        else:
            span = (row.rostral_S_mm, row.caudal_S_mm)
        assert (bottom, top) == pytest.approx((min(span), max(span)))
        assert colour == pytest.approx(level_color(row.level), abs=1e-6)
        if row.level_type == "vertebral":
            assert x == pytest.approx(0.0)
        else:  # odd label values right of the spinal column, even ones left, so overlaps stay visible
            assert x == pytest.approx(1.0 + (0.06 if row.label_value % 2 else -0.06))
    labels = [(t.get_text(), t.get_position()) for t in ax.texts if t.get_text() in {r.level for r in rows}]
    assert [name for name, _ in labels] == [r.level for r in rows]
    for (_, (_, y)), (_, bottom, top, _) in zip(labels, _bars(ax)):
        assert y == pytest.approx((bottom + top) / 2)
    low, high = ax.get_ylim()
    if with_pmj:
        assert ax.yaxis_inverted() and high < 0.0 < low  # distance grows downward; the PMJ (0 mm) is shown
        assert "distance below the PMJ" in ax.get_ylabel()
        rostral_first = [r for r in rows if r.level_type == "spinal"]
        assert [r.rostral_pmj_mm for r in rostral_first] == sorted(r.rostral_pmj_mm for r in rostral_first)
    else:
        assert not ax.yaxis_inverted() and "S coordinate" in ax.get_ylabel()
    spans = [v for _, b, t, _ in _bars(ax) for v in (b, t)]
    assert min(low, high) < min(spans) and max(spans) < max(low, high)  # every bar is inside the view
    assert [t.get_text() for t in ax.get_xticklabels()][0].startswith("vertebral levels")


def test_bland_altman_points_and_lines_are_the_statistics(tmp_path):
    from RootletSegLogic.levels.planning import write_level_outputs

    rng = np.random.default_rng(3)
    paths = []
    for i in range(8):
        path = tmp_path / f"sub-{i}.tsv"
        write_level_outputs(synthetic_result(shift=float(rng.normal(0, 3))), tsv_path=path)
        paths.append(path)
    stats = group_bland_altman(load_subjects(paths))
    figure = bland_altman_plot(stats)
    pairings = [p for p in ("not_shifted", "shifted") if any(r["pairing"] == p for r in stats.rows)]
    assert len(figure.axes) == len(pairings) >= 1
    for ax, pairing in zip(figure.axes, pairings):
        assert ax.get_title() == pairing.replace("_", " ")
        points = [p for p in stats.points if p["pairing"] == pairing]
        plotted = np.concatenate([c.get_offsets() for c in ax.collections])
        expected = np.array([[p["mean_mm"], p["difference_mm"]] for p in sorted(
            points, key=lambda p: [q["vertebral_level"] for q in points].index(p["vertebral_level"]))])
        assert np.array_equal(plotted, expected)  # every point, at (mean, difference), grouped by level
        for collection in ax.collections:  # each level's points in its colour
            level = collection.get_label().split()[1]
            assert tuple(collection.get_facecolor()[0][:3]) == pytest.approx(level_color(level), abs=1e-6)
        overall = next(r for r in stats.rows if r["pairing"] == pairing and r["vertebral_level"] == "all")
        horizontal = {(line.get_linestyle(), line.get_ydata()[0]) for line in ax.lines
                      if line.get_color() == "black" and line.get_ydata()[0] == line.get_ydata()[1]}
        assert horizontal == {("-", overall["bias_mm"]), ("--", overall["loa_lower_mm"]),
                              ("--", overall["loa_upper_mm"])}
        for row in (r for r in stats.rows if r["pairing"] == pairing and r["vertebral_level"] != "all"):
            means = [p["mean_mm"] for p in points if p["vertebral_level"] == row["vertebral_level"]]
            bias_lines = [line for line in ax.lines
                          if tuple(line.get_xydata()[0]) == (min(means) - 2, row["bias_mm"])]
            assert len(bias_lines) == 1 and tuple(bias_lines[0].get_xydata()[1]) == (max(means) + 2, row["bias_mm"])
        notes = [t.get_text() for t in ax.texts]
        assert f"median {overall['bias_mm']:.2f}" in notes and f"97.5% {overall['loa_upper_mm']:.2f}" in notes
        assert any(note.startswith(f"n = {overall['n']}") for note in notes)


def test_bland_altman_figure(tmp_path):
    from RootletSegLogic.levels.planning import write_level_outputs

    rng = np.random.default_rng(3)
    paths = []
    for i in range(8):
        path = tmp_path / f"sub-{i}.tsv"
        write_level_outputs(synthetic_result(shift=float(rng.normal(0, 3))), tsv_path=path)
        paths.append(path)
    stats = group_bland_altman(load_subjects(paths))
    pixels = _check_files(bland_altman_figure(stats, tmp_path / "ba"))
    assert _has_colour(pixels, LEVEL_COLORS[2], tolerance=4 / 255)


def _sct_t2(sct_data):
    folder = sct_data / "t2"
    return folder / "t2.nii.gz", folder / "t2_seg-deepseg_rootlets.nii.gz", folder / "t2_seg-manual.nii.gz"


def test_sagittal_qc_puts_rootlet_colours_on_the_rootlets(sct_data, tmp_path):
    image, rootlets, cord = _sct_t2(sct_data)
    result = result_from_files(rootlets, cord)
    paths, layout = sagittal_qc(image, rootlets, cord, None, result, tmp_path / "qc", return_layout=True)
    pixels = _check_files(paths)
    planes = sagittal_qc_planes(image, rootlets, cord)
    labels = planes["rootlets"]
    left, right, bottom, top = planes["extent"]
    spacing = planes["spacing_mm"]
    x0, y0, x1, y1 = layout["axes_px"]
    (xl, xr), (yb, yt) = layout["xlim"], layout["ylim"]

    def to_pixel(a, s):
        col = x0 + (a - xl) / (xr - xl) * (x1 - x0)
        row = y0 + (yt - s) / (yt - yb) * (y1 - y0)
        return int(round(row)), int(round(col))

    # independent check of the projection: each level's S range equals that of its voxels in world space
    array = sitk.GetArrayFromImage(sitk.ReadImage(str(rootlets)))
    img = sitk.ReadImage(str(rootlets))
    for value in (3, 4, 5, 6):
        world = lps_to_ras(voxel_centers_lps(img, np.argwhere(array == value)[:, ::-1]))
        rows = np.nonzero((labels == value).any(axis=1))[0]
        s_values = bottom + spacing / 2 + rows * spacing
        assert s_values.max() == pytest.approx(world[:, 2].max(), abs=spacing)
        assert s_values.min() == pytest.approx(world[:, 2].min(), abs=spacing)
        # the PNG pixel at the centre of each projected rootlet voxel has the level colour (a few are covered by
        # the dashed bound lines, drawn through the extreme voxels' centres, or by the cord outline)
        hits = 0
        inner = list(zip(*np.nonzero(labels == value)))
        assert inner, value
        for z, y in inner:
            a = left - (y + 0.5) * spacing  # A decreases to the right
            s = bottom + (z + 0.5) * spacing
            row, col = to_pixel(a, s)
            if np.allclose(pixels[row, col, :3], level_color(value), atol=2.5 / 255):
                hits += 1
        assert hits >= 0.75 * len(inner), (value, hits, len(inner))
    # and a level's colour does not appear where no rootlet is: the top-left MRI corner is grey
    row, col = to_pixel(left - 2 * spacing, top - 2 * spacing)
    r, g, b = pixels[row, col, :3]
    assert abs(r - g) < 0.02 and abs(g - b) < 0.02


def test_sagittal_qc_does_not_depend_on_file_orientation(sct_data, tmp_path):
    image, rootlets, cord = (sitk.ReadImage(str(p)) for p in _sct_t2(sct_data))
    reference = sagittal_qc_planes(image, rootlets, cord)
    for code in ("RAS", "LPI", "SAR"):
        planes = sagittal_qc_planes(*(reorient(im, code) for im in (image, rootlets, cord)))
        np.testing.assert_array_equal(planes["rootlets"], reference["rootlets"])
        np.testing.assert_array_equal(planes["cord"], reference["cord"])
        np.testing.assert_allclose(planes["mri"], reference["mri"], atol=1e-3)
        assert planes["extent"] == pytest.approx(reference["extent"])


def test_sagittal_qc_pam50_with_discs(sct_data, tmp_path):
    template = sct_data / "template"
    files = [template / f"PAM50_small_{n}.nii.gz" for n in ("t2", "rootlets", "cord", "label_disc")]
    result = result_from_files(files[1], files[2], files[3])
    pixels = _check_files(sagittal_qc(*files, result, tmp_path / "qc_pam"))
    for value in range(2, 9):
        assert _has_colour(pixels, LEVEL_COLORS[value]), value
    planes = sagittal_qc_planes(*files[:3])
    assert planes["spacing_mm"] == pytest.approx(1.0)  # 1x1x2 mm resampled to 1 mm: physical aspect
    assert set(np.unique(planes["rootlets"])) == set(range(0, 9)) - {1}  # nearest neighbour: no blended labels

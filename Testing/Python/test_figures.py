"""Figures: real PNG/SVG files, non-trivial; the sagittal QC puts the rootlet colours where the rootlets are."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest
import SimpleITK as sitk
from level_results import result_from_files, synthetic_result

from RootletSegLogic.analysis.bland_altman import group_bland_altman, load_subjects
from RootletSegLogic.analysis.figures import bland_altman_figure, level_chart
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

"""Property-based tests (hypothesis) of the level computation on random label maps, spacings and orientations."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scipy import ndimage

from RootletSegLogic.errors import UserError
from RootletSegLogic.images.orientation import (
    ALL_AXCODES,
    direction_for_axcodes,
    reorient,
)
from RootletSegLogic.images.world import lps_to_ras, voxel_centers_lps
from RootletSegLogic.levels.method import compute_levels
from RootletSegLogic.levels.types import DiscPoint

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def label_maps(draw):
    """(rootlets, cord) sitk images on one random small grid: a cord block and sparse random rootlet labels."""
    shape = tuple(draw(st.integers(6, 14)) for _ in range(3))  # numpy (z, y, x)
    seed = draw(st.integers(0, 2 ** 31 - 1))
    rng = np.random.default_rng(seed)
    cord = np.zeros(shape, np.uint8)
    z0, z1 = sorted(rng.integers(0, shape[0], 2))
    y0 = rng.integers(0, shape[1] - 2)
    x0 = rng.integers(0, shape[2] - 2)
    cord[z0:z1 + 1, y0:y0 + 3, x0:x0 + 3] = 1
    density = draw(st.floats(0.01, 0.2))
    roots = np.where(rng.random(shape) < density, rng.integers(2, 10, shape), 0).astype(np.uint8)
    spacing = tuple(draw(st.sampled_from([0.5, 0.8, 1.0, 2.0, 3.0])) for _ in range(3))
    code = draw(st.sampled_from(ALL_AXCODES))
    origin = tuple(draw(st.floats(-50, 50)) for _ in range(3))
    images = []
    for arr in (roots, cord):
        img = sitk.GetImageFromArray(arr)
        img.SetSpacing(spacing)
        img.SetOrigin(origin)
        img.SetDirection(direction_for_axcodes(code))
        images.append(img)
    return images[0], images[1]


def _entry_zone_s(rootlets, cord):
    roots = sitk.GetArrayFromImage(rootlets)
    zone = ndimage.distance_transform_edt(sitk.GetArrayFromImage(cord) == 0) <= 3.0
    out = {}
    for value in range(2, 10):
        zyx = np.argwhere((roots == value) & zone)
        if len(zyx):
            out[value] = lps_to_ras(voxel_centers_lps(rootlets, zyx[:, ::-1]))[:, 2]
    return out


def _compute(rootlets, cord, **kwargs):
    try:
        return compute_levels(rootlets, cord, **kwargs)
    except UserError as error:
        assert any(m in str(error) for m in ("within 3 voxels", "No rootlet voxel", "is empty"))
        assume(False)


@SETTINGS
@given(label_maps())
def test_bounds_contain_every_entry_zone_voxel(maps):
    rootlets, cord = maps
    result = _compute(rootlets, cord)
    zone = _entry_zone_s(rootlets, cord)
    spinal = {row.label_value: row for row in result.spinal()}
    assert set(spinal) == set(zone)
    for value, s in zone.items():
        row = spinal[value]
        assert row.caudal_S_mm == pytest.approx(s.min()) and row.rostral_S_mm == pytest.approx(s.max())
        assert row.n_voxels == len(s)
        assert row.height_mm >= 0.0
        assert row.rostral_distance_mm <= row.midpoint_distance_mm + 1e-9 <= row.caudal_distance_mm + 2e-9
    present = sorted(zone)
    if any(v not in zone for v in range(present[0], present[-1] + 1)):
        assert any("missing" in w for w in result.warnings)


@SETTINGS
@given(label_maps())
def test_gapless_levels_tile_without_gaps(maps):
    rootlets, cord = maps
    result = _compute(rootlets, cord, method="gapless")
    rows = result.spinal()
    for row in rows:
        assert row.height_mm >= 0.0 and row.method == "gapless"
    for row, nxt in zip(rows, rows[1:]):
        if nxt.rostral_distance_mm >= row.rostral_distance_mm:
            assert row.caudal_distance_mm == pytest.approx(nxt.rostral_distance_mm)
            assert row.caudal_S_mm == pytest.approx(nxt.rostral_S_mm)
    # the gapless levels cover the paper levels' whole span when they are in order
    paper = compute_levels(rootlets, cord).spinal()
    assert rows[0].rostral_S_mm == paper[0].rostral_S_mm and rows[-1].caudal_S_mm == paper[-1].caudal_S_mm


@SETTINGS
@given(label_maps())
def test_gapless_caudal_levels_tile_without_gaps(maps):
    """SCT 5111: a level starts where the level above ends, unless that end lies below its own end."""
    rootlets, cord = maps
    rows = _compute(rootlets, cord, method="gapless-caudal").spinal()
    paper = compute_levels(rootlets, cord).spinal()
    for row, p_row in zip(rows, paper):
        assert row.height_mm >= 0.0 and row.method == "gapless-caudal"
        assert row.caudal_S_mm == p_row.caudal_S_mm
    for (above, p_row), row in zip(zip(rows, paper[1:]), rows[1:]):
        if above.caudal_distance_mm <= p_row.caudal_distance_mm:
            assert row.rostral_distance_mm == pytest.approx(above.caudal_distance_mm)
        else:
            assert row.rostral_S_mm == p_row.rostral_S_mm


@SETTINGS
@given(label_maps(), st.sampled_from(ALL_AXCODES), st.sampled_from(["paper", "gapless"]))
def test_orientation_invariance(maps, code, method):
    rootlets, cord = maps
    a = _compute(rootlets, cord, method=method)
    b = compute_levels(reorient(rootlets, code), reorient(cord, code), method=method)
    assert len(a.rows) == len(b.rows)
    for ra, rb in zip(a.rows, b.rows):
        assert (ra.level, ra.n_voxels) == (rb.level, rb.n_voxels)
        np.testing.assert_allclose(
            [ra.rostral_S_mm, ra.caudal_S_mm, ra.height_mm, ra.midpoint_distance_mm, *ra.midpoint_ras],
            [rb.rostral_S_mm, rb.caudal_S_mm, rb.height_mm, rb.midpoint_distance_mm, *rb.midpoint_ras], atol=1e-6)
    assert a.warnings == b.warnings


@SETTINGS
@given(label_maps(), st.lists(st.floats(0.5, 15.0), min_size=2, max_size=6), st.booleans())
def test_vertebral_levels_and_overlaps(maps, gaps, with_pmj):
    rootlets, cord = maps
    probe = _compute(rootlets, cord)
    top = max(r.rostral_S_mm for r in probe.spinal()) + 5.0
    s = top - np.cumsum(gaps)
    discs = [DiscPoint(2 + n, (0.0, 0.0, float(v))) for n, v in enumerate(s)]
    pmj = (0.0, 0.0, top + 1.0) if with_pmj else None
    result = compute_levels(rootlets, cord, discs, pmj)
    vertebral = result.vertebral()
    assert len(vertebral) == len(discs) - 1
    for row in vertebral:
        assert row.height_mm >= 0.0
    for row in result.spinal():
        fractions = [o.fraction for o in result.overlaps if o.spinal_level == row.level]
        assert all(0.0 <= f <= 1.0 + 1e-9 for f in fractions)
        assert sum(fractions) <= 1.0 + 1e-6
    for p in result.pairings:
        assert p.difference_mm == pytest.approx(p.vertebral_midpoint_mm - p.spinal_midpoint_mm)

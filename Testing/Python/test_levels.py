"""Spinal and vertebral levels on real MRI data (sct_testing_data) and on the phantom, checked against an
independent NumPy computation written here, anatomy, and orientation invariance (all 48 axis-aligned codes)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from RootletSegLogic.errors import UserError
from RootletSegLogic.images.grid import same_grid
from RootletSegLogic.images.orientation import (
    ALL_AXCODES,
    Reorientation,
    axcodes_of,
    direction_for_axcodes,
    direction_matrix,
    reorient,
)
from RootletSegLogic.images.reading import read_label_map
from RootletSegLogic.levels.discs import (
    discs_from_label_image,
    landmarks_from_label_image,
    pmj_from_label_image,
)
from RootletSegLogic.levels.entry_zone import spinal_level_label_image
from RootletSegLogic.levels.method import compute_levels
from RootletSegLogic.levels.types import DiscPoint
from RootletSegLogic.synthetic.phantom import make_phantom


# --------------------------------------------------------------------------------- independent computation
def _read(path):
    image = sitk.ReadImage(str(path))
    return image, np.asarray(sitk.GetArrayFromImage(image))


def _world_ras(image, zyx):
    """RAS mm of voxel centres, written plainly: LPS = origin + D @ (spacing * ijk), then negate x, y."""
    d = np.array(image.GetDirection()).reshape(3, 3)
    ijk = zyx[:, ::-1].astype(float) * np.array(image.GetSpacing())
    lps = ijk @ d.T + np.array(image.GetOrigin())
    return lps * np.array([-1.0, -1.0, 1.0])


def independent_levels(rootlets_img, cord_img, pmj_ras=None):
    """{value: (rostral S, caudal S, n, rostral pmj, caudal pmj)}: EDT entry zone, raw (unsmoothed) centerline."""
    roots = sitk.GetArrayFromImage(rootlets_img)
    cord = sitk.GetArrayFromImage(cord_img) > 0
    zone = ndimage.distance_transform_edt(~cord) <= 3.0  # voxel units: same set as a radius-3 ball dilation
    out = {}
    # centerline: centroid per slice along the voxel axis closest to S
    d = np.array(cord_img.GetDirection()).reshape(3, 3)
    axis_zyx = 2 - int(np.argmax(np.abs(d[2])))
    czyx = np.argwhere(cord)
    cras = _world_ras(cord_img, czyx)
    pts = []
    for s in np.unique(czyx[:, axis_zyx]):
        pts.append(cras[czyx[:, axis_zyx] == s].mean(axis=0))
    pts = np.array(sorted(pts, key=lambda p: -p[2]))
    if pmj_ras is not None and pmj_ras[2] > pts[0, 2]:
        pts = np.vstack([pmj_ras, pts])
    arc = np.concatenate([[0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])

    def dist(s):
        return float(np.interp(s, pts[::-1, 2], arc[::-1]))

    for value in range(2, 10):
        zyx = np.argwhere((roots == value) & zone)
        if len(zyx) == 0:
            continue
        s = _world_ras(rootlets_img, zyx)[:, 2]
        out[value] = (s.max(), s.min(), len(zyx), dist(s.max()), dist(s.min()))
    return out, dist


def _files(sct_data, name):
    if name == "pam50":
        t = sct_data / "template"
        return dict(rootlets=t / "PAM50_small_rootlets.nii.gz", cord=t / "PAM50_small_cord.nii.gz",
                    discs=t / "PAM50_small_label_disc.nii.gz", pmj=t / "PAM50_small_t2_pmj_manual.nii.gz")
    t = sct_data / "t2"
    rootlets = "t2_seg-deepseg_rootlets.nii.gz" if name == "t2" else "t2_seg-deepseg_rootlets-manual.nii.gz"
    return dict(rootlets=t / rootlets, cord=t / "t2_seg-manual.nii.gz")


def _load(files):
    rootlets = read_label_map(files["rootlets"])
    cord = read_label_map(files["cord"])
    disc_points, pmj = [], None
    if "discs" in files:
        disc_points = discs_from_label_image(read_label_map(files["discs"]))
        pmj = pmj_from_label_image(read_label_map(files["pmj"]))
    return rootlets, cord, disc_points, pmj


# ------------------------------------------------------------------------------------------------ real data
def test_pam50_small_against_independent_computation(sct_data):
    files = _files(sct_data, "pam50")
    rootlets, cord, disc_points, pmj = _load(files)
    assert axcodes_of(rootlets) == "LAS"
    result = compute_levels(rootlets, cord, disc_points, pmj)
    assert result.distance_reference == "pmj" and result.method == "paper"
    expected, dist = independent_levels(rootlets, cord, pmj)
    voxel_s = 2.0  # PAM50_small: 1 x 1 x 2 mm, S along k
    spinal = {row.label_value: row for row in result.spinal()}
    assert set(spinal) == set(expected)
    for value, (rs, cs, n, rp, cp) in expected.items():
        row = spinal[value]
        assert row.rostral_S_mm == pytest.approx(rs, abs=1e-6)
        assert row.caudal_S_mm == pytest.approx(cs, abs=1e-6)
        assert row.n_voxels == n
        assert row.rostral_pmj_mm == pytest.approx(rp, abs=voxel_s)
        assert row.caudal_pmj_mm == pytest.approx(cp, abs=voxel_s)
        assert row.midpoint_pmj_mm == pytest.approx((rp + cp) / 2, abs=voxel_s)
        assert row.height_mm == pytest.approx(cp - rp, abs=voxel_s)
    # vertebral levels: disc N and N+1, by the disc's S on the independent centerline
    disc_img, disc_arr = _read(files["discs"])
    disc_s = {}
    for value in np.unique(disc_arr):
        if value in (0, 49, 50):
            continue
        zyx = np.argwhere(disc_arr == value)
        disc_s[int(value)] = _world_ras(disc_img, zyx)[:, 2].mean()
    vertebral = {row.label_value: row for row in result.vertebral()}
    assert set(vertebral) == {v for v in disc_s if v + 1 in disc_s}
    for value, row in vertebral.items():
        assert row.rostral_S_mm == pytest.approx(disc_s[value], abs=voxel_s)
        assert row.caudal_S_mm == pytest.approx(disc_s[value + 1], abs=voxel_s)
        assert row.rostral_pmj_mm == pytest.approx(dist(disc_s[value]), abs=voxel_s)
        assert row.caudal_pmj_mm == pytest.approx(dist(disc_s[value + 1]), abs=voxel_s)
        assert row.method == "discs"
    names = [row.level for row in result.vertebral()]
    assert names[:7] == ["C2", "C3", "C4", "C5", "C6", "C7", "T1"]


def test_pam50_small_anatomy(sct_data):
    rootlets, cord, disc_points, pmj = _load(_files(sct_data, "pam50"))
    result = compute_levels(rootlets, cord, disc_points, pmj)
    spinal = result.spinal()
    assert [r.level for r in spinal] == ["C3", "C4", "C5", "C6", "C7", "C8"]
    # C2's rootlets in PAM50_small lie above the cord mask's top, beyond 3 voxels: reported, not hidden
    assert any("C2" in w and "within 3 voxels" in w for w in result.warnings)
    for upper, lower in zip(spinal, spinal[1:]):
        assert upper.rostral_S_mm > lower.rostral_S_mm
        assert upper.midpoint_pmj_mm < lower.midpoint_pmj_mm
    for row in spinal:
        assert row.caudal_S_mm <= row.rostral_S_mm < pmj[2]
        assert 0 < row.rostral_pmj_mm <= row.midpoint_pmj_mm <= row.caudal_pmj_mm
        assert 4.0 <= row.height_mm <= 25.0
    for row in result.vertebral()[:7]:  # C2..T1
        assert 10.0 <= row.height_mm <= 25.0
    # spinal C(n+1) lies at vertebra Cn in the template: the shifted pairing is nearly unbiased
    shifted = [p for p in result.pairings if p.pairing == "shifted"]
    not_shifted = [p for p in result.pairings if p.pairing == "not_shifted"]
    assert len(shifted) == 6 and len(not_shifted) == 6
    assert np.median([abs(p.difference_mm) for p in shifted]) < 3.0
    assert all(p.difference_mm > 10.0 for p in not_shifted)
    for p in result.pairings:
        assert p.difference_mm == pytest.approx(p.vertebral_midpoint_mm - p.spinal_midpoint_mm)
        assert p.mean_mm == pytest.approx((p.vertebral_midpoint_mm + p.spinal_midpoint_mm) / 2)
    # overlaps: fractions of each spinal level's height sum to at most 1
    for row in spinal:
        fractions = [o.fraction for o in result.overlaps if o.spinal_level == row.level]
        assert fractions and sum(fractions) == pytest.approx(1.0, abs=1e-6)
    # label image marks cord voxels of each level's slices
    label = spinal_level_label_image(rootlets, cord, result)
    assert same_grid(label, cord)
    arr = sitk.GetArrayFromImage(label)
    assert set(np.unique(arr)) == {0} | {r.label_value for r in spinal}
    cord_arr = sitk.GetArrayFromImage(cord) > 0
    assert not np.any(arr[~cord_arr])
    for row in spinal:
        zyx = np.argwhere(arr == row.label_value)
        s = _world_ras(label, zyx)[:, 2]
        assert s.min() >= row.caudal_S_mm - 1e-6 and s.max() <= row.rostral_S_mm + 1e-6


@pytest.mark.parametrize("name", ["t2", "t2-manual"])
def test_t2_psr_against_independent_computation(sct_data, name):
    rootlets, cord, _, _ = _load(_files(sct_data, name))
    assert axcodes_of(rootlets) == "PSR"  # sagittal: S is the 2nd voxel axis
    result = compute_levels(rootlets, cord)
    assert result.distance_reference == "S-axis"
    expected, _ = independent_levels(rootlets, cord)
    spinal = {row.label_value: row for row in result.spinal()}
    assert set(spinal) == set(expected)
    top = result.reference_S_mm
    assert top >= max(r.rostral_S_mm for r in result.spinal())
    for value, (rs, cs, n, _, _) in expected.items():
        row = spinal[value]
        assert (row.rostral_S_mm, row.caudal_S_mm, row.n_voxels) == (pytest.approx(rs), pytest.approx(cs), n)
        assert row.rostral_pmj_mm is None and row.midpoint_pmj_mm is None
        assert row.rostral_distance_mm == pytest.approx(top - rs)
        assert row.caudal_distance_mm == pytest.approx(top - cs)
        assert row.height_mm == pytest.approx(rs - cs)
        assert 1.0 <= row.height_mm <= 25.0
    ordered = [spinal[v] for v in sorted(spinal)]
    for upper, lower in zip(ordered, ordered[1:]):
        assert upper.midpoint_distance_mm < lower.midpoint_distance_mm


def _rows_mm(result):
    out = []
    for row in result.rows:
        values = [row.rostral_S_mm, row.caudal_S_mm, row.height_mm, row.rostral_distance_mm, row.caudal_distance_mm,
                  row.midpoint_distance_mm, *row.rostral_ras, *row.caudal_ras, *row.midpoint_ras]
        if row.rostral_pmj_mm is not None:
            values += [row.rostral_pmj_mm, row.caudal_pmj_mm, row.midpoint_pmj_mm]
        out.append(((row.level_type, row.level, row.n_voxels, row.method), np.array(values)))
    return out


def _assert_same_mm(a, b, tol=1e-6):
    ra, rb = _rows_mm(a), _rows_mm(b)
    assert [k for k, _ in ra] == [k for k, _ in rb]
    for (key, va), (_, vb) in zip(ra, rb):
        np.testing.assert_allclose(va, vb, atol=tol, err_msg=str(key))
    assert [(o.spinal_level, o.vertebral_level) for o in a.overlaps] == [(o.spinal_level, o.vertebral_level) for o in b.overlaps]
    np.testing.assert_allclose([o.fraction for o in a.overlaps], [o.fraction for o in b.overlaps], atol=tol)
    np.testing.assert_allclose([p.difference_mm for p in a.pairings], [p.difference_mm for p in b.pairings], atol=tol)
    assert a.warnings == b.warnings


def test_pam50_small_same_mm_in_all_48_orientations(sct_data):
    files = _files(sct_data, "pam50")
    rootlets, cord, _, _ = _load(files)
    disc_img = read_label_map(files["discs"])
    pmj_img = read_label_map(files["pmj"])
    reference = compute_levels(rootlets, cord, discs_from_label_image(disc_img),
                                      pmj_from_label_image(pmj_img))
    ref_label = sitk.GetArrayFromImage(spinal_level_label_image(rootlets, cord, reference))
    for code in ALL_AXCODES:
        r, c = reorient(rootlets, code), reorient(cord, code)
        d = discs_from_label_image(reorient(disc_img, code))
        p = pmj_from_label_image(reorient(pmj_img, code))
        result = compute_levels(r, c, d, p)
        _assert_same_mm(reference, result)
        # the label image is the same data, moved with the grid
        label = spinal_level_label_image(r, c, result)
        back = Reorientation(rootlets, code).restore(label)
        np.testing.assert_array_equal(sitk.GetArrayFromImage(back), ref_label)


@pytest.mark.parametrize("code", ["RAS", "LPI", "SRA", "IPL", "ASL"])
def test_t2_same_mm_in_other_orientations(sct_data, code):
    rootlets, cord, _, _ = _load(_files(sct_data, "t2-manual"))
    for method in ("paper", "gapless"):
        reference = compute_levels(rootlets, cord, method=method)
        result = compute_levels(reorient(rootlets, code), reorient(cord, code), method=method)
        _assert_same_mm(reference, result)


def test_oblique_grid_uses_world_s(sct_data):
    """A rotated direction (same voxels, tilted 20 degrees about R-L): bounds follow the world S of voxel centres."""
    rootlets, cord, _, _ = _load(_files(sct_data, "t2-manual"))
    angle = np.deg2rad(20)
    rot = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    direction = tuple((rot @ direction_matrix(rootlets)).ravel())
    for image in (rootlets, cord):
        image.SetDirection(direction)
    result = compute_levels(rootlets, cord)
    expected, _ = independent_levels(rootlets, cord)
    for row in result.spinal():
        rs, cs, n, _, _ = expected[row.label_value]
        assert (row.rostral_S_mm, row.caudal_S_mm, row.n_voxels) == (pytest.approx(rs), pytest.approx(cs), n)


# ------------------------------------------------------------------------------------------------- phantom
def test_phantom_truth_recovered():
    for seed in (0, 3):
        ph = make_phantom(seed)
        disc_points, pmj = landmarks_from_label_image(ph.discs)
        if pmj is None:
            pmj = pmj_from_label_image(ph.pmj)
        result = compute_levels(ph.rootlets, ph.cord, disc_points, pmj)
        assert not [w for w in result.warnings if "missing" in w]
        truth = ph.truth["levels"]
        spinal = {row.level: row for row in result.spinal()}
        assert set(spinal) == set(truth)
        voxel = 1.0
        for name, t in truth.items():
            assert spinal[name].rostral_S_mm == pytest.approx(t["rostral_S_mm"], abs=voxel)
            assert spinal[name].caudal_S_mm == pytest.approx(t["caudal_S_mm"], abs=voxel)
            assert spinal[name].n_voxels == t["n_voxels"]
        for row in result.vertebral():
            top = ph.truth["discs"][str(row.label_value)]["position_ras"][2]
            bottom = ph.truth["discs"][str(row.label_value + 1)]["position_ras"][2]
            assert row.rostral_S_mm == pytest.approx(top, abs=1.5 * voxel)
            assert row.caudal_S_mm == pytest.approx(bottom, abs=1.5 * voxel)
        assert pmj == pytest.approx(tuple(ph.truth["pmj_ras"]))
        # the phantom places spinal C(n+1) at vertebra Cn, shifted caudally more at lower levels
        shifted = [p.difference_mm for p in result.pairings if p.pairing == "shifted"]
        assert shifted and all(abs(d) < 15 for d in shifted)


def test_phantom_same_mm_in_all_48_orientations():
    ph = make_phantom(1)
    disc_points = discs_from_label_image(ph.discs)
    pmj = pmj_from_label_image(ph.pmj)
    for method in ("paper", "gapless"):
        reference = compute_levels(ph.rootlets, ph.cord, disc_points, pmj, method=method)
        for code in ALL_AXCODES:
            r, c = reorient(ph.rootlets, code), reorient(ph.cord, code)
            d = discs_from_label_image(reorient(ph.discs, code))
            p = pmj_from_label_image(reorient(ph.pmj, code))
            _assert_same_mm(reference, compute_levels(r, c, d, p, method=method))


# ------------------------------------------------------------------------------------------ methods, checks
def test_gapless_and_rootlets_only_on_pam50(sct_data):
    rootlets, cord, disc_points, pmj = _load(_files(sct_data, "pam50"))
    paper = compute_levels(rootlets, cord, disc_points, pmj)
    gapless = compute_levels(rootlets, cord, disc_points, pmj, method="gapless")
    assert gapless.method == "gapless" and all(r.method == "gapless" for r in gapless.spinal())
    rows = gapless.spinal()
    for row, nxt in zip(rows, rows[1:]):
        assert row.caudal_pmj_mm == pytest.approx(nxt.rostral_pmj_mm)
        assert row.caudal_S_mm == pytest.approx(nxt.rostral_S_mm)
    for p_row, g_row in zip(paper.spinal(), rows):
        assert g_row.rostral_S_mm == p_row.rostral_S_mm
    assert rows[-1].caudal_S_mm == paper.spinal()[-1].caudal_S_mm
    only = compute_levels(rootlets, None, disc_points, pmj)
    assert only.method == "rootlets-only" and all(r.method == "rootlets-only" for r in only.spinal())
    assert any("not the paper's method (no spinal cord mask)" in w for w in only.warnings)
    assert "C2" in [r.level for r in only.spinal()]  # all rootlet voxels count
    for row in only.spinal():  # without a cord, PMJ distances run along S
        assert row.rostral_pmj_mm == pytest.approx(pmj[2] - row.rostral_S_mm)
        assert row.caudal_pmj_mm == pytest.approx(pmj[2] - row.caudal_S_mm)
    assert any("along the S axis" in w for w in only.warnings)


def test_gapless_caudal_sct5111_on_pam50(sct_data):
    """SCT issue 5111's definition: each level from the caudal end of the level above to its own caudal end."""
    rootlets, cord, disc_points, pmj = _load(_files(sct_data, "pam50"))
    paper = compute_levels(rootlets, cord, disc_points, pmj).spinal()
    caudal = compute_levels(rootlets, cord, disc_points, pmj, method="gapless-caudal")
    rows = caudal.spinal()
    assert caudal.method == "gapless-caudal" and all(r.method == "gapless-caudal" for r in rows)
    assert rows[0].rostral_S_mm == paper[0].rostral_S_mm  # the first level keeps its own rostral end
    for p_row, c_row in zip(paper, rows):
        assert c_row.caudal_S_mm == p_row.caudal_S_mm  # every level keeps its own caudal end
    for above, row in zip(rows, rows[1:]):
        assert row.rostral_S_mm == pytest.approx(above.caudal_S_mm)
        assert row.rostral_pmj_mm == pytest.approx(above.caudal_pmj_mm)
        assert row.height_mm == pytest.approx(row.caudal_pmj_mm - row.rostral_pmj_mm)
        assert row.midpoint_pmj_mm == pytest.approx((row.caudal_pmj_mm + row.rostral_pmj_mm) / 2)
    # the paper's rows are untouched by the variants (same result object types, fresh computation)
    again = compute_levels(rootlets, cord, disc_points, pmj).spinal()
    assert [(r.rostral_S_mm, r.caudal_S_mm, r.midpoint_pmj_mm) for r in again] == \
        [(r.rostral_S_mm, r.caudal_S_mm, r.midpoint_pmj_mm) for r in paper]


def test_unknown_method_is_one_sentence(sct_data):
    rootlets, cord, disc_points, pmj = _load(_files(sct_data, "pam50"))
    with pytest.raises(UserError, match="gapless-caudal"):
        compute_levels(rootlets, cord, disc_points, pmj, method="gapless-rostral")


def _tiny(values_by_slice, shape=(12, 9, 9)):
    """Rootlets as a (z, y, x) RAS 1 mm volume: for each value, voxels at x=4..5 on slices z in values_by_slice."""
    roots = np.zeros(shape, np.uint8)
    cord = np.zeros(shape, np.uint8)
    cord[1:-1, 3:6, 3:6] = 1
    for value, zs in values_by_slice.items():
        for z in zs:
            roots[z, 4, 6] = value
    images = []
    for arr in (roots, cord):
        img = sitk.GetImageFromArray(arr)
        img.SetDirection(direction_for_axcodes("RAS"))
        images.append(img)
    return images


def test_input_checks():
    r, c = _tiny({2: [8, 9], 3: [5, 6], 5: [2]})
    result = compute_levels(r, c)
    assert any("C4" in w and "missing" in w for w in result.warnings)
    with pytest.raises(UserError, match="empty"):
        compute_levels(r * 0, c)
    with pytest.raises(UserError, match="cord mask is empty"):
        compute_levels(r, c * 0)
    with pytest.raises(UserError, match="outside 1..9"):
        compute_levels(r * 5, c)
    with pytest.raises(UserError, match="binary mask"):
        compute_levels(sitk.Cast(r > 0, sitk.sitkUInt8), c)
    one = sitk.GetArrayFromImage(r)
    one[1, 4, 6] = 1
    img = sitk.GetImageFromArray(one)
    img.CopyInformation(r)
    assert any("value 1" in w for w in compute_levels(img, c).warnings)
    shifted = sitk.Image(c)
    shifted.SetOrigin((0.5, 0, 0))
    with pytest.raises(UserError, match="same voxel grid"):
        compute_levels(r, shifted)
    far = np.zeros((12, 9, 9), np.uint8)
    far[5, 0, 0] = 4
    far_img = sitk.GetImageFromArray(far)
    far_img.CopyInformation(r)
    with pytest.raises(UserError, match="within 3 voxels"):
        compute_levels(far_img, c)
    discs = [DiscPoint(2, (4.0, 4.0, 10.0)), DiscPoint(3, (4.0, 4.0, 6.0)), DiscPoint(4, (4.0, 4.0, 3.0))]
    assert len(compute_levels(r, c, discs).vertebral()) == 2
    with pytest.raises(UserError, match="out of anatomical order"):
        compute_levels(r, c, [discs[1], DiscPoint(2, (4.0, 4.0, 2.0))])
    with pytest.raises(UserError, match="given twice"):
        compute_levels(r, c, discs + [DiscPoint(3, (4.0, 4.0, 5.0))])
    with pytest.raises(UserError, match="below the first disc"):
        compute_levels(r, c, discs, pmj_ras=(4.0, 4.0, 9.5))
    with pytest.raises(UserError, match="below the rootlets"):
        compute_levels(r, c, None, pmj_ras=(4.0, 4.0, 5.0))
    with pytest.raises(UserError, match="method"):
        compute_levels(r, c, method="nearest")
    with pytest.raises(UserError, match="needs a spinal cord mask"):
        spinal_level_label_image(r, None, result)
    # a PMJ given as disc value 50 is used; PMG (49) ignored
    with_pmj = compute_levels(r, c, discs + [DiscPoint(50, (4.0, 4.0, 11.0)), DiscPoint(49, (4.0, 4.0, 11.5))])
    assert with_pmj.distance_reference == "pmj" and with_pmj.pmj_ras == (4.0, 4.0, 11.0)


def test_pmj_inside_cord_is_projected():
    r, c = _tiny({2: [5, 6], 3: [2, 3]})
    result = compute_levels(r, c, pmj_ras=(4.0, 4.0, 8.0))
    c2 = result.spinal()[0]
    assert c2.rostral_pmj_mm == pytest.approx(2.0) and c2.caudal_pmj_mm == pytest.approx(3.0)
    no_pmj = compute_levels(r, c)
    assert no_pmj.reference_S_mm == pytest.approx(10.0)  # top of the cord mask (slice 10)
    assert no_pmj.spinal()[0].rostral_distance_mm == pytest.approx(4.0)


def test_pairings_follow_the_paper_and_include_c1_when_its_top_is_marked():
    """Shifted pairs vertebral Cn with spinal C(n+1): with disc label 1 (top of C1) marked, vertebral C1 exists and
    pairs with spinal C2; `stats` uses the same table of pairings (level_types.PAPER_PAIRINGS)."""
    from RootletSegLogic.levels.types import PAPER_PAIRINGS
    from RootletSegLogic.synthetic.phantom import make_phantom

    phantom = make_phantom(seed=5)
    disc_points, pmj = landmarks_from_label_image(phantom.discs)
    if pmj is None:
        pmj = pmj_from_label_image(phantom.pmj)
    c1c2 = next(d for d in disc_points if d.value == 2).position_ras
    top_of_c1 = DiscPoint(1, (c1c2[0], c1c2[1], c1c2[2] + 4.0))
    result = compute_levels(phantom.rootlets, phantom.cord, [top_of_c1] + disc_points, pmj)
    pairs = {(p.pairing, p.vertebral_level, p.spinal_level): p for p in result.pairings}
    assert ("shifted", "C1", "C2") in pairs and ("not_shifted", "T1", "C8") in pairs and ("shifted", "T1", "T1") in pairs
    for key, pairing in pairs.items():
        assert key[1:] in PAPER_PAIRINGS[key[0]]
        vertebral = next(r for r in result.vertebral() if r.level == key[1])
        spinal = next(r for r in result.spinal() if r.level == key[2])
        assert pairing.difference_mm == pytest.approx(vertebral.midpoint_distance_mm - spinal.midpoint_distance_mm)


def test_without_a_cord_no_warning_speaks_of_cord_ends():
    """Rootlets-only: distances run along S, so warnings about discs beyond the cord mask's ends would mislead."""
    from RootletSegLogic.synthetic.phantom import make_phantom

    phantom = make_phantom(seed=6)
    disc_points, pmj = landmarks_from_label_image(phantom.discs)
    result = compute_levels(phantom.rootlets, None, disc_points, pmj_from_label_image(phantom.pmj))
    assert any("not the paper's method" in w for w in result.warnings)
    assert not any("cord mask" in w and "beyond" in w for w in result.warnings), result.warnings
    with_cord = compute_levels(phantom.rootlets, phantom.cord, disc_points,
                                      pmj_from_label_image(phantom.pmj))
    assert [r.level for r in with_cord.vertebral()] == [r.level for r in result.vertebral()]


# ------------------------------------------------------------------------------ SCT-compatible distance mode
def _straight_cord_case(cord_top_z=55, pmj_zyx=(45, 7, 7)):
    """1 mm grid, identity direction (z = S): a straight cord at y, x = 7 from z = 10 to `cord_top_z`, C2 rootlets
    on z 35..40 and C3 on z 25..30 beside it, and the PMJ at voxel `pmj_zyx` (as an RAS point)."""
    shape = (70, 15, 15)
    cord = np.zeros(shape, np.uint8)
    cord[10:cord_top_z + 1, 6:9, 6:9] = 1
    roots = np.zeros(shape, np.uint8)
    roots[35:41, 7, 9:11] = 2
    roots[25:31, 7, 9:11] = 3
    images = []
    for array in (roots, cord):
        image = sitk.GetImageFromArray(array)
        image.SetSpacing((1.0, 1.0, 1.0))
        images.append(image)
    z, y, x = pmj_zyx
    return images[0], images[1], (-float(x), -float(y), float(z))  # LPS identity grid -> RAS flips x and y


def test_sct_distances_start_at_the_top_of_cord_and_pmj():
    """By hand: the cord reaches 10 mm above the PMJ, so SCT's distances (from the top slice of cord + PMJ) are the
    default ones (from the PMJ) plus 10 mm; heights and level differences are the same."""
    rootlets, cord, pmj = _straight_cord_case()
    default = {r.level: r for r in compute_levels(rootlets, cord, pmj_ras=pmj).spinal()}
    sct = compute_levels(rootlets, cord, pmj_ras=pmj, distance="sct")
    assert any("SCT-compatible distances" in w for w in sct.warnings)
    assert default["C2"].rostral_pmj_mm == pytest.approx(45 - 40) and default["C2"].caudal_pmj_mm == pytest.approx(10)
    for row in sct.spinal():
        ref = default[row.level]
        assert row.rostral_pmj_mm == pytest.approx(ref.rostral_pmj_mm + 10.0, abs=1e-6)
        assert row.caudal_pmj_mm == pytest.approx(ref.caudal_pmj_mm + 10.0, abs=1e-6)
        assert row.height_mm == pytest.approx(ref.height_mm, abs=1e-6)
    assert sct.spinal()[0].rostral_pmj_mm == pytest.approx(55 - 40)


def test_sct_distances_with_a_pmj_off_the_cord():
    """A PMJ 2 mm above the cord top and 4 mm to the side: SCT's line starts at the PMJ's slice and bends toward
    it; the distance to C2's rostral bound lies between the straight S distance and that plus the side step."""
    rootlets, cord, pmj = _straight_cord_case(cord_top_z=55, pmj_zyx=(57, 7, 3))
    sct = {r.level: r for r in compute_levels(rootlets, cord, pmj_ras=pmj, distance="sct").spinal()}
    assert 57 - 40 <= sct["C2"].rostral_pmj_mm <= 57 - 40 + 4.0
    assert sct["C3"].rostral_pmj_mm - sct["C2"].rostral_pmj_mm == pytest.approx(10.0, abs=0.3)


def test_sct_distances_on_pam50_small(sct_data):
    """On PAM50_small the PMJ lies on the cord's top: absolute distances move by under 1 mm and heights by <= 0.3 mm
    (the upstream scripts agree with the default within 0.16 mm there)."""
    rootlets, cord, disc_points, pmj = _load(_files(sct_data, "pam50"))
    default = compute_levels(rootlets, cord, disc_points, pmj)
    sct = compute_levels(rootlets, cord, disc_points, pmj, distance="sct")
    assert [(r.level_type, r.level) for r in sct.rows] == [(r.level_type, r.level) for r in default.rows]
    for a, b in zip(default.rows, sct.rows):
        assert abs(a.midpoint_pmj_mm - b.midpoint_pmj_mm) < 1.0
        assert abs(a.height_mm - b.height_mm) <= 0.3
        if a.level_type == "spinal":  # spinal bounds are the same slices; discs are projected onto another line
            assert (a.rostral_S_mm, a.caudal_S_mm) == (b.rostral_S_mm, b.caudal_S_mm)


def test_sct_distances_need_cord_and_pmj(sct_data):
    rootlets, cord, disc_points, pmj = _load(_files(sct_data, "pam50"))
    with pytest.raises(UserError, match="need a cord mask and a PMJ"):
        compute_levels(rootlets, cord, disc_points, None, distance="sct")
    with pytest.raises(UserError, match="distance mode"):
        compute_levels(rootlets, cord, disc_points, pmj, distance="arc")

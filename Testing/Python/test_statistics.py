"""Bland–Altman statistics against hand computations (numpy in the test), over real level-table files."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from level_results import synthetic_result

from RootletSegLogic.analysis.agreement import bland_altman, linear_fit, normalise_by_height
from RootletSegLogic.analysis.bland_altman import (
    EXTRA_PAIRING,
    PAPER_PAIRINGS_ONLY,
    STATS_COLUMNS,
    SubjectLevels,
    group_bland_altman,
    load_subjects,
    read_heights,
    stats_tsv,
    subject_id_from_path,
)
from RootletSegLogic.errors import UserError
from RootletSegLogic.levels.planning import write_level_outputs
from RootletSegLogic.levels.tables import level_table_tsv


def _ranks(values):
    """Average ranks (ties share the mean rank), written out by hand."""
    values = np.asarray(values, dtype=float)
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values))
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[order[j + 1]] == values[order[i]]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def test_bland_altman_hand_computed():
    vertebral = np.array([60.0, 75.0, 92.0, 108.0, 124.0])
    spinal = np.array([60.5, 70.0, 81.5, 93.5, 106.0])
    result = bland_altman(vertebral, spinal)
    differences = np.array([-0.5, 5.0, 10.5, 14.5, 18.0])
    assert result.n == 5
    assert result.bias_mm == pytest.approx(10.5)
    # linear interpolation between order statistics: position 0.025 * 4 = 0.1 and 0.975 * 4 = 3.9
    assert result.loa_lower_mm == pytest.approx(-0.5 + 0.1 * (5.0 + 0.5))
    assert result.loa_upper_mm == pytest.approx(14.5 + 0.9 * (18.0 - 14.5))
    np.testing.assert_allclose(result.differences_mm, differences)
    np.testing.assert_allclose(result.means_mm, (vertebral + spinal) / 2)
    # the paper's Spearman: spinal vs vertebral midpoints (both increase together here)
    assert result.spearman_rho == pytest.approx(1.0)
    # the linear fit vertebral = slope * spinal + intercept, by the normal equations written out
    x_mean, y_mean = spinal.mean(), vertebral.mean()
    slope = ((spinal - x_mean) * (vertebral - y_mean)).sum() / ((spinal - x_mean) ** 2).sum()
    assert result.fit_slope == pytest.approx(slope)
    assert result.fit_intercept_mm == pytest.approx(y_mean - slope * x_mean)
    # the labelled extra: differences vs means (they grow together here too)
    assert result.spearman_rho_difference_vs_mean == pytest.approx(1.0)


def test_spearman_is_between_midpoints_not_differences():
    """A case where the two correlations differ in sign: the paper's one is between the midpoints."""
    spinal = np.array([10.0, 20.0, 30.0, 40.0])
    vertebral = np.array([30.0, 35.0, 38.0, 40.0])  # rises with spinal; vertebral - spinal falls
    result = bland_altman(vertebral, spinal)
    assert result.spearman_rho == pytest.approx(1.0)
    # differences 20, 15, 8, 0 against means 20, 27.5, 34, 40: perfectly reversed ranks
    assert result.spearman_rho_difference_vs_mean == pytest.approx(-1.0)
    # p by hand for rho = 1 with n = 4: scipy's t-distribution p, t = rho * sqrt((n-2)/(1-rho^2)) -> inf -> p = 0
    assert result.spearman_p == pytest.approx(0.0, abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(
    arrays(np.float64, st.integers(3, 40), elements=st.floats(-50, 300, allow_nan=False)),
    st.data(),
)
def test_bland_altman_properties(vertebral, data):
    spinal = data.draw(arrays(np.float64, vertebral.shape, elements=st.floats(-50, 300, allow_nan=False)))
    result = bland_altman(vertebral, spinal)
    d = vertebral - spinal
    m = (vertebral + spinal) / 2
    assert result.n == len(d)
    assert result.bias_mm == pytest.approx(np.median(d))
    assert result.loa_lower_mm == pytest.approx(np.percentile(d, 2.5))
    assert result.loa_upper_mm == pytest.approx(np.percentile(d, 97.5))
    assert result.loa_lower_mm <= result.bias_mm <= result.loa_upper_mm
    for rho, x, y in ((result.spearman_rho, spinal, vertebral), (result.spearman_rho_difference_vs_mean, d, m)):
        if np.ptp(x) == 0 or np.ptp(y) == 0:
            assert math.isnan(rho)
        else:  # Spearman = Pearson of the (average) ranks, by hand
            assert rho == pytest.approx(np.corrcoef(_ranks(x), _ranks(y))[0, 1], abs=1e-9)


def test_a_fit_on_values_that_differ_by_subnormal_amounts_is_nan_not_an_error():
    # found by the property test above: np.polyfit raised LinAlgError here
    tiny = np.array([0.0, 5e-324, 0.0])
    assert all(math.isnan(v) for v in linear_fit(tiny, [1.0, 2.0, 3.0]))
    result = bland_altman([0.0, 0.0, 0.0], tiny)
    assert result.n == 3 and math.isnan(result.fit_slope) and math.isnan(result.fit_intercept_mm)
    assert linear_fit([0.0, 1.0, 2.0], [1.0, 3.0, 5.0]) == pytest.approx((2.0, 1.0))


def test_small_samples_and_nan():
    assert math.isnan(bland_altman([1.0, 2.0], [0.0, 0.5]).spearman_rho)
    empty = bland_altman([], [])
    assert empty.n == 0 and math.isnan(empty.bias_mm)
    result = bland_altman([1.0, np.nan, 3.0], [0.0, 1.0, 1.0])
    assert result.n == 2 and result.bias_mm == pytest.approx(1.5)


def test_normalise_by_height():
    midpoints = np.array([100.0, 120.0, 90.0])
    heights = np.array([170.0, 190.0, 160.0])
    np.testing.assert_allclose(normalise_by_height(midpoints, heights), midpoints / heights * 170.0)
    np.testing.assert_allclose(normalise_by_height(midpoints, heights, 180.0), midpoints / heights * 180.0)
    with pytest.raises(ValueError):
        normalise_by_height(midpoints, [170.0, 0.0, 160.0])


def _write_tables(folder, n=6, with_pmj=True, seed=1):
    rng = np.random.default_rng(seed)
    results, paths = [], []
    for i in range(n):
        result = synthetic_result(with_pmj=with_pmj, shift=float(rng.normal(0, 3)), scale=float(rng.uniform(0.9, 1.1)))
        path = folder / f"sub-{i:02d}_T2w_levels.tsv"
        write_level_outputs(result, tsv_path=path)
        results.append(result)
        paths.append(path)
    return results, paths


def test_group_bland_altman_matches_hand_computation(tmp_path):
    results, paths = _write_tables(tmp_path)
    subjects = load_subjects(paths)
    assert [s.participant_id for s in subjects] == [f"sub-{i:02d}" for i in range(6)]
    stats = group_bland_altman(subjects)
    assert stats.distance_reference == "pmj" and not stats.normalised
    for pairing, pairs in PAPER_PAIRINGS_ONLY.items():
        every, every_v, every_s = [], [], []
        for vertebral, spinal in pairs:
            d = []
            for result in results:
                rows = {(r.level_type, r.level): r for r in result.rows}
                if ("vertebral", vertebral) in rows and ("spinal", spinal) in rows:
                    # the table holds 3 decimals: round like the file does
                    v = round(rows["vertebral", vertebral].midpoint_pmj_mm, 3)
                    s = round(rows["spinal", spinal].midpoint_pmj_mm, 3)
                    d.append(v - s)
                    every_v.append(v)
                    every_s.append(s)
            row = next((r for r in stats.rows if r["pairing"] == pairing and r["vertebral_level"] == vertebral), None)
            if not d:
                assert row is None
                continue
            every += d
            assert row["spinal_level"] == spinal and row["n"] == len(d)
            assert row["bias_mm"] == pytest.approx(np.median(d), abs=1e-9)
            assert row["loa_lower_mm"] == pytest.approx(np.percentile(d, 2.5), abs=1e-9)
            assert row["loa_upper_mm"] == pytest.approx(np.percentile(d, 97.5), abs=1e-9)
        overall = next(r for r in stats.rows if r["pairing"] == pairing and r["vertebral_level"] == "all")
        assert overall["n"] == len(every)
        assert overall["bias_mm"] == pytest.approx(np.median(every), abs=1e-9)
        assert overall["loa_upper_mm"] == pytest.approx(np.percentile(every, 97.5), abs=1e-9)
        assert overall["spearman_rho"] == pytest.approx(
            np.corrcoef(_ranks(every_s), _ranks(every_v))[0, 1], abs=1e-9)
        assert overall["fit_slope"] == pytest.approx(np.polyfit(every_s, every_v, 1)[0], abs=1e-9)
        assert overall["in_paper"] == "yes"
    # shifted T1/T1 is absent (no spinal T1 in these subjects); not shifted T1/C8 is present
    assert not any(r["pairing"] == "shifted" and r["vertebral_level"] == "T1" for r in stats.rows)
    text = stats_tsv(stats)
    assert text.splitlines()[0].split("\t") == list(STATS_COLUMNS)
    assert len(text.splitlines()) == 1 + len(stats.rows)


def test_s_axis_fallback_keeps_differences(tmp_path):
    (tmp_path / "pmj").mkdir()
    (tmp_path / "s").mkdir()
    _, with_pmj = _write_tables(tmp_path / "pmj", with_pmj=True)
    _, without = _write_tables(tmp_path / "s", with_pmj=False)
    a = group_bland_altman(load_subjects(with_pmj))
    b = group_bland_altman(load_subjects(without))
    assert b.distance_reference == "S-axis" and b.warnings
    for ra, rb in zip(a.rows, b.rows):
        assert (ra["pairing"], ra["vertebral_level"]) == (rb["pairing"], rb["vertebral_level"])
        assert rb["bias_mm"] == pytest.approx(ra["bias_mm"], abs=1e-9)
    mixed = load_subjects([with_pmj[0], without[1]])
    assert {s.distance_reference for s in mixed} == {"S-axis"}


def test_height_normalisation(tmp_path):
    _, paths = _write_tables(tmp_path, n=4)
    heights = {"sub-00": 160.0, "sub-01": 170.0, "sub-02": 180.0, "sub-03": 190.0}
    participants = tmp_path / "participants.tsv"
    participants.write_text("participant_id\tage\theight\n" + "".join(f"{k}\t30\t{v}\n" for k, v in heights.items())
                            + "sub-99\t40\tn/a\n")
    assert read_heights(participants) == heights
    subjects = load_subjects(paths)
    stats = group_bland_altman(subjects, read_heights(participants))
    assert stats.normalised and stats.reference_height_cm == pytest.approx(175.0)
    point = next(p for p in stats.points if p["participant_id"] == "sub-00" and p["vertebral_level"] == "C3"
                 and p["pairing"] == "not_shifted")
    raw = subjects[0].vertebral["C3"]
    assert point["vertebral_midpoint_mm"] == pytest.approx(raw / 160.0 * 175.0)
    with pytest.raises(UserError, match="sub-03"):
        group_bland_altman(subjects, {k: v for k, v in heights.items() if k != "sub-03"})


def test_subject_ids_and_duplicates(tmp_path):
    assert subject_id_from_path("/x/sub-A01_ses-1_T2w_levels.tsv") == "sub-A01"
    assert subject_id_from_path("/x/patient7.tsv") == "patient7"
    result = synthetic_result()
    text = level_table_tsv(result)
    lines = text.splitlines()
    with_id = "\n".join([lines[0] + "\tparticipant_id"] + [line + "\tsub-77" for line in lines[1:]]) + "\n"
    (tmp_path / "table.tsv").write_text(with_id)
    assert load_subjects([tmp_path / "table.tsv"])[0].participant_id == "sub-77"
    (tmp_path / "sub-05_a.tsv").write_text(text)
    (tmp_path / "sub-05_b.tsv").write_text(text)
    with pytest.raises(UserError, match="sub-05"):
        group_bland_altman(load_subjects([tmp_path / "sub-05_a.tsv", tmp_path / "sub-05_b.tsv"]))


def test_heights_file_errors(tmp_path):
    bad = tmp_path / "participants.tsv"
    bad.write_text("participant_id\tage\nsub-01\t30\n")
    with pytest.raises(UserError, match="height"):
        read_heights(bad)
    bad.write_text("participant_id\theight\nsub-01\ttall\n")
    with pytest.raises(UserError, match="tall"):
        read_heights(bad)
    with pytest.raises(UserError, match="does not exist"):
        read_heights(tmp_path / "missing.tsv")


def test_no_vertebral_levels_is_a_user_error(tmp_path):
    result = synthetic_result()
    result.rows = result.spinal()
    write_level_outputs(result, tsv_path=tmp_path / "sub-01.tsv")
    with pytest.raises(UserError, match="vertebral"):
        group_bland_altman(load_subjects([tmp_path / "sub-01.tsv"]))


def test_vertebral_c1_pair_is_labelled_and_kept_out_of_the_papers_summary():
    """The paper has no vertebral C1 / spinal C2 pair: its row is 'shifted_extra', in_paper 'no', and the
    shifted 'all' row is computed from the paper's pairs alone."""
    subjects = []
    for i, shift in enumerate([0.0, 1.0, 3.0, 4.5]):
        vertebral = {"C1": 5.0 + shift, "C2": 20.0 + shift, "C3": 35.0 + shift}
        spinal = {"C2": 12.0, "C3": 25.0 + 0.5 * i, "C4": 38.0 - 0.3 * i}
        subjects.append(SubjectLevels(f"sub-{i}", f"t{i}.tsv", spinal, vertebral, "pmj"))
    stats = group_bland_altman(subjects)
    extra = [r for r in stats.rows if r["pairing"] == EXTRA_PAIRING]
    assert len(extra) == 1 and extra[0]["vertebral_level"] == "C1" and extra[0]["in_paper"] == "no"
    assert extra[0]["bias_mm"] == pytest.approx(np.median([5.0 - 12.0, 6.0 - 12.0, 8.0 - 12.0, 9.5 - 12.0]))
    shifted_all = next(r for r in stats.rows if r["pairing"] == "shifted" and r["vertebral_level"] == "all")
    by_hand = []
    for i, shift in enumerate([0.0, 1.0, 3.0, 4.5]):
        by_hand += [(20.0 + shift) - (25.0 + 0.5 * i), (35.0 + shift) - (38.0 - 0.3 * i)]
    assert shifted_all["n"] == 8
    assert shifted_all["bias_mm"] == pytest.approx(np.median(by_hand))
    assert not any(r["pairing"] == "shifted" and r["vertebral_level"] == "C1" for r in stats.rows)
    header = stats_tsv(stats).splitlines()[0].split("\t")
    assert "in_paper" in header and "spearman_rho_difference_vs_mean" in header

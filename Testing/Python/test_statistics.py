"""Bland–Altman statistics against hand computations (numpy in the test), over real level-table files."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from level_results import synthetic_result

from RootletSegLogic.analysis.bland_altman import (
    STATS_COLUMNS,
    bland_altman,
    group_bland_altman,
    load_subjects,
    normalise_by_height,
    read_heights,
    stats_tsv,
    subject_id_from_path,
)
from RootletSegLogic.errors import UserError
from RootletSegLogic.levels.planning import write_level_outputs
from RootletSegLogic.levels.tables import level_table_tsv
from RootletSegLogic.levels.types import PAPER_PAIRINGS


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
    assert result.spearman_rho == pytest.approx(1.0)  # differences grow with the means


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
    if np.ptp(d) == 0 or np.ptp(m) == 0:
        assert math.isnan(result.spearman_rho)
    else:
        rd, rm = _ranks(d), _ranks(m)
        if np.ptp(rd) > 0 and np.ptp(rm) > 0:
            assert result.spearman_rho == pytest.approx(np.corrcoef(rd, rm)[0, 1], abs=1e-9)


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
    for pairing, pairs in PAPER_PAIRINGS.items():
        every = []
        for vertebral, spinal in pairs:
            d = []
            for result in results:
                rows = {(r.level_type, r.level): r for r in result.rows}
                if ("vertebral", vertebral) in rows and ("spinal", spinal) in rows:
                    # the table holds 3 decimals: round like the file does
                    v = round(rows["vertebral", vertebral].midpoint_pmj_mm, 3)
                    s = round(rows["spinal", spinal].midpoint_pmj_mm, 3)
                    d.append(v - s)
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

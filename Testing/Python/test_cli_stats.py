"""`rootletseg stats` in a real process: several tables -> Bland–Altman TSV + figures; bad input -> one sentence."""

from __future__ import annotations

import csv
import subprocess
import sys

import numpy as np
from conftest import REPO_ROOT
from level_results import synthetic_result

from RootletSegLogic.analysis.bland_altman import STATS_COLUMNS
from RootletSegLogic.levels.planning import write_level_outputs


def _run(*args):
    return subprocess.run([sys.executable, "-m", "RootletSegLogic", "stats", *map(str, args)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)


def _tables(folder, n=5):
    rng = np.random.default_rng(7)
    paths = []
    for i in range(n):
        path = folder / f"sub-{i + 1:02d}_levels.tsv"
        write_level_outputs(synthetic_result(shift=float(rng.normal(0, 2))), tsv_path=path)
        paths.append(path)
    return paths


def _assert_one_sentence_error(process):
    assert process.returncode == 1
    assert "Traceback" not in process.stderr
    lines = [line for line in process.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("rootletseg: error: "), process.stderr


def test_stats_writes_table_and_figures(tmp_path):
    tables = _tables(tmp_path)
    out = tmp_path / "out" / "stats"
    process = _run(*tables, "-o", out, "--progress", "none")
    assert process.returncode == 0, process.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "bland_altman.png", "bland_altman.svg", "bland_altman.tsv", "bland_altman_points.tsv"]
    with open(out / "bland_altman.tsv", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert tuple(rows[0]) == STATS_COLUMNS
    overall = next(r for r in rows if r["pairing"] == "not_shifted" and r["vertebral_level"] == "all")
    assert int(overall["n"]) == 5 * 7
    with open(out / "bland_altman_points.tsv", newline="") as handle:
        points = list(csv.DictReader(handle, delimiter="\t"))
    d = [float(p["difference_mm"]) for p in points if p["pairing"] == "not_shifted"]
    assert float(overall["bias_mm"]) == np.round(np.median(d), 3)
    assert {p["participant_id"] for p in points} == {f"sub-{i:02d}" for i in range(1, 6)}
    assert (out / "bland_altman.png").read_bytes()[:4] == b"\x89PNG"
    # a second run does not overwrite unless asked
    again = _run(*tables, "-o", out)
    _assert_one_sentence_error(again)
    assert "--overwrite" in again.stderr
    assert _run(*tables, "-o", out, "--overwrite").returncode == 0


def test_stats_with_heights(tmp_path):
    tables = _tables(tmp_path, n=3)
    participants = tmp_path / "participants.tsv"
    participants.write_text("participant_id\theight\nsub-01\t165\nsub-02\t180\nsub-03\t172\n")
    process = _run(*tables, "-o", tmp_path / "out", "--heights", participants)
    assert process.returncode == 0, process.stderr
    rows = list(csv.DictReader((tmp_path / "out" / "bland_altman.tsv").open(), delimiter="\t"))
    assert {r["normalised"] for r in rows} == {"height"}
    participants.write_text("participant_id\theight\nsub-01\t165\nsub-02\t180\n")
    process = _run(*tables, "-o", tmp_path / "out2", "--heights", participants)
    _assert_one_sentence_error(process)
    assert "sub-03" in process.stderr


def test_bad_table_is_one_sentence(tmp_path):
    tables = _tables(tmp_path, n=2)
    bad = tmp_path / "sub-09_levels.tsv"
    bad.write_text("this is\tnot a level table\n1\t2\n")
    process = _run(*tables, bad, "-o", tmp_path / "out")
    _assert_one_sentence_error(process)
    assert "sub-09_levels.tsv" in process.stderr and "not a level table" in process.stderr
    assert not (tmp_path / "out").exists()
    missing = _run(tmp_path / "nope.tsv", "-o", tmp_path / "out")
    _assert_one_sentence_error(missing)
    assert "does not exist" in missing.stderr

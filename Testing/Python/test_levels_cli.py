"""`rootletseg levels` in a real process on real data: outputs, provenance, and bad inputs (one sentence, no trace)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from RootletSegLogic.images.files import file_sha256
from RootletSegLogic.images.grid import same_grid
from RootletSegLogic.images.reading import read_label_map
from RootletSegLogic.levels.discs import discs_from_label_image, pmj_from_label_image
from RootletSegLogic.levels.method import compute_levels

REPO_ROOT = Path(__file__).resolve().parents[2]


def rootletseg(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    return subprocess.run([sys.executable, "-m", "RootletSegLogic", "levels", *map(str, args), "--progress", "none"],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def _pam50(sct_data):
    t = sct_data / "template"
    return {k: t / f"PAM50_small_{v}.nii.gz" for k, v in
            (("rootlets", "rootlets"), ("cord", "cord"), ("discs", "label_disc"), ("pmj", "t2_pmj_manual"))}


def _read_tsv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def test_pam50_all_outputs(sct_data, tmp_path):
    f = _pam50(sct_data)
    out = {"tsv": tmp_path / "levels.tsv", "json": tmp_path / "levels.json", "mrk": tmp_path / "levels.mrk.json",
           "pairs": tmp_path / "pairs.tsv", "label": tmp_path / "levels_label.nii.gz"}
    proc = rootletseg("--rootlets", f["rootlets"], "--cord", f["cord"], "--discs", f["discs"], "--pmj", f["pmj"],
                      "-o", out["tsv"], "--json", out["json"], "--markups", out["mrk"], "--pairings", out["pairs"],
                      "--label-image", out["label"])
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "C2 has rootlets but none within 3 voxels" in proc.stderr  # the warning reaches the user
    rows = _read_tsv(out["tsv"])
    for column in ("level_type", "level", "rostral_S_mm", "caudal_S_mm", "rostral_pmj_mm", "caudal_pmj_mm",
                   "midpoint_pmj_mm", "height_mm"):
        assert column in rows[0]
    # the table equals the core's result on the same files
    rootlets, cord = read_label_map(f["rootlets"]), read_label_map(f["cord"])
    result = compute_levels(rootlets, cord, discs_from_label_image(read_label_map(f["discs"])),
                                   pmj_from_label_image(read_label_map(f["pmj"])))
    assert [(r["level_type"], r["level"]) for r in rows] == [(r.level_type, r.level) for r in result.rows]
    for tsv_row, row in zip(rows, result.rows):
        for column in ("rostral_S_mm", "caudal_S_mm", "rostral_pmj_mm", "caudal_pmj_mm", "midpoint_pmj_mm", "height_mm"):
            assert float(tsv_row[column]) == pytest.approx(getattr(row, column), abs=1e-3)
    spinal = [r for r in rows if r["level_type"] == "spinal"]
    assert [r["level"] for r in spinal] == ["C3", "C4", "C5", "C6", "C7", "C8"]
    # planning JSON with provenance (sha256 of every input)
    doc = json.loads(out["json"].read_text())
    inputs = doc["provenance"]["inputs"]
    for key in ("rootlets", "cord", "discs", "pmj"):
        assert inputs[key]["sha256"] == file_sha256(f[key])
    assert doc["provenance"]["method"] == "paper" and doc["provenance"]["software_version"]
    assert json.loads(out["mrk"].read_text())["markups"][0]["controlPoints"]
    pairs = _read_tsv(out["pairs"])
    assert {p["pairing"] for p in pairs} == {"not_shifted", "shifted"}
    label = sitk.ReadImage(str(out["label"]))
    assert same_grid(label, rootlets)
    assert set(np.unique(sitk.GetArrayFromImage(label))) == {0, 3, 4, 5, 6, 7, 8}
    # second run without --overwrite: refused, files untouched; with --overwrite: replaced
    before = {k: p.read_bytes() for k, p in out.items()}
    again = rootletseg("--rootlets", f["rootlets"], "--cord", f["cord"], "-o", out["tsv"], "--method", "gapless")
    assert again.returncode == 1 and "already exists" in again.stderr
    assert out["tsv"].read_bytes() == before["tsv"]
    again = rootletseg("--rootlets", f["rootlets"], "--cord", f["cord"], "-o", out["tsv"], "--method", "gapless",
                       "--overwrite")
    assert again.returncode == 0, again.stderr
    assert {r["method"] for r in _read_tsv(out["tsv"]) if r["level_type"] == "spinal"} == {"gapless"}


def test_t2_psr_rootlets_only_and_disc_points(sct_data, tmp_path):
    t2 = sct_data / "t2"
    proc = rootletseg("--rootlets", t2 / "t2_seg-deepseg_rootlets.nii.gz", "-o", tmp_path / "a.tsv")
    assert proc.returncode == 0, proc.stderr
    assert "not the paper's method (no spinal cord mask)" in proc.stderr
    rows = _read_tsv(tmp_path / "a.tsv")
    assert [r["level"] for r in rows] == ["C3", "C4", "C5", "C6"]
    assert {r["method"] for r in rows} == {"rootlets-only"}
    assert all(r["rostral_pmj_mm"] == "" for r in rows)
    # disc points (markups, LPS) beside the cord: vertebral rows appear
    points = {"C3/C4": 10.0, "C4/C5": -5.0, "C5/C6": -20.0}
    mrk = {"markups": [{"type": "Fiducial", "coordinateSystem": "LPS", "controlPoints": [
        {"label": n, "position": [0.0, 0.0, s]} for n, s in points.items()]}]}
    (tmp_path / "discs.mrk.json").write_text(json.dumps(mrk))
    proc = rootletseg("--rootlets", t2 / "t2_seg-deepseg_rootlets.nii.gz", "--cord", t2 / "t2_seg-manual.nii.gz",
                      "--disc-points", tmp_path / "discs.mrk.json", "-o", tmp_path / "b.tsv")
    assert proc.returncode == 0, proc.stderr
    rows = _read_tsv(tmp_path / "b.tsv")
    assert [r["level"] for r in rows if r["level_type"] == "vertebral"] == ["C4", "C5"]


def _write(array, like, path):
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(like)
    sitk.WriteImage(image, str(path))
    return path


@pytest.fixture
def bad_inputs(sct_data, tmp_path):
    f = _pam50(sct_data)
    rootlets = sitk.ReadImage(str(f["rootlets"]))
    arr = sitk.GetArrayFromImage(rootlets)
    d = tmp_path / "inputs"
    d.mkdir()
    csv_rows = "name,R,A,S\nC2/C3,0,0,150\nC3/C4,0,0,170\n"
    (d / "order.csv").write_text(csv_rows)
    (d / "dup.csv").write_text("name,R,A,S\nC2/C3,0,0,170\ndisc 3,0,0,150\n")
    (d / "pmj_low.csv").write_text("name,R,A,S\nC2/C3,0,0,230\nC3/C4,0,0,220\nPMJ,0,0,225\n")
    return {
        **f,
        "empty": _write(np.zeros_like(arr), rootlets, d / "empty.nii.gz"),
        "values": _write((arr > 0).astype(np.uint8) * 12, rootlets, d / "values.nii.gz"),
        "t2cord": sct_data / "t2" / "t2_seg-manual.nii.gz",
        "order": d / "order.csv", "dup": d / "dup.csv", "pmj_low": d / "pmj_low.csv",
        "nocord": _write(np.zeros_like(arr), rootlets, d / "nocord.nii.gz"),
    }


BAD_CASES = {
    "grid": (["--cord", "{t2cord}"], "same voxel grid"),
    "empty rootlets": (["--rootlets", "{empty}"], "empty"),
    "rootlet values": (["--rootlets", "{values}"], "outside 1..9"),
    "empty cord": (["--cord", "{nocord}"], "cord mask is empty"),
    "discs out of order": (["--disc-points", "{order}"], "out of anatomical order"),
    "duplicate discs": (["--disc-points", "{dup}"], "given twice"),
    "pmj below discs": (["--disc-points", "{pmj_low}"], "below the first disc"),
    "missing file": (["--discs", "/nonexistent/discs.nii.gz"], "does not exist"),
    "both disc inputs": (["--discs", "{discs}", "--disc-points", "{order}"], "not allowed with"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_inputs_one_sentence_nothing_written(bad_inputs, tmp_path, case):
    extra, message = BAD_CASES[case]
    extra = [a.format(**bad_inputs) for a in extra]
    base = {"--rootlets": str(bad_inputs["rootlets"]), "--cord": str(bad_inputs["cord"])}
    for flag in list(base):
        if flag in extra:
            base.pop(flag)
    args = [x for kv in base.items() for x in kv] + extra
    out = tmp_path / "out"
    out.mkdir()
    proc = rootletseg(*args, "-o", out / "t.tsv", "--json", out / "t.json", "--label-image", out / "l.nii.gz")
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert message in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1
    assert list(out.iterdir()) == []


def test_label_image_needs_cord(sct_data, tmp_path):
    f = _pam50(sct_data)
    proc = rootletseg("--rootlets", f["rootlets"], "-o", tmp_path / "t.tsv", "--label-image", tmp_path / "l.nii.gz")
    assert proc.returncode == 1 and "needs --cord" in proc.stderr and "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []


def _api_result(f, **options):
    return compute_levels(read_label_map(f["rootlets"]), read_label_map(f["cord"]),
                          discs_from_label_image(read_label_map(f["discs"])),
                          pmj_from_label_image(read_label_map(f["pmj"])), **options)


def _assert_table_equals(rows, result):
    assert [(r["level_type"], r["level"]) for r in rows] == [(r.level_type, r.level) for r in result.rows]
    for tsv_row, row in zip(rows, result.rows):
        for column in ("rostral_S_mm", "caudal_S_mm", "rostral_pmj_mm", "caudal_pmj_mm", "midpoint_pmj_mm",
                       "height_mm"):
            assert float(tsv_row[column]) == pytest.approx(getattr(row, column), abs=1e-3), (row.level, column)


@pytest.mark.parametrize("method", ["paper", "gapless", "gapless-caudal"])
def test_pam50_distance_sct_and_methods_give_the_api_numbers(sct_data, tmp_path, method):
    """--distance sct / --method on PAM50_small: the table is the Python API's; the default is --distance pmj, the
    same bytes as before the option existed (no "distance" in its provenance), and the two modes differ."""
    f = _pam50(sct_data)
    landmarks = ["--rootlets", f["rootlets"], "--cord", f["cord"], "--discs", f["discs"], "--pmj", f["pmj"],
                 "--method", method]
    for name, extra in (("sct", ["--distance", "sct"]), ("pmj", ["--distance", "pmj"]), ("default", [])):
        proc = rootletseg(*landmarks, *extra, "-o", tmp_path / f"{name}.tsv", "--json", tmp_path / f"{name}.json",
                          "--pairings", tmp_path / f"{name}_pairs.tsv")
        assert proc.returncode == 0, proc.stderr
    _assert_table_equals(_read_tsv(tmp_path / "sct.tsv"), _api_result(f, method=method, distance="sct"))
    _assert_table_equals(_read_tsv(tmp_path / "default.tsv"), _api_result(f, method=method))
    assert (tmp_path / "default.tsv").read_bytes() == (tmp_path / "pmj.tsv").read_bytes()
    assert (tmp_path / "default_pairs.tsv").read_bytes() == (tmp_path / "pmj_pairs.tsv").read_bytes()
    assert "distance" not in json.loads((tmp_path / "default.json").read_text())["provenance"]
    assert json.loads((tmp_path / "sct.json").read_text())["provenance"]["distance"] == "sct"
    assert {r["method"] for r in _read_tsv(tmp_path / "sct.tsv") if r["level_type"] == "spinal"} == {method}
    sct = {r["level"]: float(r["midpoint_pmj_mm"]) for r in _read_tsv(tmp_path / "sct.tsv")}
    pmj = {r["level"]: float(r["midpoint_pmj_mm"]) for r in _read_tsv(tmp_path / "pmj.tsv")}
    assert any(abs(sct[level] - pmj[level]) > 0.1 for level in sct)  # the option changes the numbers


def test_distance_sct_without_pmj_is_one_sentence(sct_data, tmp_path):
    f = _pam50(sct_data)
    proc = rootletseg("--rootlets", f["rootlets"], "--cord", f["cord"], "--distance", "sct", "-o", tmp_path / "t.tsv")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "SCT-compatible distances need a cord mask and a PMJ" in proc.stderr
    assert list(tmp_path.iterdir()) == []

"""`rootletseg batch` as a user runs it: real processes on a small BIDS dataset of phantoms, the embedded demo model,
a real local Dask cluster (2 worker processes), statuses, outputs, the report's HTML, resume, and SIGTERM.

The dataset: sub-01, sub-02 with derivatives (cord, discs, PMJ in spine-generic names), sub-03 without derivatives
(the embedded demo-spine landmark model finds its cord and discs; no PMJ), sub-04 whose image is cut short (a
damaged file: failed with its reason).
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from RootletSegLogic import naming
from RootletSegLogic.cohort.phantom_bids import write_phantom_bids

STATUS = "rootletseg_status.tsv"
REPORT = "rootletseg_qc_report.html"


def batch(*args, env_home: Path, timeout: float = 300, **popen):
    env = dict(os.environ, ROOTLETSEG_HOME=str(env_home))
    return subprocess.run([sys.executable, "-m", "RootletSegLogic", "batch", *map(str, args), "--progress", "none"],
                          capture_output=True, text=True, timeout=timeout, env=env, **popen)


def read_status(out: Path) -> dict:
    with open(out / STATUS, newline="", encoding="utf-8") as handle:
        return {row["participant_id"]: row for row in csv.DictReader(handle, delimiter="\t")}


class ReportParser(HTMLParser):
    """Rows of the report: their data attributes, the images they show and their text."""

    def __init__(self):
        super().__init__()
        self.rows, self.current, self.scripts, self.group_links, self._in_group = [], None, 0, [], False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tr" and "subject" in (attrs.get("class") or ""):
            self.current = {"attrs": attrs, "images": [], "text": ""}
            self.rows.append(self.current)
        elif tag == "img" and self.current is not None:
            self.current["images"].append(attrs)
        elif tag == "script":
            self.scripts += 1
            assert "src" not in attrs, "the report must work without other files or a server"
        elif tag == "ul" and attrs.get("class") == "group-links":
            self._in_group = True
        elif tag == "a" and self._in_group:
            self.group_links.append(attrs["href"])

    def handle_endtag(self, tag):
        if tag == "tr":
            self.current = None
        if tag == "ul":
            self._in_group = False

    def handle_data(self, data):
        if self.current is not None:
            self.current["text"] += data


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("bids")
    home = tmp_path_factory.mktemp("home")
    write_phantom_bids(root, subjects=4, without_derivatives=[3], broken=[4])
    out = tmp_path_factory.mktemp("derivatives") / "rootletseg"
    result = batch(root, "-o", out, "--model", "demo", "--landmark-model", "demo-spine", "--jobs", "2", env_home=home)
    return root, out, home, result


def test_statuses_and_reasons(first_run):
    _root, out, _home, result = first_run
    assert result.returncode == 1, result.stderr  # some images failed
    assert "1 image(s) failed" in result.stderr and "Traceback" not in result.stderr
    status = read_status(out)
    assert [status[s]["status"] for s in ("sub-01", "sub-02", "sub-03", "sub-04")] == ["done", "done", "done", "failed"]
    assert set(status["sub-03"]["flags"].split(";")) == {"automatic-landmarks", "no-pmj"}
    assert status["sub-01"]["flags"] == ""
    assert "damaged or truncated" in status["sub-04"]["reason"]
    for row in status.values():
        assert "\n" not in row["reason"] and row["outputs_folder"] == f"{row['participant_id']}/anat"
    assert float(status["sub-01"]["seconds"]) > 0


def test_outputs_are_a_bids_derivatives_dataset(first_run):
    root, out, _home, _result = first_run
    description = json.loads((out / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    assert description["GeneratedBy"][0]["Name"] == "RootletSeg"
    assert "10.1038/s41598-026-49164-0" in " ".join(description["ReferencesAndLinks"])
    anat = out / "sub-01" / "anat"
    image = root / "sub-01" / "anat" / "sub-01_T2w.nii.gz"
    segmentation = naming.segmentation_path(image).name
    expected = {segmentation, naming.sidecar_path(segmentation).name}
    expected |= {p.name for p in naming.level_paths(anat, "sub-01_T2w", with_label_image=True).values()}
    expected |= {f"sub-01_T2w_{figure}{ext}" for figure in ("qc_sagittal", "level_chart") for ext in (".png", ".svg")}
    expected.add("sub-01_T2w_rootletseg-batch.json")
    assert {p.name for p in anat.iterdir()} == expected
    assert not (out / "sub-04").exists()  # failed: nothing half-written
    found = {p.name for p in (out / "sub-03" / "anat").iterdir()}
    assert {"sub-03_T2w_cord.nii.gz", "sub-03_T2w_discs.nii.gz", "sub-03_T2w_landmarks.json"} <= found
    record3 = json.loads((out / "sub-03" / "anat" / "sub-03_T2w_rootletseg-batch.json").read_text())
    assert record3["summary"]["landmarks"] == "automatic" and record3["summary"]["distance_reference"] == "S-axis"
    assert not any((out / ".rootletseg-staging").glob("*"))
    record = json.loads((anat / "sub-01_T2w_rootletseg-batch.json").read_text())
    assert record["model"]["name"] == "demo" and len(record["input_sha256"]["image"]) == 64
    assert set(record["input_sha256"]) == {"image", "cord", "discs", "pmj"}
    assert record["summary"]["distance_reference"] == "pmj" and record["summary"]["landmarks"] == "derivatives"
    table = (anat / "sub-01_T2w_levels.tsv").read_text().splitlines()
    assert table[0].startswith("level_type") and any(line.startswith("vertebral") for line in table)
    group = out / "group" / "T2w"
    with open(group / "bland_altman.tsv", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    overall = next(r for r in rows if r["pairing"] == "not_shifted" and r["vertebral_level"] == "all")
    assert int(overall["n"]) > 2 and overall["in_paper"] == "yes"
    assert (group / "bland_altman.png").stat().st_size > 1000


def test_report_rows_figures_flags_and_filters(first_run):
    _root, out, _home, _result = first_run
    page = ReportParser()
    page.feed((out / REPORT).read_text(encoding="utf-8"))
    assert page.scripts == 1
    assert [r["attrs"]["data-status"] for r in page.rows] == ["done", "done", "done", "failed"]
    assert set(page.rows[2]["attrs"]["data-flags"].split()) == {"automatic-landmarks", "no-pmj"}
    assert "detected automatically" in page.rows[2]["text"]
    for row in page.rows[:3]:
        sources = [img["src"] for img in row["images"]]
        assert len(sources) == 2 and all((out / src).is_file() for src in sources)  # relative: no server needed
        assert any("qc_sagittal" in src for src in sources) and any("level_chart" in src for src in sources)
    for row in page.rows[3:]:
        assert row["images"] == [] and "failed" in row["text"]
    assert "damaged or truncated" in page.rows[3]["text"]
    assert page.group_links and all((out / link).is_file() for link in page.group_links)
    html_text = (out / REPORT).read_text()
    for control in ('id="filter-text"', 'id="filter-status"', 'id="filter-flag"'):
        assert control in html_text


def test_rerun_skips_finished_subjects(first_run):
    root, out, home, _result = first_run
    record = out / "sub-01" / "anat" / "sub-01_T2w_rootletseg-batch.json"
    before = record.stat().st_mtime_ns
    again = batch(root, "-o", out, "--model", "demo", "--landmark-model", "demo-spine", "--jobs", "1", env_home=home)
    assert again.returncode == 1
    status = read_status(out)
    assert [status[s]["status"] for s in ("sub-01", "sub-02", "sub-03")] == ["skipped"] * 3
    assert status["sub-04"]["status"] == "failed"  # a failed image is tried again, and fails again
    assert record.stat().st_mtime_ns == before
    assert "n_skipped: 3" in again.stdout


def test_no_landmark_model_is_a_failed_image_with_its_reason(first_run, tmp_path):
    root, _out, home, _result = first_run
    out = tmp_path / "out"
    result = batch(root, "-o", out, "--model", "demo", "--landmark-model", tmp_path / "no-such-model", "--jobs", "1",
                   "--include", "sub-03*", env_home=home)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    row = read_status(out)["sub-03"]
    assert row["status"] == "failed" and "no-such-model" in row["reason"]


def test_changed_input_is_not_skipped_and_existing_outputs_need_overwrite(first_run, tmp_path):
    root, out, home, _result = first_run
    # an input that changed (same name, other bytes): the record no longer matches
    cord = root / "derivatives" / "labels" / "sub-02" / "anat" / "sub-02_T2w_label-SC_seg.nii.gz"
    original = cord.read_bytes()
    try:
        import gzip

        cord.write_bytes(gzip.compress(gzip.decompress(original), compresslevel=1, mtime=1))  # same voxels, new sha256
        assert cord.read_bytes() != original
        result = batch(root, "-o", out, "--model", "demo", "--landmark-model", "demo-spine", "--jobs", "1",
                       "--include", "sub-02*", env_home=home)
        status = read_status(out)
        assert status["sub-02"]["status"] == "failed" and "--overwrite" in status["sub-02"]["reason"]
        result = batch(root, "-o", out, "--model", "demo", "--landmark-model", "demo-spine", "--jobs", "1",
                       "--include", "sub-02*", "--overwrite", env_home=home)
        assert result.returncode == 0, result.stderr
        assert read_status(out)["sub-02"]["status"] == "done"
    finally:
        cord.write_bytes(original)


def test_bad_inputs_are_one_sentence(tmp_path):
    home = tmp_path / "home"
    result = batch(tmp_path, "-o", tmp_path / "out", "--model", "demo", env_home=home)
    assert result.returncode == 1 and "no sub-* folder" in result.stderr and "Traceback" not in result.stderr
    root = tmp_path / "bids"
    write_phantom_bids(root, subjects=1)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    result = batch(root, "-o", mine, "--model", "demo", env_home=home)
    assert result.returncode == 1 and "not a RootletSeg derivatives dataset" in result.stderr
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    result = batch(root, "-o", tmp_path / "o", "--model", "demo", "--suffix", "UNIT1", env_home=home)
    assert result.returncode == 1 and "No image with suffix UNIT1" in result.stderr


def test_sigterm_stops_cleanly_and_a_rerun_goes_on(tmp_path):
    root, out, home = tmp_path / "bids", tmp_path / "out", tmp_path / "home"
    write_phantom_bids(root, subjects=4)
    env = dict(os.environ, ROOTLETSEG_HOME=str(home))
    process = subprocess.Popen([sys.executable, "-m", "RootletSegLogic", "batch", str(root), "-o", str(out),
                                "--model", "demo", "--jobs", "1", "--progress", "none"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 240
    while not list(out.glob("sub-*/anat/*_rootletseg-batch.json")) and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr
    assert "run the same command again" in stderr and "Traceback" not in stderr
    status = read_status(out)
    done = [s for s, row in status.items() if row["status"] == "done"]
    assert 1 <= len(done) < 4 and all(row["status"] in ("done", "not-run") for row in status.values())
    for subject in status:  # every subject has its whole set, or nothing
        files = list((out / subject / "anat").glob("*")) if (out / subject).exists() else []
        assert len(files) in (0, 12), (subject, files)  # 7 outputs, 4 figures, the record
    again = subprocess.run([sys.executable, "-m", "RootletSegLogic", "batch", str(root), "-o", str(out),
                            "--model", "demo", "--jobs", "1", "--progress", "none"],
                           capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0, again.stderr
    status = read_status(out)
    assert {s for s, row in status.items() if row["status"] == "skipped"} == set(done)
    assert all(row["status"] in ("done", "skipped") for row in status.values())
    assert not list((out / ".rootletseg-staging").glob("*"))

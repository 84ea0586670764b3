"""Cohort pieces without a cluster: BIDS discovery and derivatives lookup on real folders, review flags, the
report's HTML, the resume key."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest

from RootletSegLogic.analysis.flags import review_flags
from RootletSegLogic.analysis.report import qc_report_html
from RootletSegLogic.cohort.bids import find_images
from RootletSegLogic.cohort.records import Settings, model_identity, record_matches
from RootletSegLogic.errors import UserError


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")


def test_discovery_sessions_suffixes_filters_and_derivatives(tmp_path):
    for rel in ("sub-01/anat/sub-01_T2w.nii.gz", "sub-01/anat/sub-01_UNIT1.nii.gz", "sub-01/anat/sub-01_T1w.nii.gz",
                "sub-02/ses-01/anat/sub-02_ses-01_T2w.nii.gz", "sub-02/ses-02/anat/sub-02_ses-02_T2w.nii.gz",
                "sub-03/anat/sub-03_acq-sag_T2w.nii.gz", "sub-03/anat/notbids_T2w.nii.gz",
                "derivatives/labels/sub-01/anat/sub-01_T2w_label-SC_seg.nii.gz",
                "derivatives/labels/sub-01/anat/sub-01_T2w_label-discs_dlabel.nii.gz",
                "derivatives/labels/sub-02/ses-02/anat/sub-02_ses-02_T2w_label-PMJ_dlabel.nii.gz"):
        _touch(tmp_path / rel)
    images = find_images(tmp_path, ("T2w", "UNIT1"))
    assert [i.relative for i in images] == [
        "sub-01/anat/sub-01_T2w.nii.gz", "sub-01/anat/sub-01_UNIT1.nii.gz",
        "sub-02/ses-01/anat/sub-02_ses-01_T2w.nii.gz", "sub-02/ses-02/anat/sub-02_ses-02_T2w.nii.gz",
        "sub-03/anat/sub-03_acq-sag_T2w.nii.gz"]
    first = images[0]
    assert first.landmarks.cord.endswith("sub-01_T2w_label-SC_seg.nii.gz") and first.landmarks.pmj is None
    assert first.landmarks.discs.endswith("sub-01_T2w_label-discs_dlabel.nii.gz")
    assert first.landmarks.source == "derivatives" and images[1].landmarks.source == "none"
    ses2 = images[3]
    assert (ses2.subject, ses2.session, ses2.participant_id) == ("sub-02", "ses-02", "sub-02_ses-02")
    assert ses2.folder == "sub-02/ses-02/anat" and ses2.landmarks.pmj and not ses2.landmarks.cord
    assert [i.relative for i in find_images(tmp_path, ("T2w",), include=["sub-02*"], exclude=["*ses-01*"])] == [
        "sub-02/ses-02/anat/sub-02_ses-02_T2w.nii.gz"]
    with pytest.raises(UserError, match="No image with suffix T2w"):
        find_images(tmp_path, ("T2w",), include=["sub-09*"])
    with pytest.raises(UserError, match="no sub-"):
        find_images(tmp_path / "derivatives")


def _row(level, value, mid, height, n=10, kind="spinal"):
    return {"level_type": kind, "level": level, "label_value": value, "midpoint_mm": mid, "height_mm": height,
            "n_voxels": n}


def test_review_flags():
    good = [_row("C2", 2, 10, 10), _row("C3", 3, 22, 11), _row("C4", 4, 34, 11), _row("C2", 2, 15, 14, 0, "vertebral")]
    assert review_flags(good, {2: 50, 3: 50, 4: 50}, "derivatives", "paper", "pmj") == []
    bad = [_row("C2", 2, 30, 10), _row("C3", 3, 22, 45), _row("C5", 5, 44, 2)]
    codes = {f["code"]: f["text"] for f in review_flags(bad, {2: 5, 3: 5, 4: 0, 5: 5, 6: 7}, "automatic",
                                                        "paper", "S-axis")}
    assert "C4" in codes["missing-levels"]
    assert "levels-out-of-order" in codes
    assert "C3 (45.0 mm)" in codes["implausible-height"] and "C5 (2.0 mm)" in codes["implausible-height"]
    assert "C6" in codes["rootlets-far-from-cord"] and "C4" not in codes["rootlets-far-from-cord"]
    assert {"no-vertebral-levels", "no-pmj", "automatic-landmarks"} <= set(codes)


def test_report_escapes_and_marks_rows():
    entries = [
        {"participant_id": "sub-01", "image": "sub-01/anat/sub-01_T2w.nii.gz", "status": "done", "reason": "",
         "seconds": 3.2, "flags": [{"code": "no-pmj", "text": "No PMJ."}], "warnings": ["w <1>"],
         "landmarks": "derivatives", "figures": {"qc_sagittal": "sub-01/anat/q.png", "level_chart": "sub-01/anat/c.png"}},
        {"participant_id": "sub-02", "image": "sub-02/anat/sub-02_T2w.nii.gz", "status": "failed",
         "reason": "The file <x> & y is damaged.", "seconds": 0.1, "flags": [], "warnings": [], "landmarks": "none",
         "figures": {}},
    ]
    page = qc_report_html(entries, title="T <&>")

    class Rows(HTMLParser):
        def __init__(self):
            super().__init__()
            self.rows, self.text = [], []

        def handle_starttag(self, tag, attrs):
            if tag == "tr" and ("class", "subject") in attrs:
                self.rows.append(dict(attrs))

        def handle_data(self, data):
            self.text.append(data)

    parsed = Rows()
    parsed.feed(page)
    assert [(r["data-status"], r["data-flags"]) for r in parsed.rows] == [("done", "no-pmj"), ("failed", "")]
    text = "".join(parsed.text)
    assert "The file <x> & y is damaged." in text and "w <1>" in text and "T <&>" in text
    assert "<x>" not in page  # escaped in the markup
    assert '<option value="no-pmj">' in page


def test_resume_key(tmp_path):
    (tmp_path / "a.tsv").write_text("x")
    model = model_identity({"name": "demo", "release": "r1", "folder": "/somewhere", "configuration": "3d_fullres",
                            "folds": ["all"], "checkpoints": {"all": {"file": "f", "sha256": "abc"}}})
    assert "folder" not in model  # the cache location is not part of a model's identity
    record = {"status": "done", "input_sha256": {"image": "1"}, "model": model, "settings": Settings().as_dict(),
              "outputs": {"table": "a.tsv"}}
    assert record_matches(record, {"image": "1"}, model, Settings(), tmp_path)
    assert not record_matches(record, {"image": "2"}, model, Settings(), tmp_path)
    assert not record_matches(record, {"image": "1"}, dict(model, release="r2"), Settings(), tmp_path)
    assert not record_matches(record, {"image": "1"}, model, Settings(method="gapless"), tmp_path)
    # the distance mode is in the key; a record written before the mode existed (no "distance") is the default's
    assert "distance" not in Settings().as_dict() and Settings(distance="sct").as_dict()["distance"] == "sct"
    older = dict(record, settings={"method": "paper", "landmark_model": "totalspineseg"})
    assert record_matches(older, {"image": "1"}, model, Settings(distance="pmj"), tmp_path)
    assert not record_matches(older, {"image": "1"}, model, Settings(distance="sct"), tmp_path)
    sct = dict(record, settings=Settings(distance="sct").as_dict())
    assert record_matches(sct, {"image": "1"}, model, Settings(distance="sct"), tmp_path)
    assert not record_matches(sct, {"image": "1"}, model, Settings(), tmp_path)
    (tmp_path / "a.tsv").unlink()
    assert not record_matches(record, {"image": "1"}, model, Settings(), tmp_path)  # an output went missing

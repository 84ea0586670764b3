"""One model load per worker, many images each: `run_batch` on a real local Dask cluster of ONE worker process and
three phantom subjects (sub-03 without derivatives, so the landmark model is needed once too). Each outcome says
how many networks its image built, counted from the predictor's own "load" events in the worker process: the
rootlet network is built once for the three images and the landmark network once; the outputs equal those of
`run_pipeline` with models loaded for that image alone. Then `rootletseg batch --distance sct` (a real process)
gives the Python API's SCT-compatible numbers and is part of the resume key.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import SimpleITK as sitk

from RootletSegLogic.cohort.batch import BatchRequest, run_batch
from RootletSegLogic.cohort.phantom_bids import write_phantom_bids
from RootletSegLogic.cohort.records import Settings
from RootletSegLogic.cohort.runners import Engine
from RootletSegLogic.images.reading import read_label_map
from RootletSegLogic.levels.discs import discs_from_label_image, pmj_from_label_image
from RootletSegLogic.levels.method import compute_levels
from RootletSegLogic.levels.tables import read_level_table
from RootletSegLogic.pipeline.run import run_pipeline

# Files that hold paths or times (sidecars, planning JSON, SVG metadata) differ between any two runs; the rest must
# be byte for byte the same.
VARYING = ("sidecar", "landmarks_sidecar", "levels_planning_json")


@pytest.mark.slow  # about a minute on 2 shared cores: a Dask worker process, three images, three reference runs
def test_one_worker_loads_each_network_once_and_outputs_are_unchanged(tmp_path, monkeypatch):
    monkeypatch.setenv("ROOTLETSEG_HOME", str(tmp_path / "home"))  # the worker process inherits it
    root, out = tmp_path / "bids", tmp_path / "out"
    write_phantom_bids(root, subjects=3, without_derivatives=[3])
    request = BatchRequest(str(root), str(out), model="demo", settings=Settings(landmark_model="demo-spine"),
                           engine=Engine(jobs=1), device="cpu", threads=1)
    result = run_batch(request)

    outcomes = result.outcomes
    assert result.counts == {"done": 3, "skipped": 0, "failed": 0}, {k: o.reason for k, o in outcomes.items()}
    assert len({o.worker for o in outcomes.values()}) == 1  # one worker process ran all three
    assert sum(o.network_loads["rootlets"] for o in outcomes.values()) == 1
    assert sum(o.network_loads["landmarks"] for o in outcomes.values()) == 1  # sub-03 only

    for relative, outcome in outcomes.items():
        image = root / relative
        subject = image.name.split("_")[0]
        labels = root / "derivatives" / "labels" / subject / "anat"
        stem = image.name[: -len(".nii.gz")]
        given = {name: labels / f"{stem}_{entity}.nii.gz" for name, entity in
                 (("cord", "label-SC_seg"), ("discs", "label-discs_dlabel"), ("pmj", "label-PMJ_dlabel"))}
        given = {name: path for name, path in given.items() if path.exists()}
        alone = run_pipeline(image, tmp_path / "alone" / subject, model="demo", landmark_model="demo-spine",
                             device="cpu", threads=1, **given)
        assert set(alone.outputs) == set(outcome.outputs), relative
        folder = out / subject / "anat"
        for name, path in alone.outputs.items():
            if name in VARYING or path.endswith(".svg"):
                continue
            assert (folder / outcome.outputs[name]).read_bytes() == Path(path).read_bytes(), (relative, name)
        # the summary's warnings are those a run of this image alone gives (load warnings repeated, none lost)
        assert set(outcome.summary["warnings"]) == set(alone.warnings + alone.levels.warnings), relative


@pytest.mark.slow  # about 30 s: a real batch process starting its own Dask cluster
def test_batch_distance_sct_gives_the_api_numbers_and_is_in_the_resume_key(tmp_path):
    root, out = tmp_path / "bids", tmp_path / "out"
    write_phantom_bids(root, subjects=1)
    env = dict(os.environ, ROOTLETSEG_HOME=str(tmp_path / "home"))

    def batch(*extra):
        return subprocess.run([sys.executable, "-m", "RootletSegLogic", "batch", str(root), "-o", str(out), "--model",
                               "demo", "--jobs", "1", "--threads", "1", "--progress", "none", *extra],
                              capture_output=True, text=True, env=env, timeout=300)

    done = batch("--distance", "sct")
    assert done.returncode == 0, done.stderr
    folder = out / "sub-01" / "anat"
    record = json.loads((folder / "sub-01_T2w_rootletseg-batch.json").read_text())
    assert record["settings"]["distance"] == "sct"
    labels = root / "derivatives" / "labels" / "sub-01" / "anat"
    rootlets = read_label_map(folder / record["outputs"]["segmentation"])
    api = compute_levels(rootlets, read_label_map(labels / "sub-01_T2w_label-SC_seg.nii.gz"),
                         discs_from_label_image(read_label_map(labels / "sub-01_T2w_label-discs_dlabel.nii.gz")),
                         pmj_from_label_image(read_label_map(labels / "sub-01_T2w_label-PMJ_dlabel.nii.gz")),
                         distance="sct")
    table = {(r["level_type"], r["level"]): r for r in read_level_table(folder / record["outputs"]["levels_table"])}
    assert [(r.level_type, r.level) for r in api.rows] == list(table)
    for row in api.rows:
        for column in ("rostral_pmj_mm", "caudal_pmj_mm", "midpoint_pmj_mm", "height_mm"):
            assert table[(row.level_type, row.level)][column] == pytest.approx(getattr(row, column), abs=1e-3)
    planning = json.loads((folder / record["outputs"]["levels_planning_json"]).read_text())
    assert planning["provenance"]["distance"] == "sct"
    assert sitk.GetArrayFromImage(rootlets).any()

    again = batch("--distance", "sct")  # same settings: skipped
    assert again.returncode == 0, again.stderr
    assert "n_skipped: 1" in again.stdout
    default = batch()  # another distance: not skipped; its outputs exist, so it needs --overwrite
    with open(out / "rootletseg_status.tsv", newline="", encoding="utf-8") as handle:
        status = next(csv.DictReader(handle, delimiter="\t"))
    assert default.returncode == 1 and status["status"] == "failed" and "--overwrite" in status["reason"]

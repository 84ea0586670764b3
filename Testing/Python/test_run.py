"""`rootletseg run` and `rootletseg landmarks` in real processes with the embedded demo models, on phantoms whose
seeds the demo models never saw.

- the table from `run` (cord and discs found by demo-spine) equals the table from `levels` with the phantom's true
  cord and discs, within one voxel (1 mm);
- given cord and discs are used as they are (no landmark model needed), and then `run`'s table is `levels`' table;
- a missing or damaged landmark model fails before the rootlet inference, with one sentence and nothing written;
- `landmarks` writes the files SCT users have, which `levels` takes as they are.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from RootletSegLogic.levels.tables import read_level_table
from RootletSegLogic.segmentation.registry import EMBEDDED_DEMO_SPINE_PATH
from RootletSegLogic.synthetic.phantom import make_phantom, write_phantom

REPO = Path(__file__).resolve().parents[2]
VOXEL_MM = 1.0


def rootletseg(*args, cwd) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "RootletSegLogic", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def result_outputs(done: subprocess.CompletedProcess) -> dict:
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return next(line["outputs"] for line in lines if line.get("type") == "result")


def stages(done: subprocess.CompletedProcess) -> set:
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return {line.get("stage") for line in lines if line.get("type") == "progress"}


@pytest.fixture(scope="module")
def phantom_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("phantom_2200")
    return write_phantom(make_phantom(seed=2200), folder)


def _rows(path) -> dict:
    return {(row["level_type"], row["level"]): row for row in read_level_table(path)}


def test_run_table_equals_levels_with_the_true_cord_and_discs(phantom_files, tmp_path):
    out = tmp_path / "out"
    done = rootletseg("run", phantom_files["image"], "-o", out, "--model", "demo", "--landmark-model", "demo-spine",
                      "--pmj", phantom_files["pmj"], "--threads", "1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "level_type" in done.stdout and "spinal" in done.stdout  # the table is printed
    outputs = {line.split(": ", 1)[0]: line.split(": ", 1)[1] for line in done.stdout.splitlines() if ": /" in line}
    for name in ("landmarks_cord", "landmarks_discs", "landmarks_sidecar", "segmentation", "sidecar", "levels_table",
                 "levels_planning_json", "levels_markups", "levels_pairings", "levels_label_image",
                 "figure_level_chart", "figure_qc_sagittal"):
        assert Path(outputs[name]).is_file() and Path(outputs[name]).parent == out, name
    assert Path(outputs["landmarks_cord"]).name == "image_cord.nii.gz"
    assert Path(outputs["landmarks_discs"]).name == "image_discs.nii.gz"
    planning = json.loads(Path(outputs["levels_planning_json"]).read_text())
    landmarks = planning["provenance"]["landmarks"]
    assert landmarks["model"]["name"] == "demo-spine" and planning["provenance"]["model"]["name"] == "demo"
    from RootletSegLogic.images.files import file_sha256

    model = json.loads(Path(outputs["sidecar"]).read_text())["model"]  # digests taken when the model was loaded
    assert all(record["sha256"] == file_sha256(Path(model["folder"]) / record["file"])
               for record in model["checkpoints"].values())

    # `levels` with the truth cord and discs, on the rootlets `run` made
    truth = rootletseg("levels", "--rootlets", outputs["segmentation"], "--cord", phantom_files["cord"],
                       "--discs", phantom_files["discs"], "--pmj", phantom_files["pmj"], "-o", tmp_path / "t.tsv",
                       cwd=tmp_path)
    assert truth.returncode == 0, truth.stderr
    found, expected = _rows(outputs["levels_table"]), _rows(tmp_path / "t.tsv")
    assert found.keys() == expected.keys()
    # positions within one voxel along S; distances along the (found vs true) cord within one voxel step along
    # the cord, which on the phantom's gently curved cord is at most 1.1 mm
    tolerance = {"rostral_S_mm": VOXEL_MM, "caudal_S_mm": VOXEL_MM, "rostral_distance_mm": 1.1 * VOXEL_MM,
                 "caudal_distance_mm": 1.1 * VOXEL_MM}
    for key, row in expected.items():
        for column, allowed in tolerance.items():
            if row[column] is not None:
                assert abs(found[key][column] - row[column]) <= allowed + 1e-6, (key, column)

    # and `levels` on the files `run` wrote gives `run`'s own table exactly
    again = rootletseg("levels", "--rootlets", outputs["segmentation"], "--cord", outputs["landmarks_cord"],
                       "--discs", outputs["landmarks_discs"], "--pmj", phantom_files["pmj"],
                       "-o", tmp_path / "again.tsv", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "again.tsv").read_text() == Path(outputs["levels_table"]).read_text()

    # a second run refuses to replace the outputs, before any work
    repeat = rootletseg("run", phantom_files["image"], "-o", out, "--model", "demo", "--landmark-model",
                        "demo-spine", "--progress", "json", cwd=tmp_path)
    assert repeat.returncode != 0 and "exist" in repeat.stderr and "Traceback" not in repeat.stderr
    assert "predict" not in stages(repeat)


def test_given_cord_and_discs_are_used_as_they_are(phantom_files, tmp_path):
    out = tmp_path / "given"
    done = rootletseg("run", phantom_files["image"], "-o", out, "--model", "demo",
                      "--landmark-model", tmp_path / "no_such_model", "--cord", phantom_files["cord"],
                      "--discs", phantom_files["discs"], "--threads", "1", "--progress", "json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    outputs = result_outputs(done)
    assert not any(name.startswith("landmarks_") for name in outputs)
    assert "landmarks" not in stages(done)
    warnings = [json.loads(line)["message"] for line in done.stdout.splitlines()
                if line.startswith("{") and json.loads(line).get("type") == "warning"]
    assert any("No PMJ" in w for w in warnings)
    levels = rootletseg("levels", "--rootlets", outputs["segmentation"], "--cord", phantom_files["cord"],
                        "--discs", phantom_files["discs"], "-o", tmp_path / "t.tsv", cwd=tmp_path)
    assert levels.returncode == 0, levels.stderr
    assert (tmp_path / "t.tsv").read_text() == Path(outputs["levels_table"]).read_text()


def test_missing_landmark_model_fails_before_the_rootlet_inference(phantom_files, tmp_path):
    out = tmp_path / "missing"
    done = rootletseg("run", phantom_files["image"], "-o", out, "--model", "demo",
                      "--landmark-model", tmp_path / "no_such_model", "--progress", "json", cwd=tmp_path)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "predict" not in stages(done)
    assert not out.exists()


def test_damaged_landmark_model_fails_before_the_rootlet_inference(phantom_files, tmp_path):
    damaged = tmp_path / "damaged"
    shutil.copytree(EMBEDDED_DEMO_SPINE_PATH, damaged)
    next(damaged.rglob("checkpoint_final.pth")).write_bytes(b"\0" * 64)
    out = tmp_path / "out"
    done = rootletseg("run", phantom_files["image"], "-o", out, "--model", "demo", "--landmark-model", damaged,
                      "--progress", "json", cwd=tmp_path)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    errors = [json.loads(line) for line in done.stdout.splitlines() if '"error"' in line]
    assert errors and "damaged" in errors[0]["message"]
    assert "predict" not in stages(done)
    assert not out.exists()


def test_landmarks_writes_what_levels_takes(phantom_files, tmp_path):
    done = rootletseg("landmarks", phantom_files["image"], "-o", tmp_path / "sub-01", "--model", "demo-spine",
                      "--threads", "1", "--progress", "json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    outputs = result_outputs(done)
    assert outputs == {"cord": str(tmp_path / "sub-01_cord.nii.gz"), "discs": str(tmp_path / "sub-01_discs.nii.gz"),
                       "sidecar": str(tmp_path / "sub-01_landmarks.json")}
    sidecar = json.loads(Path(outputs["sidecar"]).read_text())
    assert sidecar["model"]["name"] == "demo-spine" and sidecar["landmarks"]["pmj"] is None
    assert [d["name"] for d in sidecar["landmarks"]["discs"].values()][:2] == ["C1/C2", "C2/C3"]
    levels = rootletseg("levels", "--rootlets", phantom_files["rootlets"], "--cord", outputs["cord"],
                        "--discs", outputs["discs"], "-o", tmp_path / "t.tsv", cwd=tmp_path)
    assert levels.returncode == 0, levels.stderr
    again = rootletseg("landmarks", phantom_files["image"], "-o", tmp_path / "sub-01", "--model", "demo-spine",
                       cwd=tmp_path)
    assert again.returncode != 0 and "exist" in again.stderr
    wrong = rootletseg("landmarks", phantom_files["image"], "-o", tmp_path / "x", "--model", "demo", cwd=tmp_path)
    assert wrong.returncode != 0 and "not a landmark model" in wrong.stderr


def test_run_distance_sct_and_gapless_caudal_give_the_levels_numbers(phantom_files, tmp_path):
    """`run --method gapless-caudal --distance sct` writes the table `levels` (and so the Python API,
    test_levels_cli) gives with the same options on run's label map; the default run's table differs from it."""
    out = tmp_path / "sct"
    done = rootletseg("run", phantom_files["image"], "-o", out, "--model", "demo", "--cord", phantom_files["cord"],
                      "--discs", phantom_files["discs"], "--pmj", phantom_files["pmj"], "--method", "gapless-caudal",
                      "--distance", "sct", "--threads", "1", "--progress", "json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    outputs = result_outputs(done)
    planning = json.loads(Path(outputs["levels_planning_json"]).read_text())
    assert planning["provenance"]["distance"] == "sct" and planning["provenance"]["method"] == "gapless-caudal"
    landmarks = ["--cord", phantom_files["cord"], "--discs", phantom_files["discs"], "--pmj", phantom_files["pmj"]]
    for name, options in (("sct", ["--method", "gapless-caudal", "--distance", "sct"]), ("default", [])):
        levels = rootletseg("levels", "--rootlets", outputs["segmentation"], *landmarks, *options,
                            "-o", tmp_path / f"{name}.tsv", cwd=tmp_path)
        assert levels.returncode == 0, levels.stderr
    assert (tmp_path / "sct.tsv").read_text() == Path(outputs["levels_table"]).read_text()
    assert (tmp_path / "default.tsv").read_text() != Path(outputs["levels_table"]).read_text()


def test_run_distance_sct_without_pmj_fails_before_any_inference(phantom_files, tmp_path):
    out = tmp_path / "out"
    done = rootletseg("run", phantom_files["image"], "-o", out, "--model", "demo", "--landmark-model", "demo-spine",
                      "--distance", "sct", "--progress", "json", cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    errors = [json.loads(line) for line in done.stdout.splitlines() if '"error"' in line]
    assert len(errors) == 1 and "SCT-compatible distances need a PMJ" in errors[0]["message"]
    assert not stages(done) & {"load", "predict"}
    assert not out.exists()


def test_loaded_models_are_reused_and_change_no_output(phantom_files, tmp_path):
    """One LoadedModels for two images builds each network once (counted from the predictor's "load" events);
    each image's outputs equal those of a run that loads its own models."""
    from RootletSegLogic.pipeline.models import LoadedModels
    from RootletSegLogic.pipeline.run import run_pipeline

    other = write_phantom(make_phantom(seed=2201), tmp_path / "phantom_2201")
    models = LoadedModels("demo", "demo-spine", device="cpu", threads=1)
    for index, files in enumerate((phantom_files, other)):
        shared = run_pipeline(files["image"], tmp_path / f"shared{index}", pmj=files["pmj"], models=models)
        alone = run_pipeline(files["image"], tmp_path / f"alone{index}", model="demo", landmark_model="demo-spine",
                             pmj=files["pmj"], device="cpu", threads=1)
        assert set(shared.outputs) == set(alone.outputs)
        for name, path in alone.outputs.items():
            if "sidecar" in name or name == "levels_planning_json" or path.endswith(".svg"):
                continue  # these hold their own paths and times
            assert Path(shared.outputs[name]).read_bytes() == Path(path).read_bytes(), name
        assert shared.warnings == alone.warnings
    assert models.loads == {"rootlets": 1, "landmarks": 1}

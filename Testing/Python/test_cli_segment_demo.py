"""`rootletseg demo` (= `run` on a phantom with demo-spine and demo) and `segment --cord/--discs/--pmj` in real
processes: phantom + embedded demo models, offline.

The demo model is part of the repository (RootletSegLogic/synthetic/models/demo), so these tests never skip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[2]



def rootletseg(*args) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "RootletSegLogic", *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


def run_demo(*args) -> subprocess.CompletedProcess:
    return rootletseg("demo", *args)


def test_demo_writes_phantom_and_segmentation(tmp_path):
    out = tmp_path / "demo"
    done = run_demo("--out", out, "--progress", "json", "--threads", "1")
    assert done.returncode == 0, done.stderr
    messages = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert messages[-1]["type"] == "result"
    outputs = messages[-1]["outputs"]
    for key in ("segmentation", "sidecar", "phantom_image", "phantom_rootlets", "phantom_cord", "levels_table",
                "levels_planning_json", "levels_markups", "levels_pairings", "levels_label_image",
                "figure_level_chart", "figure_qc_sagittal"):
        assert Path(outputs[key]).is_file(), key
    table = Path(outputs["levels_table"]).read_text().splitlines()
    header = table[0].split("\t")
    rows = [dict(zip(header, line.split("\t"))) for line in table[1:]]
    spinal = [row["level"] for row in rows if row["level_type"] == "spinal"]
    vertebral = [row["level"] for row in rows if row["level_type"] == "vertebral"]
    assert spinal == ["C2", "C3", "C4", "C5", "C6", "C7", "C8", "T1"]
    assert vertebral[:6] == ["C2", "C3", "C4", "C5", "C6", "C7"]
    assert all(float(row["rostral_pmj_mm"]) > 0 for row in rows if row["level_type"] == "spinal")
    assert Path(outputs["figure_level_chart"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    labels = sitk.ReadImage(outputs["segmentation"])
    image = sitk.ReadImage(outputs["phantom_image"])
    assert labels.GetSize() == image.GetSize() and labels.GetDirection() == image.GetDirection()
    assert labels.GetOrigin() == image.GetOrigin() and labels.GetSpacing() == image.GetSpacing()
    sidecar = json.loads(Path(outputs["sidecar"]).read_text())
    assert sidecar["model"]["name"] == "demo" and sidecar["model"]["source"] == "embedded"
    # one provenance shape: the levels carry the sidecar's model record, not a bare name
    planning = json.loads(Path(outputs["levels_planning_json"]).read_text())
    assert planning["provenance"]["model"] == sidecar["model"]
    # the demo is `run`: the cord and discs were found by demo-spine, not taken from the phantom's truth
    landmarks = json.loads(Path(outputs["landmarks_sidecar"]).read_text())
    assert landmarks["model"]["name"] == "demo-spine" and landmarks["model"]["source"] == "embedded"
    assert planning["provenance"]["inputs"]["cord"]["path"] == outputs["landmarks_cord"]
    assert planning["provenance"]["inputs"]["discs"]["path"] == outputs["landmarks_discs"]
    assert planning["provenance"]["landmarks"]["model"] == landmarks["model"]

    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    again = run_demo("--out", out)
    assert again.returncode == 1 and "already exists" in again.stderr and "Traceback" not in again.stderr
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


def test_segment_with_cord_discs_and_pmj_also_writes_the_levels(tmp_path):
    phantom_dir = tmp_path / "phantom"
    assert rootletseg("phantom", "--out", phantom_dir, "--seed", "1001").returncode == 0
    image = phantom_dir / "image.nii.gz"
    done = rootletseg("segment", image, "--model", "demo", "--threads", "1", "--cord", phantom_dir / "cord.nii.gz",
                      "--discs", phantom_dir / "discs.nii.gz", "--pmj", phantom_dir / "pmj.nii.gz",
                      "--progress", "json")
    assert done.returncode == 0, done.stderr
    outputs = json.loads(done.stdout.splitlines()[-1])["outputs"]
    assert Path(outputs["table"]) == phantom_dir / "image_levels.tsv"
    for key in ("segmentation", "sidecar", "table", "planning_json", "markups", "pairings", "label_image"):
        assert Path(outputs[key]).is_file(), key
    planning = json.loads(Path(outputs["planning_json"]).read_text())
    sidecar = json.loads(Path(outputs["sidecar"]).read_text())
    assert planning["provenance"]["model"] == sidecar["model"] and sidecar["model"]["name"] == "demo"

    # Levels from the same files by `rootletseg levels` give the same table: one core, two faces.
    again = rootletseg("levels", "--rootlets", outputs["segmentation"], "--cord", phantom_dir / "cord.nii.gz",
                       "--discs", phantom_dir / "discs.nii.gz", "--pmj", phantom_dir / "pmj.nii.gz",
                       "-o", tmp_path / "levels.tsv")
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "levels.tsv").read_text() == Path(outputs["table"]).read_text()


def test_segment_checks_level_inputs_before_segmenting(tmp_path):
    phantom_dir = tmp_path / "phantom"
    assert rootletseg("phantom", "--out", phantom_dir, "--seed", "1002").returncode == 0
    before = sorted(p.name for p in phantom_dir.iterdir())
    done = rootletseg("segment", phantom_dir / "image.nii.gz", "--model", "demo", "--cord", tmp_path / "missing.nii.gz")
    assert done.returncode == 1 and "does not exist" in done.stderr and "Traceback" not in done.stderr
    assert sorted(p.name for p in phantom_dir.iterdir()) == before
    done = rootletseg("segment", phantom_dir / "image.nii.gz", "--model", "demo", "--pmj", phantom_dir / "pmj.nii.gz")
    assert done.returncode == 1 and "--pmj alone" in done.stderr
    done = rootletseg("segment", phantom_dir / "image.nii.gz", "--model", "demo", "--discs",
                      phantom_dir / "discs.nii.gz", "--distance", "sct")
    assert done.returncode == 1 and "--distance sct" in done.stderr and "add --cord" in done.stderr
    assert sorted(p.name for p in phantom_dir.iterdir()) == before


def test_segment_levels_with_sct_distance_and_caudal_gapless_equal_levels(tmp_path):
    """`segment --method gapless-caudal --distance sct` writes the table `levels` writes with the same options."""
    phantom_dir = tmp_path / "phantom"
    assert rootletseg("phantom", "--out", phantom_dir, "--seed", "1004").returncode == 0
    landmarks = ["--cord", phantom_dir / "cord.nii.gz", "--discs", phantom_dir / "discs.nii.gz",
                 "--pmj", phantom_dir / "pmj.nii.gz", "--method", "gapless-caudal", "--distance", "sct"]
    done = rootletseg("segment", phantom_dir / "image.nii.gz", "--model", "demo", "--threads", "1", "--no-crop",
                      *landmarks, "--progress", "json")
    assert done.returncode == 0, done.stderr
    outputs = json.loads(done.stdout.splitlines()[-1])["outputs"]
    planning = json.loads(Path(outputs["planning_json"]).read_text())
    assert planning["provenance"]["distance"] == "sct" and planning["provenance"]["method"] == "gapless-caudal"
    again = rootletseg("levels", "--rootlets", outputs["segmentation"], *landmarks, "-o", tmp_path / "levels.tsv")
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "levels.tsv").read_text() == Path(outputs["table"]).read_text()
    default = rootletseg("levels", "--rootlets", outputs["segmentation"], *landmarks[:6], "--method",
                         "gapless-caudal", "-o", tmp_path / "default.tsv")
    assert default.returncode == 0 and (tmp_path / "default.tsv").read_text() != Path(outputs["table"]).read_text()


def test_segment_refuses_a_cord_on_another_grid_before_segmenting(tmp_path):
    ras, psr = tmp_path / "ras", tmp_path / "psr"
    assert rootletseg("phantom", "--out", ras, "--seed", "1003").returncode == 0
    assert rootletseg("phantom", "--out", psr, "--seed", "1003", "--orientation", "PSR").returncode == 0
    before = sorted(p.name for p in ras.iterdir())
    done = rootletseg("segment", ras / "image.nii.gz", "--model", "demo", "--cord", psr / "cord.nii.gz")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "not on the same voxel grid as the input image" in done.stderr and "PSR vs RAS" in done.stderr
    assert sorted(p.name for p in ras.iterdir()) == before  # nothing segmented, nothing written


def test_level_outputs_are_named_after_the_segmentation(tmp_path):
    phantom_dir = tmp_path / "phantom"
    assert rootletseg("phantom", "--out", phantom_dir, "--seed", "1004").returncode == 0
    done = rootletseg("segment", phantom_dir / "image.nii.gz", "--model", "demo", "--threads", "1",
                      "-o", tmp_path / "sub-07_rootlets.nii.gz", "--cord", phantom_dir / "cord.nii.gz",
                      "--progress", "json")
    assert done.returncode == 0, done.stderr
    outputs = json.loads(done.stdout.splitlines()[-1])["outputs"]
    assert Path(outputs["table"]) == tmp_path / "sub-07_levels.tsv"
    assert Path(outputs["label_image"]) == tmp_path / "sub-07_levels.nii.gz"


def test_segment_writes_levels_with_the_segmentation_or_says_why_not(tmp_path):
    phantom_dir = tmp_path / "phantom"
    assert rootletseg("phantom", "--out", phantom_dir, "--seed", "1005").returncode == 0
    image = phantom_dir / "image.nii.gz"
    # an existing level output stops the whole set before segmenting: no label map, no sidecar
    (phantom_dir / "image_levels.tsv").write_text("mine\n")
    before = sorted(p.name for p in phantom_dir.iterdir())
    done = rootletseg("segment", image, "--model", "demo", "--cord", phantom_dir / "cord.nii.gz")
    assert done.returncode == 1 and "already exists" in done.stderr and "Traceback" not in done.stderr
    assert sorted(p.name for p in phantom_dir.iterdir()) == before
    assert (phantom_dir / "image_levels.tsv").read_text() == "mine\n"
    (phantom_dir / "image_levels.tsv").unlink()
    # levels that cannot be computed (an empty cord) keep the segmentation, which cost the long work, and say so
    cord = sitk.ReadImage(str(phantom_dir / "cord.nii.gz")) * 0
    sitk.WriteImage(cord, str(tmp_path / "empty_cord.nii.gz"))
    # (with the ROI crop on, an empty cord is refused before the inference: nothing is written)
    done = rootletseg("segment", image, "--model", "demo", "--threads", "1", "--cord", tmp_path / "empty_cord.nii.gz")
    assert done.returncode == 1 and "Traceback" not in done.stderr and "no voxel inside the image" in done.stderr
    assert not (phantom_dir / "image_rootlets.nii.gz").exists()
    done = rootletseg("segment", image, "--model", "demo", "--threads", "1", "--cord", tmp_path / "empty_cord.nii.gz",
                      "--no-crop")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "was written to" in done.stderr and "but not the levels" in done.stderr
    assert (phantom_dir / "image_rootlets.nii.gz").is_file() and (phantom_dir / "image_rootlets.json").is_file()
    assert not (phantom_dir / "image_levels.tsv").exists() and not (phantom_dir / "image_levels.nii.gz").exists()

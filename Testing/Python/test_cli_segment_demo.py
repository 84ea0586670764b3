"""`rootletseg demo` in a real process: phantom + embedded demo model, offline (skipped without the demo model)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[2]
DEMO_MODEL = REPO / "Resources" / "Models" / "demo"

pytestmark = pytest.mark.skipif(not DEMO_MODEL.is_dir(), reason="the demo model (Resources/Models/demo) is not built")


def run_demo(*args) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "RootletSegLogic", "demo", *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


def test_demo_writes_phantom_and_segmentation(tmp_path):
    out = tmp_path / "demo"
    done = run_demo("--out", out, "--progress", "json", "--threads", "1")
    assert done.returncode == 0, done.stderr
    messages = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert messages[-1]["type"] == "result"
    outputs = messages[-1]["outputs"]
    for key in ("segmentation", "sidecar", "phantom_image", "phantom_rootlets", "phantom_cord"):
        assert Path(outputs[key]).is_file(), key
    labels = sitk.ReadImage(outputs["segmentation"])
    image = sitk.ReadImage(outputs["phantom_image"])
    assert labels.GetSize() == image.GetSize() and labels.GetDirection() == image.GetDirection()
    assert labels.GetOrigin() == image.GetOrigin() and labels.GetSpacing() == image.GetSpacing()
    sidecar = json.loads(Path(outputs["sidecar"]).read_text())
    assert sidecar["model"]["name"] == "demo" and sidecar["model"]["source"] == "embedded"

    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    again = run_demo("--out", out)
    assert again.returncode == 1 and "already exists" in again.stderr and "Traceback" not in again.stderr
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before

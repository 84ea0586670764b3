"""The package as users install it: a real wheel, built from the project's files, installed (not editable) into a
fresh folder, then `rootletseg demo` run from another folder through the wheel's own console script.

The demo model and the Slicer terminology are package data, so the wheel alone must carry them: before they moved
inside the package, a wheel had no `Resources/` and `rootletseg demo` / `--model demo` failed in any install that
was not editable. Dependencies (torch, nnU-Net, ...) come from the test environment; the wheel is put first on
PYTHONPATH so the editable checkout cannot stand in for it (the test checks which copy was imported).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE_DIR = REPO / "RootletSegLogic"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # A copy of the sources keeps the build's egg-info and build/ folders out of the checkout.
    source = tmp_path_factory.mktemp("source") / "rootletseg"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__",
                                                                 ".pytest_cache", ".hypothesis", "demo_output"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(out), str(source)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    wheels = list(out.glob("rootletseg-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_the_wheel_holds_every_package_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {str(p.relative_to(REPO)) for p in PACKAGE_DIR.rglob("*")
                if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}
    missing = sorted(expected - names)
    assert not missing, f"not in the wheel: {missing}"
    assert "RootletSegLogic/synthetic/models/demo/nnUNetTrainer__nnUNetPlans__3d_fullres/fold_all/" \
           "checkpoint_final.pth" in names
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "rootletseg = RootletSegLogic.cli.main:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_installed_wheel_runs_the_demo_from_another_folder(wheel, tmp_path):
    target = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                           str(wheel)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = dict(os.environ, PYTHONPATH=str(target), PYTHONNOUSERSITE="1")
    where = subprocess.run([sys.executable, "-c", "import RootletSegLogic; print(RootletSegLogic.__file__)"],
                           capture_output=True, text=True, cwd=str(elsewhere), env=env, timeout=120)
    assert Path(where.stdout.strip()).is_relative_to(target), where.stdout + where.stderr
    script = target / "bin" / "rootletseg"
    assert script.is_file()
    run = subprocess.run([sys.executable, str(script), "demo", "--out", "demo", "--threads", "1", "--progress", "json"],
                         capture_output=True, text=True, cwd=str(elsewhere), env=env, timeout=600)
    assert run.returncode == 0, run.stderr
    result = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")][-1]
    assert result["type"] == "result"
    outputs = result["outputs"]
    segmentation = Path(outputs["segmentation"])
    assert segmentation.is_relative_to(elsewhere / "demo") and segmentation.is_file()
    sidecar = json.loads(Path(outputs["sidecar"]).read_text())
    assert Path(sidecar["model"]["folder"]).is_relative_to(target)  # the wheel's own demo model was used
    assert (elsewhere / "demo" / "image_levels.tsv").is_file()

"""Hardening (issue 8), kinds "foreign model definitions" and "models import --force interrupted": real
`rootletseg models` / `segment` processes with a per-test model cache (ROOTLETSEG_HOME, from conftest)."""

from __future__ import annotations

import json
import os
import signal
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hardening_kit import assert_refused, cli, cli_with_sigterm_after, snapshot  # noqa: E402
from model_factory import make_model_folder, small_plans  # noqa: E402

TRAINER = "nnUNetTrainer__nnUNetPlans__3d_fullres"


def home() -> Path:
    return Path(os.environ["ROOTLETSEG_HOME"])


def foreign(root: Path, edit) -> Path:
    """A valid tiny model folder whose plans.json is then changed by `edit(architecture)`."""
    folder = make_model_folder(root, small_plans())
    plans_path = folder / TRAINER / "plans.json"
    plans = json.loads(plans_path.read_text())
    edit(plans["configurations"]["3d_fullres"]["architecture"])
    plans_path.write_text(json.dumps(plans))
    return folder


def zipped(folder: Path, path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for file in sorted(folder.rglob("*")):
            if file.is_file():
                archive.write(file, file.relative_to(folder))
    return path


def set_class(name):
    return lambda arch: arch.__setitem__("network_class_name", name)


def set_op(key, name):
    return lambda arch: arch["arch_kwargs"].__setitem__(key, name)


FOREIGN = {
    "class outside nnU-Net": (set_class("os.system"), "network class 'os.system'"),
    "class from an unknown module": (set_class("evil_networks.Net"), "network class"),
    "op outside torch.nn": (set_op("conv_op", "subprocess.Popen"), "operation 'subprocess.Popen'"),
    "op of the wrong type": (set_op("norm_op", 42), "operation '42'"),
    "architecture not an object": (lambda arch: arch.clear() or arch.update({"x": 1}), "network class 'None'"),
}


@pytest.mark.parametrize("case", FOREIGN)
def test_import_refuses_foreign_plans_and_leaves_the_cache(tmp_path, case):
    edit, fragment = FOREIGN[case]
    folder = foreign(tmp_path / "m", edit)
    archive = zipped(folder, tmp_path / "m.zip")
    before = snapshot(home()) if home().exists() else {}
    for source in (folder, archive):
        assert_refused(cli("models", "import", source, "--name", "foreign"), fragment)
    after = snapshot(home()) if home().exists() else {}
    assert after == before


def test_segment_with_foreign_zip_extracts_nothing(tmp_path):
    archive = zipped(foreign(tmp_path / "m", set_class("builtins.eval")), tmp_path / "m.zip")
    image = tmp_path / "image.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((12, 14, 10), np.int16)), str(image))
    before = snapshot(tmp_path)
    assert_refused(cli("segment", image, "--model", archive, "--device", "cpu", "--progress", "none"),
                   "network class 'builtins.eval'")
    assert snapshot(tmp_path) == before
    assert not (home() / "models" / "local").exists() or not any((home() / "models" / "local").iterdir())


def test_nnunet_class_that_does_not_exist_is_one_sentence(tmp_path):
    folder = foreign(tmp_path / "m", set_class("dynamic_network_architectures.architectures.unet.NoSuchUNet"))
    image = tmp_path / "image.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((12, 14, 10), np.int16)), str(image))
    before = snapshot(tmp_path)
    assert_refused(cli("segment", image, "--model", folder, "--device", "cpu", "--threads", "1", "--progress",
                       "none"), "cannot be built")
    assert snapshot(tmp_path) == before


def listed_models() -> dict:
    result = cli("models", "list", "--json")
    assert result.returncode == 0, result.stderr
    return {row["name"]: row for row in json.loads(result.stdout)}


@pytest.mark.parametrize("at", [1, 2])  # after the old model is set aside / after the new one is moved in
def test_interrupted_import_force_keeps_the_old_model(tmp_path, at):
    old = make_model_folder(tmp_path / "old", small_plans(), seed=1)
    new = make_model_folder(tmp_path / "new", small_plans(), seed=2)
    assert cli("models", "import", old, "--name", "mine").returncode == 0
    before = snapshot(home() / "models" / "imported")
    result = cli_with_sigterm_after("replace", at, "models", "import", new, "--name", "mine", "--force", timeout=120)
    assert result.returncode == 128 + signal.SIGTERM, result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot(home() / "models" / "imported") == before
    assert [name for name in listed_models() if "mine" in name] == ["mine"]


def test_set_aside_folder_left_by_a_kill_is_not_a_model(tmp_path):
    old = make_model_folder(tmp_path / "old", small_plans(), seed=1)
    assert cli("models", "import", old, "--name", "mine").returncode == 0
    imported = home() / "models" / "imported"
    os.rename(imported / "mine", imported / ".old-mine-1234-abcd")  # what SIGKILL between the renames leaves
    names = listed_models()
    assert "mine" not in names and not any(name.startswith(".") for name in names)

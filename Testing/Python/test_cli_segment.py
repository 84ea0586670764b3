"""`rootletseg segment` in real processes (`python -m RootletSegLogic segment ...`), real nnU-Net, tiny untrained model.

Checks: every input format and the `_0000` name; outputs on exactly the input grid; the sidecar; `--progress json`
writes only JSON lines ending with the result; bad inputs give one sentence, a non-zero exit, no traceback and no
file; SIGTERM / SIGINT during prediction exit 143 / 130 and leave nothing behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parent))

from model_factory import make_model_folder, small_plans  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def command(*args) -> list:
    # one thread: the tiny test network is far slower with 2 threads on a machine busy with other work
    return [sys.executable, "-m", "RootletSegLogic", "segment", *map(str, args), "--threads", "1"]


def environment() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run(*args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run(command(*args), cwd=REPO, env=environment(), capture_output=True, text=True,
                          timeout=timeout)


def json_lines(stdout: str) -> list:
    lines = [line for line in stdout.splitlines() if line.strip()]
    return [json.loads(line) for line in lines]  # raises on any non-JSON line


def volume(shape_xyz=(20, 16, 24), spacing=(0.8, 1.0, 1.2), seed=0) -> sitk.Image:
    rng = np.random.default_rng(seed)
    nx, ny, nz = shape_xyz
    z, y, x = np.mgrid[0:nz, 0:ny, 0:nx]
    array = (2 * x + y + 3 * z + 50 * (((x - 5) ** 2 + (y - 6) ** 2 + (z - 9) ** 2) < 12)).astype(np.float32)
    array += rng.normal(0, 3, array.shape).astype(np.float32)
    image = sitk.GetImageFromArray(array.astype(np.int16))
    image.SetSpacing(spacing)
    image.SetOrigin((-7.5, 21.0, 3.25))
    image.SetDirection((-1, 0, 0, 0, 0, 1, 0, -1, 0))  # "RIP": not the model's orientation
    return image


def grid(image: sitk.Image):
    return image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return make_model_folder(tmp_path_factory.mktemp("model"), small_plans(), seed=1)


@pytest.mark.parametrize("name, expected_stem", [
    ("plain.nii", "plain"),
    ("gz.nii.gz", "gz"),
    ("sub-01_T2w.nrrd", "sub-01_T2w"),
    ("meta.mha", "meta"),
    ("sub-02_T2w_0000.nii.gz", "sub-02_T2w"),
])
def test_formats_outputs_sidecar_and_json_progress(tmp_path, model_dir, name, expected_stem):
    source = tmp_path / name
    sitk.WriteImage(volume(), str(source))
    done = run(source, "--model", model_dir, "--device", "cpu", "--progress", "json")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    messages = json_lines(done.stdout)  # stdout holds JSON lines only
    assert messages[-1]["type"] == "result"
    assert all(m["type"] in ("progress", "warning") for m in messages[:-1])
    stages = {m["stage"] for m in messages if m["type"] == "progress"}
    assert {"load", "preprocess", "predict", "export"} <= stages
    predict = [m for m in messages if m["type"] == "progress" and m["stage"] == "predict"]
    assert predict[-1]["done"] == predict[-1]["total"] > 0

    seg_path = tmp_path / f"{expected_stem}_rootlets.nii.gz"
    side_path = tmp_path / f"{expected_stem}_rootlets.json"
    assert messages[-1]["outputs"] == {"segmentation": str(seg_path), "sidecar": str(side_path)}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, seg_path.name, side_path.name])
    labels = sitk.ReadImage(str(seg_path))
    original = sitk.ReadImage(str(source))
    if ".nii" in name:  # NIfTI in, NIfTI out: the grid is bit for bit the input's
        assert grid(labels) == grid(original)
    else:  # NRRD/MHA store doubles, NIfTI float32: equal to float32 precision
        assert labels.GetSize() == original.GetSize()
        for a, b in zip(grid(labels)[1:], grid(original)[1:]):
            assert np.allclose(a, b, rtol=1e-6, atol=1e-6)
    assert labels.GetPixelID() == sitk.sitkUInt8
    sidecar = json.loads(side_path.read_text())
    assert sidecar["input"]["path"] == str(source)
    assert sidecar["model"]["folds"] == ["0"] and sidecar["model"]["trusted"] is False
    # backend auto on a volume of one tile: PyTorch (OpenVINO is set up from two tiles on: see the next test)
    assert sidecar["settings"] == {"backend": "torch", "backend_requested": "auto", "openvino": None, "device": "cpu",
                                   "device_requested": "cpu", "threads": 1, "tta": False, "mirror_axes": None,
                                   "step": 0.5, "gaussian": True, "postprocessing": None, "folds": ["0"]}
    assert sidecar["roi"] == {"cropped": False, "reason": "no cord given"}
    assert sidecar["software"]["openvino"] is None  # it did not run
    assert sidecar["orientation"]["used"] == "RAS" and sidecar["orientation"]["input"] == "RIP"
    assert set(sidecar["software"]) >= {"rootletseg", "nnunetv2", "torch"}


def test_auto_runs_openvino_on_a_volume_of_several_tiles(tmp_path, model_dir):
    source = tmp_path / "big.nii.gz"
    sitk.WriteImage(volume(shape_xyz=(44, 50, 40)), str(source))  # several (16, 32, 32) patches
    done = run(source, "--model", model_dir, "--threads", "1", "--progress", "none")
    assert done.returncode == 0, done.stderr
    sidecar = json.loads((tmp_path / "big_rootlets.json").read_text())
    settings = sidecar["settings"]
    assert sidecar["software"]["openvino"]
    assert settings["backend"] == "openvino" and settings["backend_requested"] == "auto"
    assert settings["openvino"]["precision"] == "f32"
    assert settings["openvino"]["cache"].startswith(os.environ["ROOTLETSEG_HOME"])


def test_explicit_output_overwrite_and_folds(tmp_path, model_dir):
    source = tmp_path / "t2.nii.gz"
    sitk.WriteImage(volume(), str(source))
    out = tmp_path / "custom.nrrd"
    (tmp_path / "custom.json").write_text("user's file")
    refused = run(source, "-o", out, "--model", model_dir, "--device", "cpu")
    assert refused.returncode == 1 and "already exists" in refused.stderr
    assert (tmp_path / "custom.json").read_text() == "user's file" and not out.exists()
    bad_fold = run(source, "-o", out, "--model", model_dir, "--device", "cpu", "--folds", "3", "--overwrite")
    assert bad_fold.returncode == 1 and "no fold 3" in bad_fold.stderr and not out.exists()
    done = run(source, "-o", out, "--model", model_dir, "--device", "cpu", "--folds", "0", "--overwrite",
               "--progress", "none")
    assert done.returncode == 0, done.stderr
    assert f"segmentation: {out}" in done.stdout
    assert json.loads((tmp_path / "custom.json").read_text())["model"]["folds"] == ["0"]
    assert grid(sitk.ReadImage(str(out))) == grid(sitk.ReadImage(str(source)))


def _bad_input(tmp_path: Path, kind: str) -> tuple:
    """(argument list, expected words in the message) for one bad input case; files made in tmp_path."""
    if kind == "missing":
        return [tmp_path / "nothing.nii.gz"], "does not exist"
    if kind == "not-an-image":
        path = tmp_path / "notes.nii.gz"
        path.write_text("these are not voxels\n")
        return [path], "could not be read"
    if kind == "2d":
        path = tmp_path / "slice.nii.gz"
        sitk.WriteImage(sitk.Image(32, 32, sitk.sitkFloat32), str(path))
        return [path], "3D volume"
    if kind == "4d":
        path = tmp_path / "series.nii.gz"
        sitk.WriteImage(sitk.Image([8, 8, 8, 3], sitk.sitkFloat32), str(path))
        return [path], "3D volume"
    if kind == "nan":
        path = tmp_path / "nan.nii.gz"
        sitk.WriteImage(sitk.GetImageFromArray(np.full((8, 9, 10), np.nan, np.float32)), str(path))
        return [path], "NaN"
    if kind == "unknown-model":
        path = tmp_path / "t2.nii.gz"
        sitk.WriteImage(volume(), str(path))
        return [path, "--model", "no_such_model"], "no_such_model"
    if kind == "output-exists":
        path = tmp_path / "t2.nii.gz"
        sitk.WriteImage(volume(), str(path))
        (tmp_path / "t2_rootlets.nii.gz").write_bytes(b"the user's own file")
        return [path], "already exists"
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["missing", "not-an-image", "2d", "4d", "nan", "unknown-model", "output-exists"])
def test_bad_inputs_give_one_sentence_and_write_nothing(tmp_path, model_dir, kind):
    args, words = _bad_input(tmp_path, kind)
    if "--model" not in map(str, args):
        args += ["--model", model_dir]
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    done = run(*args, "--device", "cpu")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("rootletseg: error: "), done.stderr
    assert words in lines[0]
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # nothing written, nothing changed


def test_usage_errors_exit_2(tmp_path, model_dir):
    done = run(tmp_path / "x.nii.gz", "--folds", "one", "--model", model_dir)
    assert done.returncode == 2 and "Traceback" not in done.stderr


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_during_prediction_leaves_nothing(tmp_path, model_dir, sig, code):
    source = tmp_path / "big.nii.gz"
    sitk.WriteImage(volume((64, 64, 40)), str(source))
    # --step 0.1 makes ~2000 tiles of the tiny network: seconds of prediction to interrupt
    process = subprocess.Popen(command(source, "--model", model_dir, "--device", "cpu", "--step", "0.1",
                                       "--progress", "json"),
                               cwd=REPO, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        seen = None
        for line in process.stdout:
            message = json.loads(line)
            if message.get("stage") == "predict" and message["done"] >= 1:
                seen = message
                break
        assert seen is not None and seen["done"] < seen["total"], "prediction never started"
        process.send_signal(sig)
        rest, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == code, stderr
    assert "Traceback" not in stderr and "cancelled" in stderr
    last = json.loads(rest.splitlines()[-1])
    assert last["type"] == "error" and last["exit_code"] == code
    assert [p.name for p in tmp_path.iterdir()] == ["big.nii.gz"]  # no output, no temporary file


def test_real_mri_file_keeps_its_grid_exactly(tmp_path, model_dir, sct_data):
    source = sct_data / "t2" / "t2.nii.gz"
    out = tmp_path / "t2_rootlets.nii.gz"
    done = run(source, "-o", out, "--model", model_dir, "--device", "cpu", "--progress", "none")
    assert done.returncode == 0, done.stderr
    labels, original = sitk.ReadImage(str(out)), sitk.ReadImage(str(source))
    assert grid(labels) == grid(original)
    sidecar = json.loads((tmp_path / "t2_rootlets.json").read_text())
    assert sidecar["input"]["orientation"] == "PSR"  # stored sagittally; the model saw it as RAS
    assert sidecar["orientation"]["used"] == "RAS"


def test_a_cancel_that_a_library_turns_into_its_own_error_is_still_a_cancel(tmp_path, monkeypatch):
    """Real signal, real handler: torch can wrap the Cancelled raised in a callback into a RuntimeError (seen when
    SIGTERM landed inside load_state_dict); the CLI must still exit 143 with its "cancelled" event."""
    import os
    import signal as signal_module

    from RootletSegLogic.cli import main as cli
    from RootletSegLogic.cli.main import build_parser, main

    def command_hit_by_sigterm(args, reporter):
        try:
            os.kill(os.getpid(), signal_module.SIGTERM)  # our handler raises Cancelled here
        except Exception as wrapped:
            raise RuntimeError("error in a library callback") from wrapped
        return 0

    parser = build_parser
    monkeypatch.setattr(cli, "build_parser", lambda: _parser_running(parser(), command_hit_by_sigterm))
    assert main(["phantom", "--out", str(tmp_path / "x")]) == 143


def _parser_running(parser, func):
    """The real parser, with the `phantom` sub-command's function replaced by `func`."""
    subparsers = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    subparsers.choices["phantom"].set_defaults(func=func)
    return parser


# ------------------------------------------------------------------------------ region of interest and backend
def test_cord_crops_to_its_box_and_the_sidecar_records_box_and_backend(tmp_path):
    """`--cord` makes the network run on the cord's box + margin only, grown onto the model's grid; the label map
    still lies on exactly the input grid (zero outside the box); `--no-crop` runs the whole volume; both record
    what they did."""
    from RootletSegLogic.segmentation.model_folder import load_model_folder
    from RootletSegLogic.segmentation.predictor import Segmenter
    from RootletSegLogic.segmentation.registry import EMBEDDED_DEMO_PATH
    from RootletSegLogic.segmentation.roi import cord_box
    from RootletSegLogic.synthetic.phantom import make_phantom, write_phantom

    # the model's orientation is RAS: a permuted input; A-P twice the demo model's patch, so the crop saves tiles
    phantom = make_phantom(seed=2, shape=(48, 96, 128), orientation="PIL")
    paths = write_phantom(phantom, tmp_path / "phantom")
    out = tmp_path / "cropped_rootlets.nii.gz"
    done = run(paths["image"], "-o", out, "--model", "demo", "--cord", paths["cord"], "--roi-margin-mm", "8",
               "--backend", "torch", "--progress", "none")
    assert done.returncode == 0, done.stderr
    sidecar = json.loads(out.with_name("cropped_rootlets.json").read_text())
    cut = cord_box(phantom.image, phantom.cord, 8.0)
    box = Segmenter(load_model_folder(EMBEDDED_DEMO_PATH), device="cpu", backend="torch").align_roi(phantom.image, cut)
    assert box.size != cut.size and not box.covers_image
    assert sidecar["roi"] == {"cropped": True, **box.record(), "cord": str(paths["cord"])}
    assert sidecar["settings"]["backend"] == "torch" and sidecar["settings"]["openvino"] is None
    labels = sitk.ReadImage(str(out))
    assert grid(labels) == grid(sitk.ReadImage(str(paths["image"])))
    array = sitk.GetArrayFromImage(labels)
    inside = np.zeros(array.shape, dtype=bool)
    inside[tuple(slice(s, s + n) for s, n in zip(reversed(box.start), reversed(box.size)))] = True
    assert array[inside].any() and not array[~inside].any()

    whole = tmp_path / "whole_rootlets.nii.gz"
    done = run(paths["image"], "-o", whole, "--model", "demo", "--cord", paths["cord"], "--no-crop",
               "--backend", "torch", "--progress", "none")
    assert done.returncode == 0, done.stderr
    sidecar = json.loads(whole.with_name("whole_rootlets.json").read_text())
    assert sidecar["roi"]["cropped"] is False and sidecar["roi"]["reason"] == "cropping turned off"
    assert sidecar["settings"]["backend"] == "torch"


def test_roi_and_backend_errors_are_one_sentence_before_any_work(tmp_path, model_dir):
    source = tmp_path / "t2.nii.gz"
    sitk.WriteImage(volume(), str(source))
    bad_margin = run(source, "--model", model_dir, "--roi-margin-mm", "-3")
    assert bad_margin.returncode == 1 and "ROI margin" in bad_margin.stderr and "Traceback" not in bad_margin.stderr
    assert len(bad_margin.stderr.strip().splitlines()) == 1
    unknown = run(source, "--model", model_dir, "--backend", "onnx")
    assert unknown.returncode == 2 and "invalid choice" in unknown.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t2.nii.gz"]


def test_cli_default_margin_is_the_roi_default():
    from RootletSegLogic.cli import segment as cli_segment
    from RootletSegLogic.segmentation import backends, roi

    assert cli_segment.DEFAULT_ROI_MARGIN_MM == roi.DEFAULT_ROI_MARGIN_MM
    assert cli_segment.BACKENDS == backends.BACKENDS

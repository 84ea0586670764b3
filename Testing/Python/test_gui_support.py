"""The plain logic behind the Slicer panel (RootletSegLogic.gui_support, RootletSegLogic.dependencies), and the
panel's MRML pipeline on a real MRML scene from the slicer-core wheel.

Desktop Slicer cannot run here. What the panel does between its Qt widgets is in these functions: choosing the
model/device arguments, exporting the volume and starting the CLI as a child process, loading the label map as
level segments, computing the level table from segments + cord segment + disc markers, and the exports. They are
run here on real nodes; only the widgets, dialogs and timers of RootletSeg.py are left (checked statically in
test_ui_file.py).
"""

from __future__ import annotations

import csv
import io
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from RootletSegLogic.errors import UserError
from RootletSegLogic.slicer.dependencies import (
    NNUNET_REQUIREMENT,
    REQUIRED_MODULES,
    install_plan,
    installed_version,
    missing_packages,
    nnunet_pip_arguments,
    torch_constraint_file,
)
from RootletSegLogic.slicer.session import (
    EXPORT_FILTERS,
    EXPORT_SUFFIXES,
    Contrast,
    Device,
    LevelMethod,
    ModelChoice,
    apply_problem,
    cli_device,
    compute_scene_levels,
    ensure_suffix,
    export_filename,
    export_label_map,
    export_level_outputs,
    import_disc_label_file,
    load_segmentation_result,
    local_model_path,
    model_argument,
    safe_stem,
    segmentation_io_paths,
    segmentation_output,
    show_level_result,
    start_segmentation,
)

REPO = Path(__file__).resolve().parents[2]
DEMO_MODEL = REPO / "RootletSegLogic" / "synthetic" / "models" / "demo"


# ------------------------------------------------------------------------------------------------ plain logic


def test_enums_have_labels_and_cli_values():
    """Every choice shows a label in its combo box; model values are registry names the CLI knows."""
    from RootletSegLogic.segmentation.registry import known_names

    for enum_type in (Contrast, ModelChoice, Device, LevelMethod):
        labels = [member.label() for member in enum_type]
        assert all(labels) and len(set(labels)) == len(labels)
    assert {m.value for m in ModelChoice if m is not ModelChoice.local} <= set(known_names())
    assert [c.value for c in Contrast] == ["T2w", "T1w-INV1", "T1w-INV2", "UNIT1"]
    from RootletSegLogic.levels.types import METHODS

    assert {m.value for m in LevelMethod} <= set(METHODS)


def test_model_argument_and_apply_problem(tmp_path):
    assert model_argument(ModelChoice.rootletseg) == "rootletseg"
    assert model_argument(ModelChoice.demo, "ignored") == "demo"
    for empty in (None, "", ".", "  "):
        assert local_model_path(empty) is None
        with pytest.raises(UserError, match="No local model is chosen"):
            model_argument(ModelChoice.local, empty)
    with pytest.raises(UserError, match="does not exist"):
        model_argument(ModelChoice.local, tmp_path / "nope.zip")
    text = tmp_path / "model.txt"
    text.write_text("x")
    with pytest.raises(UserError, match="neither a folder nor a .zip"):
        model_argument(ModelChoice.local, text)
    zip_path = tmp_path / "model.zip"
    zip_path.write_bytes(b"PK")
    assert model_argument(ModelChoice.local, str(zip_path)) == str(zip_path.resolve())
    assert model_argument(ModelChoice.local, tmp_path) == str(tmp_path.resolve())

    assert apply_problem(False, ModelChoice.rootletseg) == "Select an input volume."
    assert apply_problem(True, ModelChoice.rootletseg) is None
    assert "No local model" in apply_problem(True, ModelChoice.local, "")
    assert apply_problem(True, ModelChoice.local, zip_path) is None


def test_cli_device():
    assert cli_device(Device.auto, "linux") == "auto"
    assert cli_device(Device.gpu, "linux") == "cuda"
    assert cli_device(Device.gpu, "win32") == "cuda"
    assert cli_device(Device.gpu, "darwin") == "mps"
    assert cli_device(Device.cpu, "darwin") == "cpu"


def test_file_names(tmp_path):
    assert safe_stem("sub-01 T2w/ax") == "sub-01_T2w_ax"
    assert safe_stem("...") == "volume"
    assert export_filename("t2", "labelmap") == "t2_rootlets.nii.gz"
    assert export_filename("t2", "segmentation") == "t2_rootlets.seg.nrrd"
    assert export_filename("t2", "markups") == "t2_level_bounds.mrk.json"
    with pytest.raises(ValueError):
        export_filename("t2", "pdf")
    assert set(EXPORT_FILTERS) == set(EXPORT_SUFFIXES)
    assert ensure_suffix(tmp_path / "out", "labelmap").name == "out.nii.gz"
    assert ensure_suffix(tmp_path / "out.nii.gz", "labelmap").name == "out.nii.gz"
    assert ensure_suffix(tmp_path / "levels", "table_csv").name == "levels.csv"
    assert ensure_suffix(tmp_path / "b.MRK.JSON", "markups").name == "b.MRK.JSON"
    image, labels = segmentation_io_paths(tmp_path, "T2 sag")
    assert image == tmp_path / "T2_sag.nii.gz" and labels == tmp_path / "T2_sag_rootlets.nii.gz"


def test_dependency_plan():
    assert missing_packages(lambda name: True) == []
    assert missing_packages(lambda name: False) == ["torch", "nnunetv2"]
    assert missing_packages(lambda name: name == "torch") == ["nnunetv2"]

    plan = install_plan(["torch", "nnunetv2"], pytorch_extension_available=True)
    assert [(s.package, s.how) for s in plan.steps] == [("torch", "pytorchutils"), ("nnunetv2", "pip")]
    assert plan.needed and plan.blocked is None
    assert "PyTorch extension" in plan.message and "nnunetv2>=2.5,<2.9" in plan.message
    assert "SimpleITK, torch and requests are kept" in plan.message and "Installed now: torch" in plan.message
    assert plan.message.rstrip().endswith("Install now?")

    # defect 12: the installed torch is checked before pip runs, and the message says what to do
    unfit = install_plan(["nnunetv2"], pytorch_extension_available=True, torch_version="2.9.1+cu128")
    assert unfit.steps == [] and "PyTorch 2.9.1+cu128 is installed" in unfit.blocked and "PyTorch Utils" in unfit.blocked
    fit = install_plan(["nnunetv2"], True, torch_version="2.5.1+cu121", nnunet_extension_available=True)
    assert [(s.package, s.how) for s in fit.steps] == [("nnunetv2", "nnunet-extension")]

    blocked = install_plan(["torch", "nnunetv2"], pytorch_extension_available=False)
    assert blocked.steps == [] and "Extensions Manager" in blocked.message

    only_nnunet = install_plan(["nnunetv2"], pytorch_extension_available=False)
    assert [s.how for s in only_nnunet.steps] == ["pip"] and only_nnunet.blocked is None
    assert not install_plan([], True).needed


def test_nnunet_pip_arguments_pin_the_installed_torch(tmp_path, monkeypatch):
    """The constraint file pins the torch that is installed, so pip keeps that build."""
    constraint = torch_constraint_file(tmp_path, "2.5.1+cu121")
    assert constraint.read_text() == "torch==2.5.1+cu121\n"
    assert nnunet_pip_arguments(constraint) == ["nnunetv2>=2.5,<2.9", "--constraint", str(constraint)]
    installed = torch_constraint_file(tmp_path)
    assert installed.read_text() == "torch==" + installed_version("torch") + "\n"
    monkeypatch.setattr("RootletSegLogic.slicer.dependencies.installed_version", lambda name: None)
    with pytest.raises(RuntimeError, match="torch is not installed"):
        torch_constraint_file(tmp_path)


def test_selective_install_keeps_slicers_simpleitk_torch_and_requests(tmp_path):
    """Defect 12: nnunetv2 --no-deps, then its dependencies without SimpleITK/torch/requests (pinned by constraints),
    and the macOS imagecodecs pin; pip is a recorder here (no network)."""
    from RootletSegLogic.slicer.dependencies import selective_install

    calls = []
    requires = lambda name: ["torch>=2.1.2", "SimpleITK>=2.2.1", "requests", "acvl-utils>=0.2", "nibabel",
                             "pywin32; sys_platform == 'win32'", "pytest; extra == 'dev'"]
    installed = selective_install(calls.append, tmp_path, requires=requires, platform="darwin")
    assert calls[0] == ["nnunetv2>=2.5,<2.9", "--no-deps"]
    assert installed == ["acvl-utils>=0.2", "nibabel", "imagecodecs<2026.5"]
    assert calls[1][:3] == installed and calls[1][3] == "--constraint"
    pins = (tmp_path / "rootletseg-keep-constraints.txt").read_text()
    assert "torch==" in pins and "SimpleITK==" in pins
    assert selective_install(calls.append, tmp_path, requires=requires, platform="linux") == ["acvl-utils>=0.2",
                                                                                              "nibabel"]


def test_requirements_match_pyproject():
    text = (REPO / "pyproject.toml").read_text()
    assert '"' + NNUNET_REQUIREMENT + '"' in text
    assert set(REQUIRED_MODULES) == {"torch", "nnunetv2"}
    assert missing_packages() == []  # this environment can segment


# ------------------------------------------------------------------------------------------------ MRML pipeline

import slicer  # noqa: E402  (slicer-core, a test dependency: these tests must run, never skip)


def _volume_with_transform(core, phantom):
    """The phantom as a volume node under a rigid parent transform (the panel exports world space)."""
    import vtk

    from RootletSegLogic.slicer.volumes import volume_node_from_image

    volume = volume_node_from_image(core.scene, phantom.image, "phantom T2w")
    transform = core.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "shift")
    matrix = vtk.vtkMatrix4x4()
    matrix.SetElement(0, 3, 7.5)
    matrix.SetElement(2, 3, -12.0)
    transform.SetMatrixTransformToParent(matrix)
    volume.SetAndObserveTransformNodeID(transform.GetID())
    return volume


def _segment_names(segmentation_node):
    segmentation = segmentation_node.GetSegmentation()
    return [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]


def test_scene_levels_match_the_core_and_exports_round_trip(core, phantom, tmp_path):
    """Label map file -> level segments (user segment kept) -> cord segment + imported disc labels -> the same
    LevelResult as compute_levels on the world-space images -> table node -> every export."""
    from RootletSegLogic.images.atomic import write_image
    from RootletSegLogic.images.grid import same_grid
    from RootletSegLogic.levels.discs import landmarks_from_label_image
    from RootletSegLogic.levels.method import compute_levels
    from RootletSegLogic.levels.tables import LEVEL_COLUMNS, level_table_tsv
    from RootletSegLogic.slicer.level_nodes import DISC_MARKUPS_NAME
    from RootletSegLogic.slicer.volumes import (
        image_from_volume_node,
        volume_node_from_image,
    )

    scene = core.scene
    volume = _volume_with_transform(core, phantom)
    world = image_from_volume_node(volume)  # the grid the CLI would get
    rootlets = sitk.Image(phantom.rootlets)
    rootlets.CopyInformation(world)
    cord_image = sitk.Image(phantom.cord)
    cord_image.CopyInformation(world)
    rootlets_path = write_image(rootlets, tmp_path / "labels.nii.gz")

    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "rootlets")
    segmentation.GetSegmentation().AddEmptySegment("mine", "My annotation")
    ids = load_segmentation_result(segmentation, rootlets_path, volume)
    assert sorted(ids) == list(range(2, 10))
    names = _segment_names(segmentation)
    assert "My annotation" in names and "C2 rootlets" in names and "T1 rootlets" in names
    load_segmentation_result(segmentation, rootlets_path, volume)  # a re-run replaces only its own
    assert _segment_names(segmentation).count("C2 rootlets") == 1 and "My annotation" in _segment_names(segmentation)

    cord_label = volume_node_from_image(scene, cord_image, "cord", labelmap=True)
    cord = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "cord")
    assert slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(cord_label, cord)
    cord_id = cord.GetSegmentation().GetNthSegmentID(0)

    # an SCT disc-label file may carry the PMJ (value 50) too
    discs_image = sitk.Maximum(sitk.Cast(phantom.discs, sitk.sitkUInt8), sitk.Cast(phantom.pmj, sitk.sitkUInt8))
    discs_image.CopyInformation(world)
    discs_path = write_image(discs_image, tmp_path / "discs.nii.gz")
    discs_node = import_disc_label_file(discs_path, scene)
    assert discs_node.GetName() == DISC_MARKUPS_NAME
    assert discs_node.GetNthControlPointLabel(0) == "C1/C2"
    assert discs_node.GetNthControlPointLabel(discs_node.GetNumberOfControlPoints() - 1) == "PMJ"

    for method in ("paper", "gapless"):
        result = compute_scene_levels(segmentation, volume, cord, cord_id, discs_node, method)
        discs, pmj = landmarks_from_label_image(discs_image)
        expected = compute_levels(rootlets, cord=cord_image, discs=discs, pmj_ras=pmj, method=method)
        assert level_table_tsv(result) == level_table_tsv(expected)
        assert result.distance_reference == "pmj" and len(result.spinal()) == 8 and result.vertebral()

    nodes = show_level_result(scene, result)
    assert nodes["table"].GetNumberOfRows() == len(result.rows)
    assert nodes["chart"].IsA("vtkMRMLPlotChartNode")
    again = show_level_result(scene, result, nodes["table"])
    assert again["table"] is nodes["table"] and again["chart"].GetID() == nodes["chart"].GetID()

    # exports
    label_path = export_label_map(segmentation, volume, tmp_path / "out_rootlets.nii.gz")
    written = sitk.ReadImage(str(label_path))
    assert np.array_equal(sitk.GetArrayFromImage(written), sitk.GetArrayFromImage(rootlets))
    assert same_grid(written, world)
    with pytest.raises(UserError):  # never overwrites unasked
        export_label_map(segmentation, volume, label_path)
    tsv = export_level_outputs(result, "table_tsv", tmp_path / "levels.tsv")
    csv_path = export_level_outputs(result, "table_csv", tmp_path / "levels.csv")
    tsv_rows = [line.split("\t") for line in tsv.read_text().splitlines()]
    csv_rows = list(csv.reader(io.StringIO(csv_path.read_text())))
    assert csv_rows == tsv_rows and csv_rows[0] == list(LEVEL_COLUMNS)
    planning = export_level_outputs(result, "planning_json", tmp_path / "plan.json",
                                                provenance={"contrast": "T2w", "model": "demo"})
    assert '"contrast": "T2w"' in planning.read_text()
    markups = export_level_outputs(result, "markups", tmp_path / "bounds.mrk.json")
    assert markups.read_text().lstrip().startswith("{")
    with pytest.raises(ValueError):
        export_level_outputs(result, "pdf", tmp_path / "x.pdf")


def test_disc_import_of_an_image_without_discs_is_a_user_error(core, phantom, tmp_path):
    from RootletSegLogic.images.atomic import write_image

    empty = sitk.Image(phantom.discs.GetSize(), sitk.sitkUInt8)
    empty.CopyInformation(phantom.discs)
    path = write_image(empty, tmp_path / "empty.nii.gz")
    with pytest.raises(UserError):
        import_disc_label_file(path, core.scene)


@pytest.fixture(scope="module")
def segmentation_model(tmp_path_factory):
    """The embedded demo model when it is built, else an untrained model folder (same path through nnU-Net)."""
    if DEMO_MODEL.is_dir():
        return "demo"
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from model_factory import make_model_folder, small_plans

    return str(make_model_folder(tmp_path_factory.mktemp("model"), small_plans(), seed=1))


def test_apply_path_runs_the_cli_in_a_child_process(core, phantom, segmentation_model):
    """What Apply does: world-space export -> `rootletseg segment --progress json` child -> progress events ->
    label map on the volume's world grid -> level segments; the temporary folder is gone afterwards."""
    from RootletSegLogic.images.grid import same_grid
    from RootletSegLogic.images.reading import read_label_map
    from RootletSegLogic.slicer.volumes import image_from_volume_node

    volume = _volume_with_transform(core, phantom)
    runner = start_segmentation(volume, segmentation_model, device="cpu", python=sys.executable)
    temporary = runner.temporary_paths
    assert len(temporary) == 1 and temporary[0].is_dir()
    try:
        events = runner.wait(timeout=600)
        assert runner.returncode == 0, runner.stderr_text
        kinds = {event["type"] for event in events}
        assert {"progress", "result", "finished"} <= kinds
        output = segmentation_output(runner)
        labels = read_label_map(output)
        assert same_grid(labels, image_from_volume_node(volume))
        segmentation = core.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "out")
        ids = load_segmentation_result(segmentation, output, volume)
        names = set(_segment_names(segmentation))
        present = {int(v) for v in np.unique(sitk.GetArrayViewFromImage(labels))} - {0}
        assert set(ids) == present and len(names) == len(ids)
        assert all(name.endswith(" rootlets") for name in names)
        if segmentation_model == "demo":
            allowed = {f"{name} rootlets" for name in ("C2", "C3", "C4", "C5", "C6", "C7", "C8", "T1")}
            assert names <= allowed
            assert len(ids) >= 6  # the demo model finds most levels of a phantom
    finally:
        runner.close()
    assert not temporary[0].exists()


def test_segmentation_output_errors():
    class Finished:
        returncode = 1
        error = "The image is 2D: give a 3D image."
        result = None

    with pytest.raises(UserError, match="The image is 2D"):
        segmentation_output(Finished())
    Finished.returncode, Finished.result = 0, {"segmentation": "/no/such/file.nii.gz"}
    with pytest.raises(UserError, match="without writing"):
        segmentation_output(Finished())


@pytest.mark.skipif(os.name == "nt", reason="POSIX process groups")
def test_cancel_of_a_real_segmentation(core, phantom, segmentation_model):
    """Cancel during a real `rootletseg segment` run: the CLI stops on SIGTERM (exit 143, its "cancelled" error
    event), no process of its group is left, and the temporary folder (input and output) is gone."""
    volume = _volume_with_transform(core, phantom)
    runner = start_segmentation(volume, segmentation_model, device="cpu", python=sys.executable,
                                            grace_s=30.0)
    temporary = runner.temporary_paths[0]
    seen = []
    deadline = time.monotonic() + 300
    while not any(e["type"] == "progress" for e in seen) and time.monotonic() < deadline:
        seen += runner.poll()
        assert not any(e["type"] == "finished" for e in seen), runner.stderr_text
        time.sleep(0.02)
    runner.cancel()
    events = seen + runner.wait(timeout=60)
    assert runner.cancelled and runner.returncode == 143, runner.stderr_text
    assert {"type": "error", "message": "cancelled", "exit_code": 143} in events
    assert events[-1]["type"] == "finished" and events[-1]["cancelled"]
    assert not temporary.exists()
    with pytest.raises(ProcessLookupError):
        os.killpg(runner.pid, 0)
    runner.close()


def test_ensure_installed_asks_once_and_runs_the_plan():
    """What Apply does first (RootletSegModuleLogic.ensureDependencies): nothing when nothing is missing; a blocked
    plan is shown, a refusal installs nothing, a confirmation runs the installers named by `slicer.modules`."""
    from types import SimpleNamespace

    from RootletSegLogic.slicer.dependencies import ensure_installed

    asked, errors, ran = [], [], []

    def confirm(answer):
        return lambda message: asked.append(message) or answer

    assert ensure_installed(SimpleNamespace(), confirm(True), errors.append, None, missing=[]) and not asked
    assert not ensure_installed(SimpleNamespace(), confirm(True), errors.append, None, missing=["torch", "nnunetv2"])
    assert "PyTorch" in errors[0] and not asked  # no PyTorch extension: blocked, shown, nothing asked
    modules = SimpleNamespace(pytorchutils=object(), slicernnunet=object())
    assert not ensure_installed(modules, confirm(False), errors.append, None, missing=["torch", "nnunetv2"],
                                install_torch=lambda r: ran.append("torch") or True)
    assert len(asked) == 1 and "torch" in asked[0] and not ran
    assert ensure_installed(modules, confirm(True), errors.append, None, missing=["torch", "nnunetv2"],
                            install_torch=lambda r: ran.append("torch") or True,
                            nnunet_extension_install=lambda r: ran.append("nnunet") or True)
    assert ran == ["torch", "nnunet"] and len(asked) == 2

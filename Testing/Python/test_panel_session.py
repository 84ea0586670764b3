"""The Slicer panel's logic (`RootletSegLogic.slicer.panel_session`) on real slicer-core scenes.

Desktop Slicer's Qt is not available here: the only mock is `FakeSegmentSelector`, standing in for
`qMRMLSegmentSelectorWidget` (a Qt widget), which emits currentNodeChanged synchronously when its node is set and
then shows the node's first segment, as the real widget does.
"""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import SimpleITK as sitk
import slicer  # noqa: F401  (slicer-core, a test dependency)
import slicerio  # a test dependency: an independent reader of the .seg.nrrd we write

from RootletSegLogic.errors import UserError
from RootletSegLogic.images.atomic import write_image, write_text
from RootletSegLogic.slicer import session as panel
from RootletSegLogic.slicer.gui_sync import cord_from_selector, show_cord_in_selector
from RootletSegLogic.slicer.panel_session import PanelSession
from RootletSegLogic.slicer.session import Contrast, LevelMethod


def _params(**values):
    base = dict(inputVolume=None, contrast=Contrast.T2w, model=None, modelPath="", device=None, tta=False,
                outputSegmentation=None, cordSegmentation=None, cordSegmentId="", discs=None,
                levelMethod=LevelMethod.paper, levelTable=None)
    base.update(values)
    return SimpleNamespace(**base)


def _scene_with_results(core, phantom, tmp_path, sidecar_model=None):
    """Volume, level segments loaded from a CLI-like label map (+ sidecar), a cord segmentation whose cord is NOT its
    first segment, and the phantom's discs: what the panel has after Apply and the level inputs."""
    from RootletSegLogic.levels.discs import landmarks_from_label_image
    from RootletSegLogic.slicer.level_nodes import markups_from_disc_points
    from RootletSegLogic.slicer.volumes import (
        image_from_volume_node,
        volume_node_from_image,
    )

    scene = core.scene
    volume = volume_node_from_image(scene, phantom.image, "phantom T2w")
    world = image_from_volume_node(volume)
    rootlets = sitk.Image(phantom.rootlets)
    rootlets.CopyInformation(world)
    label_path = write_image(rootlets, tmp_path / "phantom_rootlets.nii.gz")
    if sidecar_model is not None:
        write_text(json.dumps({"model": sidecar_model}), tmp_path / "phantom_rootlets.json")
    cord_image = sitk.Image(phantom.cord)
    cord_image.CopyInformation(world)
    cord_label = volume_node_from_image(scene, cord_image, "cord label", labelmap=True)
    cord = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "cord")
    cord.GetSegmentation().AddEmptySegment("first", "not the cord")
    assert slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(cord_label, cord)
    cord_id = cord.GetSegmentation().GetNthSegmentID(1)
    discs, pmj = landmarks_from_label_image(phantom.discs)
    discs_node = markups_from_disc_points(scene, discs, pmj)
    params = _params(inputVolume=volume, cordSegmentation=cord, cordSegmentId=cord_id, discs=discs_node)
    session = PanelSession(scene, params)
    assert session.load_result(label_path) == 8
    return session, label_path


class FakeSegmentSelector:
    """Mock of desktop Slicer's qMRMLSegmentSelectorWidget (Qt): setting a node emits currentNodeChanged at once and
    selects the node's first segment; the connected slot is the panel's handler."""

    def __init__(self):
        self._node, self._segment, self.slots, self.emitted = None, "", [], 0

    def currentNode(self):
        return self._node

    def currentSegmentID(self):
        return self._segment

    def setCurrentNode(self, node):
        self._node = node
        self._segment = node.GetSegmentation().GetNthSegmentID(0) if node is not None else ""
        self._emit()

    def setCurrentSegmentID(self, segment_id):
        self._segment = segment_id
        self._emit()

    def _emit(self):
        self.emitted += 1
        for slot in self.slots:
            slot()


def test_restoring_the_parameter_node_keeps_the_chosen_cord(core, phantom, tmp_path):
    """Defect 1: on scene load / module re-entry the GUI is written from the parameter node; the selector's signals
    (its first segment) must not replace the saved cord segment, and levels are then computed with that cord."""
    session, _ = _scene_with_results(core, phantom, tmp_path)
    params = session.params
    saved_id = params.cordSegmentId
    selector = FakeSegmentSelector()
    selector.slots.append(lambda: cord_from_selector(params, selector, session.guard))

    show_cord_in_selector(params, selector, session.guard)  # what _onParameterNodeModified does
    assert selector.emitted >= 1  # the signals did fire ...
    assert params.cordSegmentId == saved_id  # ... and were ignored
    assert selector.currentSegmentID() == saved_id
    summary = session.update_levels()
    assert "spinal" in summary
    assert not any("cord" in warning.lower() for warning in session.level_result.warnings)

    # a change the user makes is still written
    selector.setCurrentSegmentID(params.cordSegmentation.GetSegmentation().GetNthSegmentID(0))
    assert params.cordSegmentId == params.cordSegmentation.GetSegmentation().GetNthSegmentID(0)


def test_scene_close_clears_results_and_level_exports_are_refused(core, phantom, tmp_path):
    """Defect 2: after Close Scene, exports do not write the previous result and the chart is forgotten."""
    session, _ = _scene_with_results(core, phantom, tmp_path)
    session.update_levels()
    assert session.has_level_result and session.chart_node is not None
    session.next_point_label()
    session.scene_closing()
    assert not session.has_level_result and session.chart_node is None and session.pending_point_label is None
    for kind in ("table_tsv", "table_csv", "planning_json", "markups"):
        with pytest.raises(UserError, match="no current level result"):
            session.export(kind, tmp_path / panel.export_filename("x", kind))
    assert not list(tmp_path.glob("x_*"))


def test_exports_after_a_failed_update_are_refused(core, phantom, tmp_path):
    """Defect 2: a failed update drops the previous result (no stale table/JSON/markups)."""
    session, _ = _scene_with_results(core, phantom, tmp_path)
    session.update_levels()
    session.params.discs.SetNthControlPointLabel(0, "not a disc")
    with pytest.raises(UserError, match="not a disc name"):
        session.update_levels()
    assert not session.has_level_result and session.chart_node is None
    with pytest.raises(UserError):
        session.export("planning_json", tmp_path / "p_levels.json")
    markups_before = core.scene.GetNumberOfNodesByClass("vtkMRMLMarkupsFiducialNode")
    with pytest.raises(UserError):
        session.export("markups", tmp_path / "p_level_bounds.mrk.json")
    assert core.scene.GetNumberOfNodesByClass("vtkMRMLMarkupsFiducialNode") == markups_before


def test_rerun_keeps_user_segments_and_edits_are_detected(core, phantom, tmp_path):
    """Re-running replaces only the level segments; an edit of a level segment is noticed (the panel asks first)."""
    session, label_path = _scene_with_results(core, phantom, tmp_path)
    node = session.params.outputSegmentation
    assert node.GetName() == "phantom T2w rootlets"
    node.GetSegmentation().AddEmptySegment("mine", "My annotation")
    assert not session.level_segments_edited()
    c3 = node.GetSegmentation().GetSegmentIdBySegmentName("C3 rootlets")
    node.GetSegmentation().RemoveSegment(c3)
    assert session.level_segments_edited()
    session.load_result(label_path)
    names = [node.GetSegmentation().GetNthSegment(i).GetName()
             for i in range(node.GetSegmentation().GetNumberOfSegments())]
    assert "My annotation" in names and names.count("C3 rootlets") == 1
    assert not session.level_segments_edited()


def test_exports_carry_the_sidecars_model_record_and_export_all_names_files_after_the_volume(core, phantom, tmp_path):
    model = {"name": "demo", "url": "embedded", "sha256": "ab" * 32}
    session, _ = _scene_with_results(core, phantom, tmp_path, sidecar_model=model)
    session.update_levels()
    out = tmp_path / "out"
    out.mkdir()
    written = session.export_all(out)
    assert sorted(p.name for p in written.values()) == sorted([
        "phantom_T2w_rootlets.nii.gz", "phantom_T2w_rootlets.seg.nrrd", "phantom_T2w_levels.tsv",
        "phantom_T2w_levels.csv", "phantom_T2w_levels.json", "phantom_T2w_level_bounds.mrk.json"])
    planning = json.loads(written["planning_json"].read_text())
    assert planning["provenance"]["model"] == model
    assert planning["provenance"]["contrast"] == "T2w" and planning["provenance"]["method"] == "paper"
    seg = slicerio.read_segmentation(str(written["segmentation"]))
    levels = {s["name"]: s["labelValue"] for s in seg["segments"] if s["name"].endswith("rootlets")}
    assert levels["C2 rootlets"] == 2 and levels["T1 rootlets"] == 9
    with pytest.raises(UserError):  # the whole set is checked first: nothing is replaced unasked
        session.export_all(out)
    session.export_all(out, overwrite=True)


def test_failed_start_leaves_no_node_and_pending_labels_do_not_survive(core, phantom, tmp_path):
    """Defect 11: a start that fails adds no empty "<volume> rootlets" node; an aborted placement forgets its label."""
    from RootletSegLogic.slicer.volumes import volume_node_from_image

    volume = volume_node_from_image(core.scene, phantom.image, "phantom")
    volume.SetAndObserveImageData(None)
    session = PanelSession(core.scene, _params(inputVolume=volume))
    before = core.scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode")
    with pytest.raises(UserError, match="no voxels"):
        session.start("demo", "cpu")
    assert core.scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == before
    assert session.runner is None and session.params.outputSegmentation is None

    discs = session.discs_node()
    assert session.next_point_label() == "C2/C3"
    session.placement_ended()  # Escape
    discs.AddControlPoint(0.0, 0.0, 0.0, "")
    assert session.point_placed(discs) is None and discs.GetNthControlPointLabel(0) == "Discs-1"  # Slicer's default
    assert session.next_point_label(pmj=True) == "PMJ"
    discs.AddControlPoint(1.0, 0.0, 0.0, "")
    assert session.point_placed(discs) == "PMJ" and discs.GetNthControlPointLabel(1) == "PMJ"


def test_failed_run_clears_results(core, phantom, tmp_path):
    session, _ = _scene_with_results(core, phantom, tmp_path)
    session.update_levels()
    session.runner = SimpleNamespace(error="the model folder is damaged", take_stderr_lines=lambda: ["trace"],
                                     close=lambda: None)
    with pytest.raises(UserError, match="damaged"):
        session.finish({"type": "finished", "returncode": 1, "cancelled": False})
    assert not session.has_level_result and session.runner is None and session.log_lines == ["trace"]


def test_the_cord_in_the_output_segmentation_is_observed_once(core, phantom, tmp_path):
    """Defect 10: the cord living in the output segmentation gives one observation target, not two."""
    session, _ = _scene_with_results(core, phantom, tmp_path)
    params = session.params
    params.cordSegmentation = params.outputSegmentation
    targets = session.level_observation_targets()
    assert [t.GetID() for t in targets] == [params.outputSegmentation.GetID(), params.discs.GetID()]


def test_the_suffix_added_after_the_dialog_needs_its_own_confirmation(tmp_path):
    """Defect 7: the save dialog checked `levels`, but `levels.tsv` is written: replacing it needs a confirmation."""
    (tmp_path / "levels.tsv").write_text("old")
    assert panel.export_path(tmp_path / "levels", "table_tsv") == (tmp_path / "levels.tsv", True)
    assert panel.export_path(tmp_path / "levels.tsv", "table_tsv") == (tmp_path / "levels.tsv", False)
    assert panel.export_path(tmp_path / "new", "table_tsv") == (tmp_path / "new.tsv", False)


def test_disc_labels_and_cord_masks_are_read_without_nibabel(phantom, tmp_path):
    """Defect 3: Slicer does not bundle nibabel: reading .nii.gz in the panel works with it blocked."""
    path = write_image(sitk.Cast(phantom.discs, sitk.sitkUInt8), tmp_path / "discs.nii.gz")
    code = (
        "import sys; sys.modules['nibabel'] = None\n"
        "from RootletSegLogic.slicer.session import read_label_file\n"
        f"image = read_label_file({str(path)!r})\n"
        "assert 'nibabel' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
        "print(sorted(set(int(v) for v in __import__('SimpleITK').GetArrayViewFromImage(image).ravel())))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    expected = sorted(set(int(v) for v in np.unique(sitk.GetArrayViewFromImage(phantom.discs))))
    assert json.loads(done.stdout) == expected


def test_the_sample_data_phantom_loads_as_a_volume(core):
    node = panel.load_phantom(core.scene)
    assert node.GetName() == panel.PHANTOM_SAMPLE_NAME and node.GetImageData().GetDimensions()[0] > 10
    assert "Demo" in panel.PHANTOM_SAMPLE_NOTE


def test_terminology_and_sample_data_registration_at_startup(core):
    """Defect 4: what `startupCompleted` runs: RootletSeg's terminology in Slicer's terminology logic, the phantom
    in Sample Data (SampleData's logic is desktop Slicer's: a recorder stands in for it)."""
    calls = []
    recorder = SimpleNamespace(registerCustomSampleDataSource=lambda **kw: calls.append(kw))
    terminology = slicer.vtkSlicerTerminologiesModuleLogic()
    context = panel.register_at_startup(terminology, recorder, lambda: core.scene)
    assert context == "Segmentation category and type - RootletSeg"
    assert calls[0]["sampleName"] == panel.PHANTOM_SAMPLE_NAME
    node = calls[0]["customDownloader"](None)
    assert node.GetScene() is core.scene


def test_cord_mask_files_load_as_segmentations(core, phantom, tmp_path):
    path = write_image(sitk.Cast(phantom.cord, sitk.sitkUInt8), tmp_path / "cord.nii.gz")
    node, segment_id = panel.load_cord_mask(core.scene, path)
    assert node.GetSegmentation().GetSegment(segment_id) is not None
    empty = write_image(sitk.Cast(phantom.cord, sitk.sitkUInt8) * 0, tmp_path / "empty.nii.gz")
    before = core.scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode")
    with pytest.raises(UserError, match="empty"):
        panel.load_cord_mask(core.scene, empty)
    assert core.scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == before


def test_run_plan_uses_the_installers_and_level_observations_cover_the_inputs(core, phantom, tmp_path, monkeypatch):
    from RootletSegLogic.slicer import dependencies
    from RootletSegLogic.slicer.level_observation import level_observations

    plan = dependencies.install_plan(["torch", "nnunetv2"], True, nnunet_extension_available=True)
    done = []
    dependencies.run_plan(plan, None, lambda r: done.append(("torch", r)) or True,
                          lambda r: done.append(("nnunet", r)) or True)
    assert [name for name, _ in done] == ["torch", "nnunet"]
    with pytest.raises(UserError, match="PyTorch was not installed"):
        dependencies.run_plan(plan, None, lambda r: None, lambda r: True)
    session, _ = _scene_with_results(core, phantom, tmp_path)
    kinds = [what for _, _, what in level_observations(session.level_observation_targets(), slicer)]
    assert kinds.count("placed") == 1 and kinds.count("edit") == 4 + 4 + 2


# ------------------------------------------------------------------------------ what moved out of RootletSeg.py
def _fresh_params(**values):
    from RootletSegLogic.slicer.session import Device, ModelChoice

    return _params(**{"model": ModelChoice.rootletseg, "device": Device.auto, **values})


def test_widget_states_follow_the_parameters_and_the_run(core, phantom, tmp_path):
    """What `_onParameterNodeModified` copies into the widgets: Apply disabled with its reason as tooltip, the model
    path widgets only for a local model, exports by what exists, inputs locked while a run is going on."""
    from RootletSegLogic.slicer.panel_state import EXPORT_BUTTONS, RUN_LOCKED_WIDGETS
    from RootletSegLogic.slicer.session import ModelChoice

    empty = PanelSession(core.scene, _fresh_params()).widget_states()
    assert empty["applyButton"] == {"enabled": False, "toolTip": "Select an input volume."}
    assert not any(empty[name]["enabled"] for name in EXPORT_BUTTONS.values())
    assert not empty["modelPathLineEdit"]["enabled"] and not empty["exportAllButton"]["enabled"]

    session, _ = _scene_with_results(core, phantom, tmp_path)
    session.params.model, session.params.device = ModelChoice.local, panel.Device.auto
    states = session.widget_states()
    assert states["applyButton"]["enabled"] is False and "No local model" in states["applyButton"]["toolTip"]
    assert states["modelPathLineEdit"] == {"enabled": True, "currentPath": ""} and states["modelFolderButton"]["enabled"]
    assert states[EXPORT_BUTTONS["segmentation"]]["enabled"] and not states[EXPORT_BUTTONS["table_tsv"]]["enabled"]
    session.params.model = ModelChoice.demo
    session.update_levels()
    states = session.widget_states()
    assert states["applyButton"] == {"enabled": True, "toolTip": "Segment the rootlets"}
    assert all(states[name]["enabled"] for name in EXPORT_BUTTONS.values()) and states["showChartButton"]["enabled"]

    session.runner = SimpleNamespace()  # a run going on
    states = session.widget_states()
    assert states["applyButton"] == {"enabled": True, "toolTip": "Stop the segmentation"}
    assert not any(states[name]["enabled"] for name in RUN_LOCKED_WIDGETS) and not states["exportAllButton"]["enabled"]


def test_the_last_choices_are_restored_only_on_a_fresh_parameter_node(core, phantom):
    from RootletSegLogic.slicer.session import Device, ModelChoice
    from RootletSegLogic.slicer.volumes import volume_node_from_image

    volume = volume_node_from_image(core.scene, phantom.image, "first")
    stored = {"Model": "local", "ModelPath": "/models/rootletseg.zip", "Device": "cpu"}
    session = PanelSession(core.scene, _fresh_params())
    session.initialize(stored)
    p = session.params
    assert p.inputVolume is volume  # the first volume is selected
    assert (p.model, p.modelPath, p.device) == (ModelChoice.local, "/models/rootletseg.zip", Device.cpu)
    assert session.remembered_choices() == stored

    saved_scene = _fresh_params(model=ModelChoice.demo)  # a saved scene keeps its own choices
    assert not PanelSession(core.scene, saved_scene).restore_choices(stored) and saved_scene.model is ModelChoice.demo
    for bad in ({"Model": "gone", "Device": "cpu"}, {"Model": "local", "ModelPath": ""}, {}):
        fresh = _fresh_params()
        assert not PanelSession(core.scene, fresh).restore_choices(bad)
        assert (fresh.model, fresh.modelPath, fresh.device) == (ModelChoice.rootletseg, "", Device.auto)
    registry = _fresh_params()
    assert PanelSession(core.scene, registry).restore_choices({"Model": "m5", "ModelPath": "/x", "Device": "nope"})
    assert (registry.model, registry.modelPath, registry.device) == (ModelChoice.m5, "", Device.auto)


def test_model_path_widget_changes_are_stored_unless_written_from_the_parameter_node(core):
    session = PanelSession(core.scene, _fresh_params())
    with session.guard.writing_gui():
        assert not session.model_path_from_widget("/written/by/the/panel")
    assert session.params.modelPath == ""
    assert session.model_path_from_widget("/typed")
    assert session.params.modelPath == "/typed" and not session.model_path_from_widget("/typed")


def test_poll_update_digests_the_childs_events_and_the_log(tmp_path):
    """A real child process writing the JSON-lines protocol: the last percent and status, the finished event once,
    stderr and progress lines in the log, taken once."""
    from RootletSegLogic.slicer.child_command import python_executable
    from RootletSegLogic.slicer.child_process import ChildProcess

    script = tmp_path / "child.py"
    script.write_text(
        "import json, sys\n"
        "for done in (1, 2):\n"
        "    print(json.dumps({'type': 'progress', 'stage': 'predict', 'done': done, 'total': 4}), flush=True)\n"
        "print('a warning on stderr', file=sys.stderr, flush=True)\n")
    session = PanelSession(None, _fresh_params())
    session.runner = ChildProcess([python_executable(), str(script)]).start()
    updates = []
    while not updates or updates[-1].finished is None:
        updates.append(session.poll_update())
    assert updates[-1].finished["returncode"] == 0 and sum(u.finished is not None for u in updates) == 1
    assert updates[-1].percent == 100 and updates[-1].status == "Done."
    log = session.take_log_lines()
    assert "a warning on stderr" in log and sum(line.startswith("predict") for line in log) == 2
    assert session.take_log_lines() == []
    session.runner.close()

    # one poll with several events: the last percent and the last status text win
    events = [{"type": "progress", "stage": "predict", "fraction": 0.5}, {"type": "warning", "message": "slow"}]
    session.runner = SimpleNamespace(poll=lambda: events, take_stderr_lines=lambda: [])
    update = session.poll_update()
    assert (update.percent, update.status, update.finished) == (50, "Warning: slow", None)


def test_show_3d_makes_closed_surfaces_and_hides_them(core, phantom, tmp_path):
    session, _ = _scene_with_results(core, phantom, tmp_path)
    node = session.params.outputSegmentation
    node.RemoveClosedSurfaceRepresentation()
    assert session.show_3d(True)
    assert node.GetSegmentation().ContainsRepresentation("Closed surface") and node.GetDisplayNode().GetVisibility3D()
    assert session.show_3d(False) and not node.GetDisplayNode().GetVisibility3D()
    assert not PanelSession(core.scene, _fresh_params()).show_3d(True)


def test_level_inputs_are_observed_once_and_released_on_scene_close(core, phantom, tmp_path):
    session, _ = _scene_with_results(core, phantom, tmp_path)
    edits, placed = [], []
    assert session.observe_level_inputs(lambda *a: edits.append(a), lambda *a: placed.append(a))
    assert not session.observe_level_inputs(lambda *a: None, lambda *a: None)  # same targets: observers kept
    session.params.outputSegmentation.GetSegmentation().AddEmptySegment("mine", "My annotation")
    assert edits
    discs = session.params.discs
    discs.AddControlPoint(1.0, 2.0, 3.0, "")
    assert placed and placed[-1][0] is discs
    session.scene_closing()
    count = len(edits)
    session.params.outputSegmentation.GetSegmentation().AddEmptySegment("later", "Later")
    assert len(edits) == count  # observers removed


def test_placing_points_starts_markups_place_mode(core):
    markups_logic = core.logics["Markups"]
    session = PanelSession(core.scene, _fresh_params())
    assert session.start_placing(markups_logic) == "C2/C3"
    discs = session.params.discs
    interaction = core.app_logic.GetInteractionNode()
    assert interaction.GetCurrentInteractionMode() == interaction.Place
    assert core.app_logic.GetSelectionNode().GetActivePlaceNodeID() == discs.GetID()
    discs.AddControlPoint(0.0, 0.0, 0.0, "")
    assert session.point_placed(discs) == "C2/C3"


def test_level_status_and_the_chart(core, phantom, tmp_path):
    session, _ = _scene_with_results(core, phantom, tmp_path)
    plots = core.logics["Plots"]
    assert not session.show_chart(plots)  # no level result yet
    text, failed = session.level_status()
    assert not failed and "spinal" in text
    assert session.show_chart(plots)
    assert core.app_logic.GetSelectionNode().GetActivePlotChartID() == session.chart_node.GetID()
    session.params.discs.SetNthControlPointLabel(0, "not a disc")
    text, failed = session.level_status()
    assert failed and "not a disc name" in text and not session.show_chart(plots)


def test_cord_files_become_the_chosen_cord_and_exports_are_named_after_the_volume(core, phantom, tmp_path):
    session, _ = _scene_with_results(core, phantom, tmp_path)
    path = write_image(sitk.Cast(phantom.cord, sitk.sitkUInt8), tmp_path / "cord.nii.gz")
    node = session.load_cord_file(path)
    assert session.params.cordSegmentation is node
    assert node.GetSegmentation().GetSegment(session.params.cordSegmentId) is not None
    assert session.default_export_name("table_tsv") == "phantom_T2w_levels.tsv"
    out = tmp_path / "out"
    out.mkdir()
    assert session.existing_export_all_paths(out) == []
    (out / "phantom_T2w_rootlets.nii.gz").write_text("old")
    assert session.existing_export_all_paths(out) == [out / "phantom_T2w_rootlets.nii.gz"]


def test_start_chosen_refuses_a_missing_local_model(core, phantom):
    from RootletSegLogic.slicer.session import ModelChoice
    from RootletSegLogic.slicer.volumes import volume_node_from_image

    volume = volume_node_from_image(core.scene, phantom.image, "phantom")
    session = PanelSession(core.scene, _fresh_params(inputVolume=volume, model=ModelChoice.local,
                                                     modelPath="/nowhere/model.zip"))
    with pytest.raises(UserError, match="does not exist"):
        session.start_chosen()
    assert session.runner is None


def test_the_modules_self_test_skips_without_torch(core, monkeypatch):
    import unittest

    from RootletSegLogic.slicer import dependencies, self_test

    monkeypatch.setattr(dependencies, "missing_packages", lambda: ["torch", "nnunetv2"])
    with pytest.raises(unittest.SkipTest, match="torch, nnunetv2 not installed"):
        self_test.demo_self_test(core.scene, _fresh_params())


def test_the_modules_self_test_runs_the_demo_model_through_the_apply_path(core):
    """RootletSegTest's body: phantom, demo model in a child process, result as level segments, levels (a few s)."""
    from RootletSegLogic.slicer.self_test import demo_self_test

    params = _fresh_params()
    summary = demo_self_test(core.scene, params, timeout_s=300)
    assert summary.startswith("Done: 8 level segments.") and "8 spinal" in summary
    assert params.outputSegmentation.GetSegmentation().GetNumberOfSegments() == 8
    # Apply with detection: the cord and discs came from demo-spine, so the vertebral levels are there too
    assert params.cordSegmentation is not None and params.cordSegmentId
    labels = [params.discs.GetNthControlPointLabel(i) for i in range(params.discs.GetNumberOfControlPoints())]
    assert labels[:3] == ["C1/C2", "C2/C3", "C3/C4"] and "vertebral" in summary and "0 vertebral" not in summary


def test_detect_cord_and_discs_keeps_the_users_pmj_and_names_the_discs(core, phantom):
    """The "Detect cord and discs" button's path: child process, cord as the chosen cord segment, discs named and
    ready to move, the PMJ point the user placed kept; the button is locked while a run goes on."""
    import vtk

    from RootletSegLogic.slicer.level_nodes import DISC_MARKUPS_NAME
    from RootletSegLogic.slicer.volumes import volume_node_from_image

    params = _fresh_params(inputVolume=volume_node_from_image(core.scene, phantom.image, "phantom T2w"))
    params.discs = core.scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", DISC_MARKUPS_NAME)
    params.discs.AddControlPointWorld(vtk.vtkVector3d(1.0, -2.0, 120.0), "PMJ")
    session = PanelSession(core.scene, params)
    assert session.widget_states()["detectLandmarksButton"]["enabled"]
    runner = session.start_detection("demo-spine", "cpu")
    assert not session.widget_states()["detectLandmarksButton"]["enabled"]
    finished = [e for e in runner.wait(timeout=300) if e.get("type") == "finished"][-1]
    status = session.finish(finished)
    assert status.startswith("Found the cord and 8 discs (C1/C2, C2/C3") and not session.running
    labels = [params.discs.GetNthControlPointLabel(i) for i in range(params.discs.GetNumberOfControlPoints())]
    assert labels == ["C1/C2", "C2/C3", "C3/C4", "C4/C5", "C5/C6", "C6/C7", "C7/T1", "T1/T2", "PMJ"]
    pmj = [0.0, 0.0, 0.0]
    params.discs.GetNthControlPointPositionWorld(8, pmj)
    assert pmj == [1.0, -2.0, 120.0]
    assert params.cordSegmentation.GetSegmentation().GetSegment(params.cordSegmentId) is not None
    assert PanelSession(core.scene, _fresh_params()).widget_states()["detectLandmarksButton"]["enabled"] is False


def test_a_failed_detection_is_one_sentence(core, phantom, tmp_path):
    from RootletSegLogic.slicer.volumes import volume_node_from_image

    params = _fresh_params(inputVolume=volume_node_from_image(core.scene, phantom.image, "phantom T2w"))
    session = PanelSession(core.scene, params)
    runner = session.start_detection("demo", "cpu")  # a rootlet model is refused by the child
    finished = [e for e in runner.wait(timeout=120) if e.get("type") == "finished"][-1]
    with pytest.raises(UserError, match="not a landmark model"):
        session.finish(finished)
    assert params.cordSegmentation is None and params.discs is None and not session.running

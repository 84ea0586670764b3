"""The Slicer panel's logic without Qt, as one `PanelSession` per panel and scene: Apply (export the volume, run the
child, load the result), level updates and their summary text, disc placement naming, scene-close reset; it keeps
the run and the level result and hands the rest to one module per job:

- `slicer/panel_state.py`: what the widgets show (enabled, tooltips, export buttons);
- `slicer/gui_sync.py`: the GUI-sync guard and the cord selector (re-exported here for RootletSeg.py);
- `slicer/loaded_result.py`: the result as loaded (level segments, model record, were they edited);
- `slicer/level_observation.py`: the VTK observers that trigger a level update after an edit;
- `slicer/panel_exports.py`: the exports and "Export all" with one provenance;
- `slicer/self_test.py`: the module's self-test.

`RootletSeg/RootletSeg.py` keeps only the widget wiring and calls a `PanelSession`. Everything here runs on a real
MRML scene (desktop Slicer, or the slicer-core wheel in Testing/Python/test_panel_session.py).

`params` is the module's parameter node wrapper (in Slicer) or any object with the same attributes: inputVolume,
contrast, model, modelPath, device, tta, outputSegmentation, cordSegmentation, cordSegmentId, discs, levelMethod,
levelTable (see `RootletSegParameterNode` in RootletSeg.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional

from RootletSegLogic.errors import UserError
from RootletSegLogic.slicer import loaded_result, panel_exports
from RootletSegLogic.slicer import panel_state as widget_state
from RootletSegLogic.slicer import session as panel
from RootletSegLogic.slicer.gui_sync import GuiGuard, cord_from_selector, show_cord_in_selector  # noqa: F401
from RootletSegLogic.slicer.level_observation import LevelInputObservers, level_observation_targets
from RootletSegLogic.slicer.panel_exports import choice_value
from RootletSegLogic.slicer.panel_state import EXPORT_BUTTONS, RUN_LOCKED_WIDGETS, PanelState  # noqa: F401

LEVEL_UPDATE_DELAY_MS = 500
"""Live level updates wait for this pause after the last edit of a level input (the panel's single-shot timer)."""
POLL_INTERVAL_MS = 100
"""How often the panel polls the running child process."""

REMEMBERED_CHOICES = ("Model", "ModelPath", "Device")
"""Settings keys (under "RootletSeg/") of the choices of the last Apply, restored on a fresh parameter node."""


@dataclass
class PollUpdate:
    """The child's events since the last poll, digested for the progress bar and status line."""

    percent: Optional[int] = None
    status: str = ""
    finished: Optional[dict] = None  # the "finished" event, once
    events: List[dict] = field(default_factory=list)


class PanelSession:
    """State and actions of one panel on one scene (see the module docstring)."""

    def __init__(self, scene, params=None, python: Optional[str] = None, grace_s: float = 5.0):
        self.scene = scene
        self.params = params
        self.python = python
        self.grace_s = grace_s
        self.runner = None
        self.job: Optional[str] = None  # "segment" or "landmarks" while a child runs
        self.pending_segmentation: Optional[tuple] = None  # (model, device, tta) to start after a detection
        self.level_result = None
        self.chart_node = None
        self.pending_point_label: Optional[str] = None
        self.log_lines: List[str] = []
        self.guard = GuiGuard()
        self._level_observers = LevelInputObservers()

    # ------------------------------------------------------------------------------------------- panel state
    def initialize(self, stored: Optional[Mapping[str, Optional[str]]] = None) -> None:
        """A parameter node was just set: select the first volume when none is, and restore the last Apply's
        choices (`stored`: settings values by REMEMBERED_CHOICES key) when the node still has the default ones."""
        p = self.params
        if p.inputVolume is None:
            p.inputVolume = self.scene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
        if stored:
            self.restore_choices(stored)

    def remembered_choices(self) -> Dict[str, str]:
        """The choices to store at Apply (settings persist across scenes and sessions)."""
        p = self.params
        return {"Model": p.model.name, "ModelPath": p.modelPath or "", "Device": p.device.name}

    def restore_choices(self, stored: Mapping[str, Optional[str]]) -> bool:
        """Put stored choices into a parameter node that still has the defaults (a saved scene keeps its own);
        unknown stored names are ignored. Returns whether anything was restored."""
        p = self.params
        if (p.model, p.modelPath or "", p.device) != (panel.ModelChoice.rootletseg, "", panel.Device.auto):
            return False
        model = panel.ModelChoice.__members__.get(str(stored.get("Model") or ""))
        device = panel.Device.__members__.get(str(stored.get("Device") or ""))
        path = str(stored.get("ModelPath") or "")
        if model is None or (model is panel.ModelChoice.local and not path):
            return False
        p.model, p.modelPath = model, path if model is panel.ModelChoice.local else ""
        if device is not None:
            p.device = device
        return True

    def panel_state(self) -> PanelState:
        return widget_state.panel_state(self.params, self.running, self.has_level_result)

    def widget_states(self) -> Dict[str, Dict[str, object]]:
        """{widget name in the .ui: {Qt property: value}}: what the panel copies into its widgets for the current
        parameters and run (Apply's text, translated, stays in the panel)."""
        return widget_state.widget_states(self.params, self.panel_state())

    def model_path_from_widget(self, path: str) -> bool:
        """The model path widget changed: store a change the user made (not one written from the parameter node)."""
        if self.params is None or self.guard.active or (self.params.modelPath or "") == (path or ""):
            return False
        self.params.modelPath = path or ""
        return True

    def observe_level_inputs(self, on_edit, on_placed) -> bool:
        """Observe the level inputs (`level_observation_targets`, each once) with VTK observers: segment edits and
        point moves/removals call `on_edit(caller, event)`, a placed point `on_placed(caller, event)`. Nothing is
        done when the targets are those already observed; returns whether the observers were replaced."""
        nodes = self.level_observation_targets() if self.params is not None else []
        return self._level_observers.observe(nodes, on_edit, on_placed)

    def stop_observing(self) -> None:
        """Remove the observers of `observe_level_inputs`."""
        self._level_observers.stop()

    def show_3d(self, show: bool) -> bool:
        """Show (making the closed surfaces) or hide the output segmentation in 3D views; False when there is none."""
        node = self.params.outputSegmentation if self.params is not None else None
        if node is None:
            return False
        if node.GetDisplayNode() is None:
            node.CreateDefaultDisplayNodes()
        if show:
            node.CreateClosedSurfaceRepresentation()
        node.GetDisplayNode().SetVisibility3D(bool(show))
        return True

    # ------------------------------------------------------------------------------------------- results
    @property
    def running(self) -> bool:
        return self.runner is not None

    @property
    def has_level_result(self) -> bool:
        return self.level_result is not None

    def clear_results(self) -> None:
        """Forget the level result and the chart (scene closed, or an update failed): level exports and "Show level
        chart" are refused until the next successful update."""
        self.level_result = None
        self.chart_node = None

    def scene_closing(self) -> None:
        """Scene about to close: stop a run (without waiting), drop results and a pending point label."""
        if self.runner is not None:
            self.runner.request_cancel()
            self.runner.close()
            self.runner = None
        self.clear_results()
        self.stop_observing()
        self.pending_point_label = None
        self.log_lines = []

    def level_observation_targets(self) -> list:
        """The objects whose edits trigger a level update, each once: the output segmentation and the cord's
        segmentation (the same node when the cord is a segment of the output), the disc point list."""
        return level_observation_targets(self.params)

    # ------------------------------------------------------------------------------------------- apply
    def start(self, model: str, device: str = "auto", tta: bool = False):
        """Export the input volume and start `rootletseg segment` in a child process. No node is added to the scene
        here: the output segmentation is made when the result arrives, so a failed start or a cancel leaves nothing."""
        if self.runner is not None:
            raise UserError("A segmentation is already running: wait for it or cancel it.")
        if self.params.inputVolume is None:
            raise UserError("No input volume is selected: select the volume to segment.")
        self.log_lines = []
        self.runner = panel.start_segmentation(self.params.inputVolume, model, device=device, tta=tta,
                                               python=self.python, grace_s=self.grace_s)
        self.job = "segment"
        return self.runner

    def start_detection(self, model: Optional[str] = None, device: Optional[str] = None,
                        then_segment: Optional[tuple] = None):
        """Start "Detect cord and discs" (`rootletseg landmarks` in a child process, `slicer.landmark_job`) on the
        input volume; `model` defaults to the parameter node's landmarkModel (else totalspineseg). `then_segment`:
        (model, device, tta) of a segmentation started when the detection succeeds (Apply with detection)."""
        from RootletSegLogic.slicer.landmark_job import DEFAULT_LANDMARK_MODEL, start_landmark_detection

        p = self.params
        if self.runner is not None:
            raise UserError("A run is already going: wait for it or cancel it.")
        if p.inputVolume is None:
            raise UserError("No input volume is selected: select the volume in which to find the cord and discs.")
        self.log_lines = []
        model = model or getattr(p, "landmarkModel", "") or DEFAULT_LANDMARK_MODEL
        self.runner = start_landmark_detection(p.inputVolume, model, device or panel.cli_device(p.device),
                                               python=self.python, grace_s=self.grace_s)
        self.job, self.pending_segmentation = "landmarks", then_segment
        return self.runner

    def start_chosen(self):
        """`start` with the parameter node's model, device and test-time augmentation (UserError for an unusable
        local model); with detectLandmarks, the cord and discs are detected first and the segmentation follows."""
        p = self.params
        chosen = (panel.model_argument(p.model, p.modelPath), panel.cli_device(p.device), bool(p.tta))
        if getattr(p, "detectLandmarks", False):
            return self.start_detection(device=chosen[1], then_segment=chosen)
        return self.start(*chosen)

    def cancel(self) -> None:
        """Start cancelling the run and return at once; `poll` reports the cancelled finish."""
        if self.runner is not None:
            self.runner.request_cancel()

    def poll(self) -> List[dict]:
        """Events of the child since the last call; its stderr and progress lines are added to `log_lines`."""
        if self.runner is None:
            return []
        events = self.runner.poll()
        from RootletSegLogic.slicer.child_events import describe_event

        for event in events:
            if event.get("type") in ("progress", "warning", "log", "error"):
                _, text = describe_event(event)
                self.log_lines.append(text or str(event.get("message", "")))
        self.log_lines.extend(self.runner.take_stderr_lines())
        return events

    def poll_update(self) -> PollUpdate:
        """`poll`, digested: the last percent and status text of the events, and the "finished" event if it came."""
        from RootletSegLogic.slicer.child_events import describe_event

        update = PollUpdate(events=self.poll())
        for event in update.events:
            percent, text = describe_event(event)
            update.percent = percent if percent is not None else update.percent
            update.status = text or update.status
            if event.get("type") == "finished":
                update.finished = event
        return update

    def take_log_lines(self) -> List[str]:
        """The log lines gathered since the last call (for the panel's log area)."""
        lines, self.log_lines = self.log_lines, []
        return lines

    def finish(self, event: dict) -> str:
        """Handle the child's "finished" event: load the result (on success) and return the status text. Raises
        UserError when the run failed (the message is the child's one sentence). The runner is closed either way."""
        runner, self.runner = self.runner, None
        job, self.job = self.job, None
        chained, self.pending_segmentation = self.pending_segmentation, None
        try:
            self.log_lines.extend(runner.take_stderr_lines())
            if event.get("cancelled"):
                return "Cancelled; nothing was changed."
            if event.get("returncode") != 0:
                self.clear_results()
                what = "cord and disc detection" if job == "landmarks" else "segmentation"
                raise UserError(runner.error or f"The {what} failed (exit code {event.get('returncode')}).")
            if job == "landmarks":
                from RootletSegLogic.slicer.landmark_job import load_landmarks

                status = load_landmarks(self.scene, self.params, runner)
                if chained:
                    self.start(*chained)
                    return status + " Segmenting the rootlets..."
                return status
            count = self.load_result(panel.segmentation_output(runner))
            return f"Done: {count} level segments."
        finally:
            runner.close()

    def load_result(self, label_path) -> int:
        """Show a CLI label map (and its sidecar's model record) as level segments of the output segmentation
        (made here when none is chosen); user segments are kept. Returns the number of level segments."""
        return loaded_result.load_result(self.scene, self.params, label_path)

    def level_segments_edited(self) -> bool:
        """True when the level segments of the output segmentation differ from what the last run loaded (the user
        edited them): re-running Apply would replace those edits, so the panel asks first."""
        return loaded_result.level_segments_edited(self.params)

    # ------------------------------------------------------------------------------------------- levels
    def update_levels(self) -> str:
        """Recompute the level table and chart from the scene; returns the summary text. On a UserError the previous
        result is dropped (exports refused) and the error is raised."""
        p = self.params
        if p.outputSegmentation is None or p.inputVolume is None:
            self.clear_results()
            raise UserError("No level segments yet: run the segmentation first.")
        try:
            result = panel.compute_scene_levels(p.outputSegmentation, p.inputVolume, p.cordSegmentation,
                                                p.cordSegmentId, p.discs, choice_value(p.levelMethod))
        except UserError:
            self.clear_results()
            raise
        if p.levelTable is None:
            p.levelTable = self.scene.AddNewNodeByClass("vtkMRMLTableNode", "RootletSeg levels")
        nodes = panel.show_level_result(self.scene, result, p.levelTable)
        self.level_result, self.chart_node = result, nodes["chart"]
        return self.summary_text()

    def level_status(self):
        """`update_levels` for the panel's status line: (summary text, False), or (the error's sentence, True)."""
        try:
            return self.update_levels(), False
        except UserError as error:
            return str(error), True

    def show_chart(self, plots_logic) -> bool:
        """Show the level chart in the layout (`plots_logic`: Slicer's Plots module logic); False when there is none."""
        if self.chart_node is None or not self.scene.IsNodePresent(self.chart_node):
            return False
        plots_logic.ShowChartInLayout(self.chart_node)
        return True

    def summary_text(self) -> str:
        result = self.level_result
        if result is None:
            return ""
        summary = (f"{len(result.spinal())} spinal and {len(result.vertebral())} vertebral levels "
                   f"({result.distance_reference}).")
        return "\n".join([summary, *result.warnings])

    # ------------------------------------------------------------------------------------------- discs
    def discs_node(self):
        p = self.params
        if p.discs is None:
            from RootletSegLogic.slicer.level_nodes import DISC_MARKUPS_NAME

            p.discs = self.scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", DISC_MARKUPS_NAME)
            p.discs.CreateDefaultDisplayNodes()
        return p.discs

    def next_point_label(self, pmj: bool = False) -> str:
        """The name the next placed point gets ("PMJ", or the next disc in guided order; "" when all are placed);
        it is kept as pending until a point is placed or the placement is aborted."""
        from RootletSegLogic.slicer.level_nodes import next_disc_name

        label = "PMJ" if pmj else next_disc_name(self.params.discs)
        self.pending_point_label = label or None
        return label

    def start_placing(self, markups_logic, pmj: bool = False) -> str:
        """Start placing the next disc (or the PMJ) in the "Discs" list with Slicer's Markups logic; returns the label
        the point will get, or "" (nothing started) when every disc is placed."""
        label = self.next_point_label(pmj)
        if label:
            markups_logic.SetActiveList(self.discs_node())
            markups_logic.StartPlaceMode(False)
        return label

    def point_placed(self, markups_node) -> Optional[str]:
        """A point was placed in `markups_node`: give it the pending label (once). Returns the label given."""
        label, self.pending_point_label = self.pending_point_label, None
        if label and markups_node is not None and markups_node.GetNumberOfControlPoints() > 0:
            markups_node.SetNthControlPointLabel(markups_node.GetNumberOfControlPoints() - 1, label)
            return label
        return None

    def placement_ended(self, placing: bool = False) -> None:
        """Place mode left without a point (Escape, another tool): the pending label must not name a later point.
        `placing`: the interaction mode is still Place (the panel passes it on every mode change): nothing to do."""
        if not placing:
            self.pending_point_label = None

    def load_cord_file(self, path):
        """A cord mask file (0/1 label map or .seg.nrrd) as a new segmentation, chosen as the cord for the levels."""
        node, segment_id = panel.load_cord_mask(self.scene, path)
        self.params.cordSegmentation, self.params.cordSegmentId = node, segment_id
        return node

    def import_disc_labels(self, path):
        p = self.params
        p.discs = panel.import_disc_label_file(path, p.discs if p.discs is not None else self.scene)
        return p.discs

    # ------------------------------------------------------------------------------------------- exports
    def provenance(self) -> dict:
        """One provenance for every level export (`panel_exports.export_provenance`)."""
        return panel_exports.export_provenance(self.params)

    def export(self, kind: str, path, overwrite: bool = False) -> Path:
        """Write one export to `path` (the suffix of `kind` must already be on it: see `session.export_path`).
        Level exports are refused when there is no current level result."""
        return panel_exports.export_output(self.scene, self.params, self.level_result, kind, path, overwrite)

    def default_export_name(self, kind: str) -> str:
        """The file name of export `kind` made from the input volume's name (what the save dialog proposes)."""
        return panel_exports.default_export_name(self.params, kind)

    def default_export_path(self, folder, kind: str) -> Path:
        return Path(folder) / self.default_export_name(kind)

    def export_all_paths(self, folder) -> Dict[str, Path]:
        """The files "Export all" writes into `folder`, named after the input volume."""
        return panel_exports.export_all_paths(self.params, self.level_result is not None, folder)

    def existing_export_all_paths(self, folder) -> List[Path]:
        """The files of "Export all" into `folder` that exist already (replacing them needs a confirmation)."""
        return panel_exports.existing_export_all_paths(self.params, self.level_result is not None, folder)

    def export_all(self, folder, overwrite: bool = False) -> Dict[str, Path]:
        """Label map, .seg.nrrd and (with a level result) TSV, CSV, planning JSON and markups into `folder`.
        Checks every target first: nothing is written when one exists and `overwrite` is False."""
        return panel_exports.export_all(self.scene, self.params, self.level_result, folder, overwrite)

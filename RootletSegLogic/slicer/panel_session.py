"""The Slicer panel's logic without Qt: Apply (export the volume, run the child, load the result), level updates and
their summary text, exports with one provenance, scene-close reset, disc placement naming, the GUI-sync guard.

`RootletSeg/RootletSeg.py` keeps only the widget wiring and calls a `PanelSession`. Everything here runs on a real
MRML scene (desktop Slicer, or the slicer-core wheel in Testing/Python/test_panel_session.py).

`params` is the module's parameter node wrapper (in Slicer) or any object with the same attributes: inputVolume,
contrast, model, modelPath, device, tta, outputSegmentation, cordSegmentation, cordSegmentId, discs, levelMethod,
levelTable (see `RootletSegParameterNode` in RootletSeg.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from typing import Dict, List, Optional

from RootletSegLogic.errors import UserError
from RootletSegLogic.slicer import session as panel

MODEL_ATTRIBUTE = "RootletSeg.Model"
"""Segmentation node attribute: the model record of the run that made its level segments (JSON, from the sidecar)."""
LABELS_ATTRIBUTE = "RootletSeg.LoadedLabelsSha256"
"""Segmentation node attribute: digest of the level label map as loaded, to tell whether the user edited it."""

LEVEL_EXPORT_KINDS = ("table_tsv", "table_csv", "planning_json", "markups")
EXPORT_ALL_KINDS = ("labelmap", "segmentation", "table_tsv", "table_csv", "planning_json", "markups")


class GuiGuard:
    """Set while parameter values are written into widgets: widget signals fired by those writes (for example
    `qMRMLSegmentSelectorWidget.setCurrentNode` emitting currentNodeChanged with its first segment) must not be
    written back into the parameter node."""

    def __init__(self):
        self._depth = 0

    @property
    def active(self) -> bool:
        return self._depth > 0

    @contextlib.contextmanager
    def writing_gui(self):
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1


def show_cord_in_selector(params, selector, guard: GuiGuard) -> None:
    """Parameter node -> segment selector (node, then segment), with signals from the selector ignored."""
    with guard.writing_gui():
        if selector.currentNode() is not params.cordSegmentation:
            selector.setCurrentNode(params.cordSegmentation)
        if params.cordSegmentId and selector.currentSegmentID() != params.cordSegmentId:
            selector.setCurrentSegmentID(params.cordSegmentId)


def cord_from_selector(params, selector, guard: GuiGuard) -> bool:
    """Segment selector -> parameter node, for a change the user made; False (nothing written) while the GUI is being
    written from the parameter node."""
    if guard.active:
        return False
    params.cordSegmentation = selector.currentNode()
    params.cordSegmentId = selector.currentSegmentID() or ""
    return True


def _labels_digest(label_image) -> str:
    import SimpleITK as sitk

    return hashlib.sha256(sitk.GetArrayViewFromImage(label_image).tobytes()).hexdigest()


class PanelSession:
    """State and actions of one panel on one scene (see the module docstring)."""

    def __init__(self, scene, params=None, python: Optional[str] = None, grace_s: float = 5.0):
        self.scene = scene
        self.params = params
        self.python = python
        self.grace_s = grace_s
        self.runner = None
        self.level_result = None
        self.chart_node = None
        self.pending_point_label: Optional[str] = None
        self.log_lines: List[str] = []
        self.guard = GuiGuard()

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
        self.pending_point_label = None
        self.log_lines = []

    def level_observation_targets(self) -> list:
        """The objects whose edits trigger a level update, each once: the output segmentation and the cord's
        segmentation (the same node when the cord is a segment of the output), the disc point list."""
        p = self.params
        targets, seen = [], set()
        for node in (p.outputSegmentation, p.cordSegmentation, p.discs):
            if node is not None and node.GetID() not in seen:
                seen.add(node.GetID())
                targets.append(node)
        return targets

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
        return self.runner

    def cancel(self) -> None:
        """Start cancelling the run and return at once; `poll` reports the cancelled finish."""
        if self.runner is not None:
            self.runner.request_cancel()

    def poll(self) -> List[dict]:
        """Events of the child since the last call; its stderr and progress lines are added to `log_lines`."""
        if self.runner is None:
            return []
        events = self.runner.poll()
        from RootletSegLogic.slicer.child_process import describe_event

        for event in events:
            if event.get("type") in ("progress", "warning", "log", "error"):
                _, text = describe_event(event)
                self.log_lines.append(text or str(event.get("message", "")))
        self.log_lines.extend(self.runner.take_stderr_lines())
        return events

    def finish(self, event: dict) -> str:
        """Handle the child's "finished" event: load the result (on success) and return the status text. Raises
        UserError when the run failed (the message is the child's one sentence). The runner is closed either way."""
        runner, self.runner = self.runner, None
        try:
            self.log_lines.extend(runner.take_stderr_lines())
            if event.get("cancelled"):
                return "Cancelled; nothing was changed."
            if event.get("returncode") != 0:
                self.clear_results()
                raise UserError(runner.error or f"The segmentation failed (exit code {event.get('returncode')}).")
            count = self.load_result(panel.segmentation_output(runner))
            return f"Done: {count} level segments."
        finally:
            runner.close()

    def load_result(self, label_path) -> int:
        """Show a CLI label map (and its sidecar's model record) as level segments of the output segmentation
        (made here when none is chosen); user segments are kept. Returns the number of level segments."""
        from RootletSegLogic import naming
        from RootletSegLogic.provenance import model_record_from_sidecar

        p = self.params
        label_image = panel.read_label_file(label_path, what="rootlet segmentation")
        try:
            model = model_record_from_sidecar(naming.sidecar_path(label_path))
        except UserError:
            model = None
        if p.outputSegmentation is None:
            p.outputSegmentation = self.scene.AddNewNodeByClass(
                "vtkMRMLSegmentationNode", p.inputVolume.GetName() + " rootlets")
        from RootletSegLogic.slicer.segments import show_level_segments

        ids = show_level_segments(p.outputSegmentation, label_image, p.inputVolume)
        p.outputSegmentation.SetAttribute(MODEL_ATTRIBUTE, json.dumps(model) if model else "")
        p.outputSegmentation.SetAttribute(LABELS_ATTRIBUTE, _labels_digest(label_image))
        return len(ids)

    def level_segments_edited(self) -> bool:
        """True when the level segments of the output segmentation differ from what the last run loaded (the user
        edited them): re-running Apply would replace those edits, so the panel asks first."""
        p = self.params
        node = p.outputSegmentation
        if node is None or p.inputVolume is None or not node.GetAttribute(LABELS_ATTRIBUTE):
            return False
        from RootletSegLogic.slicer.segments import label_image_from_segments

        try:
            current = label_image_from_segments(node, p.inputVolume)
        except UserError:
            return True  # the level segments were deleted or renamed
        return _labels_digest(current) != node.GetAttribute(LABELS_ATTRIBUTE)

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
                                                p.cordSegmentId, p.discs, _value(p.levelMethod))
        except UserError:
            self.clear_results()
            raise
        if p.levelTable is None:
            p.levelTable = self.scene.AddNewNodeByClass("vtkMRMLTableNode", "RootletSeg levels")
        nodes = panel.show_level_result(self.scene, result, p.levelTable)
        self.level_result, self.chart_node = result, nodes["chart"]
        return self.summary_text()

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

    def point_placed(self, markups_node) -> Optional[str]:
        """A point was placed in `markups_node`: give it the pending label (once). Returns the label given."""
        label, self.pending_point_label = self.pending_point_label, None
        if label and markups_node is not None and markups_node.GetNumberOfControlPoints() > 0:
            markups_node.SetNthControlPointLabel(markups_node.GetNumberOfControlPoints() - 1, label)
            return label
        return None

    def placement_ended(self) -> None:
        """Place mode left without a point (Escape, another tool): the pending label must not name a later point."""
        self.pending_point_label = None

    def import_disc_labels(self, path):
        p = self.params
        p.discs = panel.import_disc_label_file(path, p.discs if p.discs is not None else self.scene)
        return p.discs

    # ------------------------------------------------------------------------------------------- exports
    def provenance(self) -> dict:
        """One provenance for every level export: the model record from the segmentation's sidecar (kept on the
        segmentation node when the result was loaded), the contrast and the level method."""
        from RootletSegLogic.provenance import level_provenance

        p = self.params
        model = None
        text = p.outputSegmentation.GetAttribute(MODEL_ATTRIBUTE) if p.outputSegmentation is not None else None
        if text:
            model = json.loads(text)
        inputs = {"volume": {"node": p.inputVolume.GetName() if p.inputVolume is not None else ""}}
        record = level_provenance(inputs, _value(p.levelMethod), model)
        record["contrast"] = _value(p.contrast)
        return record

    def export(self, kind: str, path, overwrite: bool = False) -> Path:
        """Write one export to `path` (the suffix of `kind` must already be on it: see `session.export_path`).
        Level exports are refused when there is no current level result."""
        p = self.params
        if kind == "labelmap":
            return panel.export_label_map(p.outputSegmentation, p.inputVolume, path, overwrite=overwrite)
        if kind == "segmentation":
            return panel.export_segmentation(p.outputSegmentation, path, overwrite=overwrite)
        if kind not in LEVEL_EXPORT_KINDS:
            raise ValueError(f"unknown export kind {kind!r}")
        if self.level_result is None:
            raise UserError("There is no current level result to export: update the levels first.")
        written = panel.export_level_outputs(self.level_result, kind, path, overwrite=overwrite,
                                             provenance=self.provenance())
        if kind == "markups":
            from RootletSegLogic.slicer.level_nodes import level_bound_markups

            level_bound_markups(self.scene, self.level_result)
        return written

    def export_all_paths(self, folder) -> Dict[str, Path]:
        """The files "Export all" writes into `folder`, named after the input volume."""
        name = self.params.inputVolume.GetName() if self.params.inputVolume is not None else "rootlets"
        kinds = EXPORT_ALL_KINDS if self.level_result is not None else EXPORT_ALL_KINDS[:2]
        return {kind: Path(folder) / panel.export_filename(name, kind) for kind in kinds}

    def export_all(self, folder, overwrite: bool = False) -> Dict[str, Path]:
        """Label map, .seg.nrrd and (with a level result) TSV, CSV, planning JSON and markups into `folder`.
        Checks every target first: nothing is written when one exists and `overwrite` is False."""
        from RootletSegLogic.images.atomic import check_outputs

        if self.params.outputSegmentation is None:
            raise UserError("There are no level segments to export: run the segmentation first.")
        paths = self.export_all_paths(folder)
        check_outputs(paths.values(), overwrite)
        return {kind: self.export(kind, path, overwrite=overwrite) for kind, path in paths.items()}


def _value(choice) -> str:
    return getattr(choice, "value", choice)


def level_observations(nodes, slicer_module) -> list:
    """(object to observe, event, what) for the level inputs: segment edits of segmentations ("edit"), moves and
    removals of points ("edit"), a placed point ("placed")."""
    segmentation, markups = slicer_module.vtkSegmentation, slicer_module.vtkMRMLMarkupsNode
    observations = []
    for node in nodes:
        if node.IsA("vtkMRMLSegmentationNode"):
            for event in (segmentation.SourceRepresentationModified, segmentation.SegmentAdded,
                          segmentation.SegmentRemoved, segmentation.SegmentModified):
                observations.append((node.GetSegmentation(), event, "edit"))
        else:
            observations += [(node, markups.PointModifiedEvent, "edit"), (node, markups.PointRemovedEvent, "edit"),
                             (node, markups.PointPositionDefinedEvent, "placed")]
    return observations

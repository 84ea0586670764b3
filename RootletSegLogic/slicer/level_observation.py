"""Observing the level inputs so the levels are recomputed after an edit: which nodes (`level_observation_targets`),
which VTK events (`level_observations`: segment edits, point moves and removals, a placed point), and the observers
themselves (`LevelInputObservers`, replaced only when the targets change).
"""

from __future__ import annotations

from typing import List, Optional


def level_observation_targets(params) -> list:
    """The objects whose edits trigger a level update, each once: the output segmentation and the cord's
    segmentation (the same node when the cord is a segment of the output), the disc point list."""
    p = params
    targets, seen = [], set()
    for node in (p.outputSegmentation, p.cordSegmentation, p.discs):
        if node is not None and node.GetID() not in seen:
            seen.add(node.GetID())
            targets.append(node)
    return targets


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



class LevelInputObservers:
    """The VTK observers on the level inputs of one panel (see `observe`)."""

    def __init__(self):
        self._observed_ids: Optional[List[str]] = None
        self._observers: list = []  # (observed vtk object, observer tag)

    def observe(self, nodes, on_edit, on_placed) -> bool:
        """Observe `nodes` (each once) with VTK observers: segment edits and point moves/removals call
        `on_edit(caller, event)`, a placed point `on_placed(caller, event)`. Nothing is done when the nodes are those
        already observed; returns whether the observers were replaced."""
        from RootletSegLogic.slicer.volumes import import_slicer

        ids = [node.GetID() for node in nodes]
        if ids == self._observed_ids:
            return False
        self.stop()
        self._observed_ids = ids
        for observed, event, what in level_observations(nodes, import_slicer()):
            callback = on_placed if what == "placed" else on_edit
            tag = observed.AddObserver(event, lambda caller, event_id, call=callback: call(caller, event_id))
            self._observers.append((observed, tag))
        return True

    def stop(self) -> None:
        """Remove the observers of `observe`."""
        for observed, tag in self._observers:
            observed.RemoveObserver(tag)
        self._observers, self._observed_ids = [], None

"""A segmentation result as loaded into the scene: the CLI's label map shown as level segments, the run's model record
(from the sidecar) kept on the segmentation node for the exports' provenance, and the digest of the labels as loaded,
to tell whether the user edited the level segments since.
"""

from __future__ import annotations

import hashlib
import json
from typing import Optional

from RootletSegLogic.errors import UserError
from RootletSegLogic.slicer import session as panel

MODEL_ATTRIBUTE = "RootletSeg.Model"
"""Segmentation node attribute: the model record of the run that made its level segments (JSON, from the sidecar)."""
LABELS_ATTRIBUTE = "RootletSeg.LoadedLabelsSha256"
"""Segmentation node attribute: digest of the level label map as loaded, to tell whether the user edited it."""


def _labels_digest(label_image) -> str:
    import SimpleITK as sitk

    return hashlib.sha256(sitk.GetArrayViewFromImage(label_image).tobytes()).hexdigest()


def load_result(scene, params, label_path) -> int:
    """Show a CLI label map (and its sidecar's model record) as level segments of the output segmentation (made
    here when none is chosen); user segments are kept. Returns the number of level segments."""
    from RootletSegLogic import naming
    from RootletSegLogic.provenance import model_record_from_sidecar

    p = params
    label_image = panel.read_label_file(label_path, what="rootlet segmentation")
    try:
        model = model_record_from_sidecar(naming.sidecar_path(label_path))
    except UserError:
        model = None
    if p.outputSegmentation is None:
        p.outputSegmentation = scene.AddNewNodeByClass(
            "vtkMRMLSegmentationNode", p.inputVolume.GetName() + " rootlets")
    from RootletSegLogic.slicer.segments import show_level_segments

    ids = show_level_segments(p.outputSegmentation, label_image, p.inputVolume)
    p.outputSegmentation.SetAttribute(MODEL_ATTRIBUTE, json.dumps(model) if model else "")
    p.outputSegmentation.SetAttribute(LABELS_ATTRIBUTE, _labels_digest(label_image))
    return len(ids)


def level_segments_edited(params) -> bool:
    """True when the level segments of the output segmentation differ from what the last run loaded (the user edited
    them): re-running Apply would replace those edits, so the panel asks first."""
    p = params
    node = p.outputSegmentation
    if node is None or p.inputVolume is None or not node.GetAttribute(LABELS_ATTRIBUTE):
        return False
    from RootletSegLogic.slicer.segments import label_image_from_segments

    try:
        current = label_image_from_segments(node, p.inputVolume)
    except UserError:
        return True  # the level segments were deleted or renamed
    return _labels_digest(current) != node.GetAttribute(LABELS_ATTRIBUTE)


def run_model_record(segmentation_node) -> Optional[dict]:
    """The model record of the run that made the node's level segments (None when unknown or no node)."""
    text = segmentation_node.GetAttribute(MODEL_ATTRIBUTE) if segmentation_node is not None else None
    return json.loads(text) if text else None

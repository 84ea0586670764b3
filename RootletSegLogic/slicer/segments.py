"""Level segments: a rootlet label map shown as one segment per level, with RootletSeg's terminology, and segments
read back into a label map (or one segment, e.g. the cord, into a mask) on a reference volume's grid. No Qt.

`slicer` and `vtk` are imported inside the functions (see `mrml.py`, which also holds the geometry helpers used here).

The public API:

    show_level_segments(segmentation_node, label_image, reference_volume_node, level_names, colors) -> {value: id}
    label_image_from_segments(segmentation_node, reference_volume_node)              -> sitk.Image (SCT values)
    mask_image_from_segment(segmentation_node, segment_id, reference_volume_node)    -> sitk.Image (0/1)
    segment_level_value(segment)                          -> label value a segment stands for, or None

The terminology entry the segments carry comes from `levels/terminology.py` (Slicer-free; `slicer/terminology.py`
registers the file in Slicer).
"""

from __future__ import annotations

import re
from typing import Dict, List, Optional, Sequence

import numpy as np
import SimpleITK as sitk

from RootletSegLogic.errors import UserError
from RootletSegLogic.levels.colors import LEVEL_COLORS, OTHER_COLOR
from RootletSegLogic.levels.types import SPINAL_LEVEL_NAMES
from RootletSegLogic.levels.terminology import terminology_entry_string
from RootletSegLogic.slicer.volumes import (
    import_slicer,
    node_to_world,
    numpy_to_matrix,
    reference_world_image,
    world_ijk_to_ras,
)

SOURCE_TAG = "RootletSeg.Source"
"""Segment tag set to "RootletSeg" on every segment this module made (re-running replaces only those)."""
LEVEL_TAG = "RootletSeg.Level"
"""Segment tag holding the rootlet label value (2 = C2 .. 9 = T1) as text."""

SEGMENT_NAME_SUFFIX = " rootlets"


# -------------------------------------------------------------------------------------------------- segments
def _ensure_converter_rules() -> None:
    """Make sure binary labelmap -> closed surface conversion is registered (it is in Slicer and after
    vtkSlicerSegmentationsModuleLogic.SetMRMLScene; this covers a bare scene)."""
    slicer = import_slicer()
    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    names = {rule.GetName() for rule in factory.GetConverterRules()}
    if "Binary labelmap to closed surface" not in names:
        factory.RegisterConverterRule(slicer.vtkBinaryLabelmapToClosedSurfaceConversionRule())


def _is_ours(segment) -> bool:
    return _get_tag(segment, SOURCE_TAG) == "RootletSeg"


def _get_tag(segment, tag: str) -> str:
    """Value of a segment tag, "" when absent (vtkSegment.GetTag(name, value&) -> bool in Python wrapping)."""
    import vtk  # noqa: PLC0415

    value = vtk.reference("")
    return str(value) if segment.GetTag(tag, value) else ""


def segment_level_value(segment) -> Optional[int]:
    """Rootlet label value a segment stands for: its RootletSeg level tag (any value 1..255 this module wrote), else
    a name "C2 rootlets".."T1 rootlets" (also "C2", "c2 Rootlets") -> 2..9. None for any other segment."""
    tagged = _get_tag(segment, LEVEL_TAG).strip()
    if tagged.isdigit() and 0 < int(tagged) < 256:
        return int(tagged)
    match = re.fullmatch(r"\s*([CT]\d)\s*(rootlets?)?\s*", segment.GetName() or "", flags=re.IGNORECASE)
    if match:
        by_name = {name: value for value, name in SPINAL_LEVEL_NAMES.items()}
        return by_name.get(match.group(1).upper())
    return None


def show_level_segments(
    segmentation_node,
    label_image: sitk.Image,
    reference_volume_node,
    level_names: Optional[Dict[int, str]] = None,
    colors: Optional[Dict[int, Sequence[float]]] = None,
    closed_surfaces: bool = True,
) -> Dict[int, str]:
    """Show a rootlet label map (SCT values, 2 = C2 .. 9 = T1) as one segment per level present.

    `label_image` must be on the world grid of `reference_volume_node` (as `image_from_volume_node` gives it; the
    segmentation result of the core is). Segments are named "<level> rootlets" ("C2 rootlets" .. "T1 rootlets"),
    coloured from `colors` (default: RootletSegLogic.colors.LEVEL_COLORS, RGB 0..1), carry the standard terminology
    entry (SNOMED CT "Spinal nerve root", tag "TerminologyEntry") and the tags `RootletSeg.Source` = "RootletSeg"
    and `RootletSeg.Level` = value. Segments this function made before (tagged) are removed first; every other
    segment (the user's) is kept. The reference geometry is the reference volume; if the segmentation node is
    empty it is put under the reference volume's parent transform (so segments follow the volume). A closed surface
    representation is created for 3D unless `closed_surfaces` is False. Returns {label value: segment ID}.
    """
    slicer = import_slicer()
    import vtk  # noqa: PLC0415
    from vtk.util import numpy_support  # noqa: PLC0415

    level_names = dict(SPINAL_LEVEL_NAMES if level_names is None else level_names)
    colors = dict(LEVEL_COLORS if colors is None else colors)
    reference_grid = reference_world_image(reference_volume_node)
    from RootletSegLogic.images.grid import same_grid

    if not same_grid(label_image, reference_grid, tolerance_mm=1e-3):
        raise UserError(
            f"The rootlet label map is not on the grid of the volume '{reference_volume_node.GetName()}' "
            f"(size {label_image.GetSize()} vs {reference_grid.GetSize()}): segment that volume again or resample "
            f"the label map onto it."
        )

    segmentation = segmentation_node.GetSegmentation()
    if segmentation.GetNumberOfSegments() == 0:
        segmentation_node.SetAndObserveTransformNodeID(reference_volume_node.GetTransformNodeID())
    segmentation_node.SetReferenceImageGeometryParameterFromVolumeNode(reference_volume_node)

    # voxel (i, j, k) -> segmentation node's local RAS: reference world geometry seen from the segmentation's frame
    image_to_local = np.linalg.inv(node_to_world(segmentation_node, "segmentation")) @ world_ijk_to_ras(
        reference_volume_node
    )
    image_to_local_vtk = numpy_to_matrix(image_to_local)

    array = sitk.GetArrayViewFromImage(label_image)
    terminology = terminology_entry_string("rootlets")
    labelmap_name = slicer.vtkSegmentationConverter.GetSegmentationBinaryLabelmapRepresentationName()

    was_modifying = segmentation_node.StartModify()
    try:
        for segment_id in list(segmentation.GetSegmentIDs()):
            if _is_ours(segmentation.GetSegment(segment_id)):
                segmentation.RemoveSegment(segment_id)

        created: Dict[int, str] = {}
        values = sorted(int(v) for v in np.unique(array) if v != 0)
        # one shared labelmap (a layer) holding every level with its own value, cropped to the levels' bounding box:
        # each segment gets SetLabelValue(level value), so Slicer's .seg.nrrd carries 2 = C2 ... 9 = T1
        shared = None
        if values:
            k_idx, j_idx, i_idx = np.nonzero(array)
            i0, i1, j0, j1, k0, k1 = i_idx.min(), i_idx.max(), j_idx.min(), j_idx.max(), k_idx.min(), k_idx.max()
            crop = np.ascontiguousarray(array[k0 : k1 + 1, j0 : j1 + 1, i0 : i1 + 1], dtype=np.uint8)
            shared = slicer.vtkOrientedImageData()
            shared.SetExtent(int(i0), int(i1), int(j0), int(j1), int(k0), int(k1))
            vtk_array = numpy_support.numpy_to_vtk(crop.ravel(), deep=True, array_type=vtk.VTK_UNSIGNED_CHAR)
            shared.GetPointData().SetScalars(vtk_array)
            shared.SetImageToWorldMatrix(image_to_local_vtk)
        for value in values:
            name = level_names.get(value, f"label {value}") + SEGMENT_NAME_SUFFIX
            segment = slicer.vtkSegment()
            segment.SetName(name)
            segment.SetNameAutoGenerated(False)
            segment.SetColor(*[float(c) for c in colors.get(value, OTHER_COLOR)])
            segment.SetColorAutoGenerated(False)
            if hasattr(segment, "SetTerminology"):  # Slicer >= 5.8
                segment.SetTerminology(terminology)
            else:  # pragma: no cover - older Slicer stores the same string under this tag
                segment.SetTag("TerminologyEntry", terminology)
            segment.SetTag(SOURCE_TAG, "RootletSeg")
            segment.SetTag(LEVEL_TAG, str(value))
            segment.AddRepresentation(labelmap_name, shared)
            segment.SetLabelValue(int(value))
            segment_id = segmentation.GenerateUniqueSegmentID(f"RootletSeg_{level_names.get(value, value)}")
            segmentation.AddSegment(segment, segment_id)
            created[value] = segment_id
    finally:
        segmentation_node.EndModify(was_modifying)

    if segmentation_node.GetDisplayNode() is None:
        segmentation_node.CreateDefaultDisplayNodes()
    if closed_surfaces:
        _ensure_converter_rules()
        segmentation_node.CreateClosedSurfaceRepresentation()
    return created


def _color_table_ids(scene) -> set:
    nodes = scene.GetNodesByClass("vtkMRMLColorTableNode")
    nodes.UnRegister(None)
    return {nodes.GetItemAsObject(i).GetID() for i in range(nodes.GetNumberOfItems())}


def _export_on_reference(segmentation_node, segment_ids: Sequence[str], reference_volume_node) -> np.ndarray:
    """Segments as a (k, j, i) uint8 array on the reference volume's voxel grid, by Slicer's own export
    (`vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode` with the reference volume's geometry and
    extent): voxel n holds the 1-based index of the last segment in `segment_ids` covering it (later ones win).
    Both nodes' parent transforms are taken into account by Slicer; where the segments were made on the reference
    grid (the usual case, whatever the transforms) no voxel is gained or lost (Testing/Python/test_mrml.py proves it
    on an oblique volume under a rotation)."""
    slicer = import_slicer()
    import vtk  # noqa: PLC0415
    from vtk.util import numpy_support  # noqa: PLC0415

    dims = reference_volume_node.GetImageData().GetDimensions()
    if not segment_ids:
        return np.zeros((dims[2], dims[1], dims[0]), dtype=np.uint8)
    scene = segmentation_node.GetScene() or reference_volume_node.GetScene()
    ids = vtk.vtkStringArray()
    for segment_id in segment_ids:
        ids.InsertNextValue(segment_id)
    # The reference volume's world grid, expressed in the segmentation's own frame (and put under the segmentation's
    # parent transform): Slicer then sees no transform between segments and reference and copies voxels instead of
    # interpolating, which would move voxels when the two nodes are under different transforms.
    image_to_local = np.linalg.inv(node_to_world(segmentation_node, "segmentation")) @ world_ijk_to_ras(
        reference_volume_node
    )
    reference = slicer.vtkMRMLScalarVolumeNode()
    reference.SetHideFromEditors(True)
    reference_data = vtk.vtkImageData()
    reference_data.SetDimensions(dims)
    reference_data.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    labelmap_node = slicer.vtkMRMLLabelMapVolumeNode()
    labelmap_node.SetHideFromEditors(True)
    color_tables_before = _color_table_ids(scene)
    scene.AddNode(reference)
    scene.AddNode(labelmap_node)
    try:
        reference.SetIJKToRASMatrix(numpy_to_matrix(image_to_local))
        reference.SetAndObserveImageData(reference_data)
        reference.SetAndObserveTransformNodeID(segmentation_node.GetTransformNodeID())
        ok = slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
            segmentation_node, ids, labelmap_node, reference, slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY)
        image_data = labelmap_node.GetImageData()
        if not ok or image_data is None or image_data.GetPointData().GetScalars() is None:
            raise UserError(
                f"Slicer could not export the segments of '{segmentation_node.GetName()}' onto the grid of "
                f"'{reference_volume_node.GetName()}': check that both are in the scene and not warped."
            )
        out_dims = image_data.GetDimensions()
        if tuple(out_dims) != tuple(dims):  # pragma: no cover - Slicer keeps the reference extent
            raise UserError(f"Slicer exported the segments on a {out_dims} grid instead of {dims}.")
        values = numpy_support.vtk_to_numpy(image_data.GetPointData().GetScalars())
        return values.reshape(dims[2], dims[1], dims[0]).astype(np.uint8)
    finally:
        for color_id in _color_table_ids(scene) - color_tables_before:
            scene.RemoveNode(scene.GetNodeByID(color_id))  # made by the export for this label map only
        for node in (labelmap_node, reference):
            display = node.GetDisplayNode()
            if display is not None:
                scene.RemoveNode(display)
            scene.RemoveNode(node)


def _image_on_reference(array_kji: np.ndarray, reference_volume_node) -> sitk.Image:
    image = sitk.GetImageFromArray(array_kji)
    image.CopyInformation(reference_world_image(reference_volume_node))
    return image


def label_image_from_segments(segmentation_node, reference_volume_node) -> sitk.Image:
    """The level segments ("C2 rootlets" .. "T1 rootlets") back to one label map with SCT values (2 = C2 .. 9 = T1).

    Segments are matched by RootletSeg's level tag first, then by name (see `segment_level_value`); other segments
    are ignored. Several segments of one level (e.g. a user's extra "C3 rootlets") are merged. The result is a uint8
    SimpleITK image on the world grid of `reference_volume_node` (LPS), ready for `levels`. Raises UserError when no
    segment is a level segment.
    """
    segmentation = segmentation_node.GetSegmentation()
    by_value: Dict[int, List[str]] = {}
    for segment_id in segmentation.GetSegmentIDs():
        value = segment_level_value(segmentation.GetSegment(segment_id))
        if value is not None:
            by_value.setdefault(value, []).append(segment_id)
    if not by_value:
        raise UserError(
            f"The segmentation '{segmentation_node.GetName()}' has no rootlet level segments (named 'C2 rootlets' .. "
            f"'T1 rootlets'): run the segmentation or rename the segments."
        )
    ordered = [(value, segment_id) for value in sorted(by_value) for segment_id in by_value[value]]
    # ascending: where levels overlap, the more caudal one wins (Slicer paints later segments over earlier ones)
    index = _export_on_reference(segmentation_node, [segment_id for _, segment_id in ordered], reference_volume_node)
    lookup = np.zeros(len(ordered) + 1, dtype=np.uint8)
    lookup[1:] = [value for value, _ in ordered]
    return _image_on_reference(lookup[index], reference_volume_node)


def mask_image_from_segment(segmentation_node, segment_id: str, reference_volume_node) -> sitk.Image:
    """One segment (any segmentation, e.g. the spinal cord) as a 0/1 uint8 SimpleITK image on the world grid of
    `reference_volume_node` (LPS). Raises UserError when the segment does not exist or is empty."""
    segment = segmentation_node.GetSegmentation().GetSegment(segment_id)
    if segment is None:
        raise UserError(
            f"The segmentation '{segmentation_node.GetName()}' has no segment '{segment_id}': pick another segment."
        )
    mask = (_export_on_reference(segmentation_node, [segment_id], reference_volume_node) > 0).astype(np.uint8)
    if not mask.any():
        raise UserError(
            f"The segment '{segment.GetName()}' is empty on the grid of '{reference_volume_node.GetName()}': "
            f"paint it or pick another segment."
        )
    return _image_on_reference(mask, reference_volume_node)


__all__ = [
    "segment_level_value",
    "show_level_segments",
    "label_image_from_segments",
    "mask_image_from_segment",
]

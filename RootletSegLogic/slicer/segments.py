"""Level segments: a rootlet label map shown as one segment per level, with RootletSeg's terminology, and segments
read back into a label map (or one segment, e.g. the cord, into a mask) on a reference volume's grid. No Qt.

`slicer` and `vtk` are imported inside the functions (see `mrml.py`, which also holds the geometry helpers used here).

The public API:

    show_level_segments(segmentation_node, label_image, reference_volume_node, level_names, colors) -> {value: id}
    label_image_from_segments(segmentation_node, reference_volume_node)              -> sitk.Image (SCT values)
    mask_image_from_segment(segmentation_node, segment_id, reference_volume_node)    -> sitk.Image (0/1)
    segment_level_value(segment)                          -> label value a segment stands for, or None
    terminology_file(), terminology_entry_string(kind), register_terminology(terminology_logic)
"""

from __future__ import annotations

import re
from typing import Dict, List, Optional, Sequence

import numpy as np
import SimpleITK as sitk

from RootletSegLogic.errors import UserError
from RootletSegLogic.levels.colors import LEVEL_COLORS, OTHER_COLOR
from RootletSegLogic.levels.types import SPINAL_LEVEL_NAMES
from RootletSegLogic.slicer.terminology import terminology_entry_string
from RootletSegLogic.slicer.volumes import (
    import_slicer,
    matrix_to_numpy,
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
        for value in values:
            name = level_names.get(value, f"label {value}") + SEGMENT_NAME_SUFFIX
            mask = array == value
            k_idx, j_idx, i_idx = np.nonzero(mask)
            i0, i1, j0, j1, k0, k1 = i_idx.min(), i_idx.max(), j_idx.min(), j_idx.max(), k_idx.min(), k_idx.max()
            crop = np.ascontiguousarray(mask[k0 : k1 + 1, j0 : j1 + 1, i0 : i1 + 1], dtype=np.uint8)

            oriented = slicer.vtkOrientedImageData()
            oriented.SetExtent(int(i0), int(i1), int(j0), int(j1), int(k0), int(k1))
            vtk_array = numpy_support.numpy_to_vtk(crop.ravel(), deep=True, array_type=vtk.VTK_UNSIGNED_CHAR)
            oriented.GetPointData().SetScalars(vtk_array)
            oriented.SetImageToWorldMatrix(image_to_local_vtk)

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
            segment.AddRepresentation(labelmap_name, oriented)
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


def _segment_mask_on_reference(segmentation_node, segment_id: str, reference_volume_node) -> np.ndarray:
    """One segment as a boolean (k, j, i) array on the reference volume's voxel grid.

    Each reference voxel takes the value of the segment voxel nearest to its centre (nearest neighbour, in world
    space, with both nodes' parent transforms applied). Where the grids coincide (the usual case: segments made on
    the reference volume, whatever the transforms) this is exact: no voxel is gained or lost. Works slice by slice
    so memory stays at a few slices.
    """
    slicer = import_slicer()
    from vtk.util import numpy_support  # noqa: PLC0415

    ref_dims = reference_volume_node.GetImageData().GetDimensions()
    out = np.zeros((ref_dims[2], ref_dims[1], ref_dims[0]), dtype=bool)
    segment = segmentation_node.GetSegmentation().GetSegment(segment_id)
    labelmap = slicer.vtkOrientedImageData()
    ok = slicer.vtkSlicerSegmentationsModuleLogic.GetSegmentBinaryLabelmapRepresentation(
        segmentation_node, segment_id, labelmap, False
    )
    if not ok or labelmap.GetPointData().GetScalars() is None:
        return out  # an empty segment
    extent = labelmap.GetExtent()
    if extent[1] < extent[0] or extent[3] < extent[2] or extent[5] < extent[4]:
        return out
    shape_kji = (extent[5] - extent[4] + 1, extent[3] - extent[2] + 1, extent[1] - extent[0] + 1)
    values = numpy_support.vtk_to_numpy(labelmap.GetPointData().GetScalars()).reshape(shape_kji)
    # a shared labelmap layer holds several segments: keep this segment's label value only
    inside = values == segment.GetLabelValue() if segment.GetLabelValue() else values != 0
    if not inside.any():
        return out

    import vtk  # noqa: PLC0415

    image_to_local = vtk.vtkMatrix4x4()
    labelmap.GetImageToWorldMatrix(image_to_local)
    segment_ijk_to_world = node_to_world(segmentation_node, "segmentation") @ matrix_to_numpy(image_to_local)
    # reference voxel (i, j, k) -> segment voxel (i, j, k)
    ref_to_segment = np.linalg.inv(segment_ijk_to_world) @ world_ijk_to_ras(reference_volume_node)

    # reference voxels that can see the segment's bounding box (its corners mapped back, 1 voxel margin)
    k_idx, j_idx, i_idx = np.nonzero(inside)
    lo = np.array([i_idx.min(), j_idx.min(), k_idx.min()]) + np.array(extent[0::2])
    hi = np.array([i_idx.max(), j_idx.max(), k_idx.max()]) + np.array(extent[0::2])
    corners = np.array([[x, y, z, 1.0] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    in_ref = (np.linalg.inv(ref_to_segment) @ corners.T).T[:, :3]
    ref_lo = np.maximum(np.floor(in_ref.min(axis=0)) - 1, 0).astype(int)
    ref_hi = np.minimum(np.ceil(in_ref.max(axis=0)) + 1, np.array(ref_dims) - 1).astype(int)
    if np.any(ref_hi < ref_lo):
        return out
    ii, jj = np.meshgrid(np.arange(ref_lo[0], ref_hi[0] + 1), np.arange(ref_lo[1], ref_hi[1] + 1), indexing="xy")
    origin = np.array(extent[0::2])
    for k in range(ref_lo[2], ref_hi[2] + 1):
        ref_points = np.stack([ii.ravel(), jj.ravel(), np.full(ii.size, k), np.ones(ii.size)])
        seg_ijk = np.rint((ref_to_segment @ ref_points)[:3]).astype(np.int64) - origin[:, None]
        valid = np.all((seg_ijk >= 0) & (seg_ijk < np.array(shape_kji[::-1])[:, None]), axis=0)
        hit = np.zeros(ii.size, dtype=bool)
        hit[valid] = inside[seg_ijk[2, valid], seg_ijk[1, valid], seg_ijk[0, valid]]
        out[k, ref_lo[1] : ref_hi[1] + 1, ref_lo[0] : ref_hi[0] + 1] = hit.reshape(ii.shape)
    return out


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
    dims = reference_volume_node.GetImageData().GetDimensions()
    labels = np.zeros((dims[2], dims[1], dims[0]), dtype=np.uint8)
    for value in sorted(by_value):  # ascending: where levels overlap, the more caudal one wins
        for segment_id in by_value[value]:
            labels[_segment_mask_on_reference(segmentation_node, segment_id, reference_volume_node)] = value
    return _image_on_reference(labels, reference_volume_node)


def mask_image_from_segment(segmentation_node, segment_id: str, reference_volume_node) -> sitk.Image:
    """One segment (any segmentation, e.g. the spinal cord) as a 0/1 uint8 SimpleITK image on the world grid of
    `reference_volume_node` (LPS). Raises UserError when the segment does not exist or is empty."""
    segment = segmentation_node.GetSegmentation().GetSegment(segment_id)
    if segment is None:
        raise UserError(
            f"The segmentation '{segmentation_node.GetName()}' has no segment '{segment_id}': pick another segment."
        )
    mask = _segment_mask_on_reference(segmentation_node, segment_id, reference_volume_node).astype(np.uint8)
    if not mask.any():
        raise UserError(
            f"The segment '{segment.GetName()}' is empty on the grid of '{reference_volume_node.GetName()}': "
            f"paint it or pick another segment."
        )
    return _image_on_reference(mask, reference_volume_node)


__all__ = [
    "terminology_file",
    "terminology_entry_string",
    "register_terminology",
    "segment_level_value",
    "show_level_segments",
    "label_image_from_segments",
    "mask_image_from_segment",
]

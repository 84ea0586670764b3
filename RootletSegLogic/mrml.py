"""Adapters between MRML nodes (3D Slicer's scene) and the RootletSeg core. No Qt.

Everything here needs only MRML/VTK, so it runs in desktop Slicer and on the `slicer-core` wheel (tests). `slicer` and
`vtk` are imported inside the functions: importing this module never needs Slicer.

Frames and units:
- MRML world coordinates are RAS mm; SimpleITK images are LPS mm. A volume's "world" geometry is its IJK-to-RAS matrix
  with its parent transform applied (hardened). Linear parent transforms (rotation, translation, uniform or per-axis
  scaling along the voxel axes) are supported exactly; non-linear (warping) transforms and shears are refused with a
  UserError, because the result could not sit on the voxel grid the user sees without resampling.
- Markups positions are read and written in world RAS (the markups node's parent transform applied).

The public API (what the Slicer module and its self-test call):

    create_core_scene()                                   -> CoreScene   (slicer-core only: scene + logics)
    image_from_volume_node(volume_node)                   -> sitk.Image  (world space, LPS, exact values)
    volume_node_from_image(scene, image, name, labelmap)  -> volume node
    show_level_segments(segmentation_node, label_image, reference_volume_node, level_names, colors) -> {value: id}
    label_image_from_segments(segmentation_node, reference_volume_node)              -> sitk.Image (SCT values)
    mask_image_from_segment(segmentation_node, segment_id, reference_volume_node)    -> sitk.Image (0/1)
    disc_points_from_markups(markups_node)                -> list[DiscPoint]  (PMJ included as value 50)
    pmj_from_markups(markups_node)                        -> RAS point or None
    markups_from_disc_points(scene_or_node, discs, pmj)   -> markups node
    next_disc_name(markups_node)                          -> "C2/C3" .. "T1/T2", or "" when all are placed
    update_level_table_node(table_node, result)           -> table node (same columns as `rootletseg levels`)
    update_level_chart(scene, result)                     -> plot chart node
    level_bound_markups(scene, result)                    -> markups node
    terminology_file(), terminology_entry_string(kind), register_terminology(terminology_logic)
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np
import SimpleITK as sitk

from .colors import LEVEL_COLORS, OTHER_COLOR
from .errors import UserError
from .level_types import DISC_NAMES, SPINAL_LEVEL_NAMES, DiscPoint, LevelResult, Point3

# ------------------------------------------------------------------------------------------------ constants
TERMINOLOGY_DIR = Path(__file__).resolve().parent / "terminology"
TERMINOLOGY_FILE = TERMINOLOGY_DIR / "SegmentationCategoryTypeModifier-RootletSeg.json"

SOURCE_TAG = "RootletSeg.Source"
"""Segment tag set to "RootletSeg" on every segment this module made (re-running replaces only those)."""
LEVEL_TAG = "RootletSeg.Level"
"""Segment tag holding the rootlet label value (2 = C2 .. 9 = T1) as text."""
ROLE_ATTRIBUTE = "RootletSeg.Role"
"""Node attribute naming what a helper node is for, so updates reuse it instead of adding new nodes."""

SEGMENT_NAME_SUFFIX = " rootlets"
DISC_MARKUPS_NAME = "Discs"
GUIDED_DISC_VALUES = (3, 4, 5, 6, 7, 8, 9)  # C2/C3 .. T1/T2, the order of guided placement
PMJ_VALUE = 50
PMG_VALUE = 49

_LPS_FLIP = np.diag([-1.0, -1.0, 1.0])  # RAS <-> LPS for directions and points


def _slicer():
    """The `slicer` module (desktop Slicer or the slicer-core wheel); a clear error without it."""
    try:
        import slicer  # noqa: PLC0415
    except ImportError as error:  # pragma: no cover - only without Slicer
        raise RuntimeError(
            "RootletSegLogic.mrml needs 3D Slicer's MRML: run it inside Slicer, or install the 'slicer-core' wheel "
            "for tests."
        ) from error
    return slicer


# ------------------------------------------------------------------------------------------ scene (slicer-core)
class CoreScene:
    """A vtkMRMLScene set up as Slicer's application does, for use without Slicer's Qt (slicer-core wheel).

    Holds the scene and the logics that must stay alive with it: application logic (with its default colour nodes),
    colours, volumes, segmentations (which registers the labelmap <-> closed surface converter rules), markups,
    tables, plots, and a terminology logic with RootletSeg's terminology loaded. In desktop Slicer use
    `slicer.mrmlScene` instead: all of this already exists there.
    """

    def __init__(self):
        slicer = _slicer()
        import vtk  # noqa: PLC0415

        self.scene = slicer.vtkMRMLScene()
        crosshair = slicer.vtkMRMLCrosshairNode()
        crosshair.SetCrosshairName("default")
        self.scene.AddNode(crosshair)

        self.app_logic = slicer.vtkSlicerApplicationLogic()
        self.app_logic.SetMRMLScene(self.scene)
        self.app_logic.GetColorLogic().SetMRMLScene(self.scene)
        self.app_logic.GetColorLogic().AddDefaultColorNodes()
        self.app_logic.SetSliceLogics(vtk.vtkCollection())
        self.app_logic.SetViewLogics(vtk.vtkCollection())

        self.logics = {}
        for name, factory in (
            ("Colors", slicer.vtkMRMLColorLogic),
            ("Volumes", slicer.vtkSlicerVolumesLogic),
            ("Segmentations", slicer.vtkSlicerSegmentationsModuleLogic),
            ("Markups", slicer.vtkSlicerMarkupsLogic),
            ("Tables", slicer.vtkSlicerTablesLogic),
            ("Plots", slicer.vtkSlicerPlotsLogic),
        ):
            logic = factory()
            logic.SetMRMLApplicationLogic(self.app_logic)
            logic.SetMRMLScene(self.scene)
            self.app_logic.SetModuleLogic(name, logic)
            self.logics[name] = logic

        # The terminology logic is not given the scene: that would make it look for Slicer's own terminology files,
        # which slicer-core does not ship. RootletSeg's terminology is loaded from the package instead.
        self.terminology_logic = slicer.vtkSlicerTerminologiesModuleLogic()
        self.terminology_logic.SetMRMLApplicationLogic(self.app_logic)
        self.app_logic.SetModuleLogic("Terminologies", self.terminology_logic)
        register_terminology(self.terminology_logic)


def create_core_scene() -> CoreScene:
    """A new scene with the logics Slicer would have created (see `CoreScene`); keep the returned object alive."""
    return CoreScene()


# --------------------------------------------------------------------------------------------------- terminology
def terminology_file() -> Path:
    """The Slicer terminology JSON (segment context schema) RootletSeg carries: spinal nerve root, spinal cord."""
    return TERMINOLOGY_FILE


def _terminology_json() -> dict:
    return json.loads(TERMINOLOGY_FILE.read_text(encoding="utf-8"))


def _code(entry: Optional[dict]) -> str:
    if not entry:
        return "^^"
    return f"{entry['CodingSchemeDesignator']}^{entry['CodeValue']}^{entry['CodeMeaning']}"


def terminology_entry_string(kind: str = "rootlets") -> str:
    """Slicer's serialized terminology entry (the segment tag "TerminologyEntry") for `kind` "rootlets" or "cord".

    Format: context~category~type~typeModifier~anatomicContext~anatomicRegion~regionModifier, each code as
    `scheme^value^meaning` (SNOMED CT: 69733000 "Spinal nerve root", 2748008 "Spinal cord", category 123037004
    "Anatomical Structure"). Built from RootletSeg's terminology file, so it matches what Slicer's terminology
    logic serializes after `register_terminology`.
    """
    meaning = {"rootlets": "Spinal nerve root", "cord": "Spinal cord"}.get(kind)
    if meaning is None:
        raise ValueError(f"unknown terminology kind {kind!r}: use 'rootlets' or 'cord'")
    data = _terminology_json()
    for category in data["SegmentationCodes"]["Category"]:
        for type_ in category["Type"]:
            if type_["CodeMeaning"] == meaning:
                context = data["SegmentationCategoryTypeContextName"]
                return "~".join([context, _code(category), _code(type_), "^^", "", "^^", "^^"])
    raise RuntimeError(f"'{meaning}' is missing from {TERMINOLOGY_FILE}")


def register_terminology(terminology_logic) -> str:
    """Load RootletSeg's terminology into a vtkSlicerTerminologiesModuleLogic (in Slicer:
    `slicer.modules.terminologies.logic()`), so Segment Editor's terminology selector knows the entries.
    Returns the context name. Loading twice is harmless."""
    name = terminology_logic.LoadTerminologyFromFile(str(TERMINOLOGY_FILE))
    if not name:
        raise RuntimeError(f"Slicer could not load the terminology file {TERMINOLOGY_FILE}")
    return name


# ------------------------------------------------------------------------------------------ matrices and geometry
def _matrix_to_numpy(vtk_matrix) -> np.ndarray:
    return np.array([[vtk_matrix.GetElement(r, c) for c in range(4)] for r in range(4)], dtype=float)


def _numpy_to_matrix(array: np.ndarray):
    import vtk  # noqa: PLC0415

    matrix = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            matrix.SetElement(r, c, float(array[r, c]))
    return matrix


def _node_to_world(node, what: str) -> np.ndarray:
    """4x4 matrix from a transformable node's local RAS to world RAS (identity without a parent transform)."""
    transform_node = node.GetParentTransformNode()
    if transform_node is None:
        return np.eye(4)
    if not transform_node.IsTransformToWorldLinear():
        raise UserError(
            f"The {what} '{node.GetName()}' is under a non-linear (warping) transform: harden the transform on it "
            f"(Data module, right-click, Harden transform) or remove it, then try again."
        )
    import vtk  # noqa: PLC0415

    matrix = vtk.vtkMatrix4x4()
    transform_node.GetMatrixTransformToWorld(matrix)
    return _matrix_to_numpy(matrix)


def _local_ijk_to_ras(volume_node) -> np.ndarray:
    import vtk  # noqa: PLC0415

    matrix = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(matrix)
    return _matrix_to_numpy(matrix)


def world_ijk_to_ras(volume_node) -> np.ndarray:
    """4x4 voxel (i, j, k) -> world RAS mm matrix of a volume node, its parent transform applied (linear only)."""
    return _node_to_world(volume_node, "volume") @ _local_ijk_to_ras(volume_node)


def _geometry_from_ijk_to_ras(matrix: np.ndarray, name: str):
    """(spacing, origin LPS, direction LPS row-major) from an IJK-to-RAS matrix; UserError for shear/singular."""
    axes = matrix[:3, :3]
    spacing = np.linalg.norm(axes, axis=0)
    if np.any(spacing <= 0) or not np.all(np.isfinite(axes)):
        raise UserError(f"The volume '{name}' has a degenerate voxel-to-world matrix: reset its transform.")
    direction = axes / spacing
    if not np.allclose(direction.T @ direction, np.eye(3), atol=1e-6):
        raise UserError(
            f"The volume '{name}' is sheared by its parent transform (voxel axes are no longer perpendicular): "
            f"harden the transform (which resamples it) or remove the shear, then try again."
        )
    origin_lps = _LPS_FLIP @ matrix[:3, 3]
    direction_lps = _LPS_FLIP @ direction
    return (
        tuple(float(v) for v in spacing),
        tuple(float(v) for v in origin_lps),
        tuple(float(v) for v in direction_lps.ravel()),
    )


def _ijk_to_ras_from_image(image: sitk.Image) -> np.ndarray:
    """4x4 voxel -> RAS matrix of a SimpleITK image (LPS physical space)."""
    direction_lps = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    matrix = np.eye(4)
    matrix[:3, :3] = _LPS_FLIP @ direction_lps * np.asarray(image.GetSpacing(), dtype=float)
    matrix[:3, 3] = _LPS_FLIP @ np.asarray(image.GetOrigin(), dtype=float)
    return matrix


def _reference_world_image(volume_node) -> sitk.Image:
    """An empty (1-voxel-content-free) description of the world grid of a volume node, as a SimpleITK image."""
    dims = volume_node.GetImageData().GetDimensions()
    spacing, origin, direction = _geometry_from_ijk_to_ras(world_ijk_to_ras(volume_node), volume_node.GetName())
    image = sitk.Image([int(d) for d in dims], sitk.sitkUInt8)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(direction)
    return image


# ------------------------------------------------------------------------------------------------ volumes
def image_from_volume_node(volume_node) -> sitk.Image:
    """A scalar volume node as a SimpleITK image in world space (LPS mm), voxel values exact.

    The voxel array is copied unchanged; spacing, origin and direction come from the node's IJK-to-RAS matrix with
    its parent transform applied (a linear transform is "hardened" into the geometry; the node is not modified).
    Oblique directions are kept. Raises UserError for a node without image data, a vector (multi-component) volume,
    a non-linear parent transform or a shear.
    """
    from vtk.util import numpy_support  # noqa: PLC0415

    image_data = volume_node.GetImageData() if volume_node is not None else None
    if image_data is None or image_data.GetPointData().GetScalars() is None:
        name = volume_node.GetName() if volume_node is not None else "(none)"
        raise UserError(f"The volume '{name}' has no voxels loaded: load or select another volume.")
    scalars = image_data.GetPointData().GetScalars()
    if scalars.GetNumberOfComponents() != 1:
        raise UserError(
            f"The volume '{volume_node.GetName()}' has {scalars.GetNumberOfComponents()} values per voxel: "
            f"select a scalar (grey-level) volume."
        )
    dims = image_data.GetDimensions()
    array = numpy_support.vtk_to_numpy(scalars).reshape(dims[2], dims[1], dims[0]).copy()
    spacing, origin, direction = _geometry_from_ijk_to_ras(world_ijk_to_ras(volume_node), volume_node.GetName())
    image = sitk.GetImageFromArray(array, isVector=False)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(direction)
    return image


def volume_node_from_image(scene, image: sitk.Image, name: str, labelmap: bool = False):
    """Add a scalar (or, with `labelmap`, a label map) volume node holding `image` (LPS world geometry) to `scene`.

    The voxel array and type are copied exactly; the node's IJK-to-RAS matrix is the image's geometry in RAS, and the
    node has no parent transform. Display nodes are created (a label map shows with Slicer's "Labels" colours).
    """
    slicer = _slicer()
    import vtk  # noqa: PLC0415
    from vtk.util import numpy_support  # noqa: PLC0415

    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise UserError(f"The image for '{name}' must be a 3D scalar image (got {image.GetDimension()}D).")
    array = sitk.GetArrayFromImage(image)  # (k, j, i)
    image_data = vtk.vtkImageData()
    image_data.SetDimensions(image.GetSize())
    vtk_array = numpy_support.numpy_to_vtk(np.ascontiguousarray(array).ravel(), deep=True)
    vtk_array.SetName("ImageScalars")
    image_data.GetPointData().SetScalars(vtk_array)

    node_class = slicer.vtkMRMLLabelMapVolumeNode if labelmap else slicer.vtkMRMLScalarVolumeNode
    node = node_class()
    node.SetName(name)
    scene.AddNode(node)
    node.SetIJKToRASMatrix(_numpy_to_matrix(_ijk_to_ras_from_image(image)))
    node.SetAndObserveImageData(image_data)
    node.CreateDefaultDisplayNodes()
    display = node.GetDisplayNode()
    if labelmap and display is not None and scene.GetNodeByID(display.GetColorNodeID() or "") is None:
        display.SetAndObserveColorNodeID("vtkMRMLColorTableNodeLabels")
    return node


# -------------------------------------------------------------------------------------------------- segments
def _ensure_converter_rules() -> None:
    """Make sure binary labelmap -> closed surface conversion is registered (it is in Slicer and after
    vtkSlicerSegmentationsModuleLogic.SetMRMLScene; this covers a bare scene)."""
    slicer = _slicer()
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
    slicer = _slicer()
    import vtk  # noqa: PLC0415
    from vtk.util import numpy_support  # noqa: PLC0415

    level_names = dict(SPINAL_LEVEL_NAMES if level_names is None else level_names)
    colors = dict(LEVEL_COLORS if colors is None else colors)
    reference_grid = _reference_world_image(reference_volume_node)
    from .imageio import same_grid  # noqa: PLC0415

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
    image_to_local = np.linalg.inv(_node_to_world(segmentation_node, "segmentation")) @ world_ijk_to_ras(
        reference_volume_node
    )
    image_to_local_vtk = _numpy_to_matrix(image_to_local)

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
    slicer = _slicer()
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
    segment_ijk_to_world = _node_to_world(segmentation_node, "segmentation") @ _matrix_to_numpy(image_to_local)
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
    image.CopyInformation(_reference_world_image(reference_volume_node))
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


# ------------------------------------------------------------------------------------------------------- discs
_DISC_BY_NAME = {name.upper().replace(" ", ""): value for value, name in DISC_NAMES.items()}


def disc_value_from_label(label: str) -> Optional[int]:
    """SCT disc value of a control point label: "C2/C3" (also "c2-c3", "C2C3"), "PMJ", "PMG", "disc 3", "3".
    None when the label names no disc."""
    text = re.sub(r"\s+", "", (label or "").upper()).replace("-", "/")
    if text in _DISC_BY_NAME:
        return _DISC_BY_NAME[text]
    match = re.fullmatch(r"([CT]\d{1,2})/?([CT]\d{1,2})", text)
    if match:
        return _DISC_BY_NAME.get(f"{match.group(1)}/{match.group(2)}")
    match = re.fullmatch(r"(?:DISC)?(\d{1,2})", text)
    if match and int(match.group(1)) in DISC_NAMES:
        return int(match.group(1))
    return None


def _defined_points(markups_node):
    """(index, label, world RAS) of every control point with a defined position."""
    slicer = _slicer()
    points = []
    for index in range(markups_node.GetNumberOfControlPoints()):
        if markups_node.GetNthControlPointPositionStatus(index) != slicer.vtkMRMLMarkupsNode.PositionDefined:
            continue
        position = [0.0, 0.0, 0.0]
        markups_node.GetNthControlPointPositionWorld(index, position)
        points.append((index, markups_node.GetNthControlPointLabel(index), tuple(float(v) for v in position)))
    return points


def disc_points_from_markups(markups_node) -> List[DiscPoint]:
    """Disc markers of a point list as DiscPoints (SCT values; PMJ is value 50, PMG 49), sorted by value.

    Labels are disc names ("C2/C3" .. "T1/T2", "PMJ"; also "disc 3" or "3"). Positions are world RAS mm (the node's
    parent transform applied). Points not yet placed are skipped. Raises UserError for a label that names no disc
    or a disc placed twice.
    """
    discs: Dict[int, DiscPoint] = {}
    for _, label, position in _defined_points(markups_node):
        value = disc_value_from_label(label)
        if value is None:
            raise UserError(
                f"The point '{label}' in '{markups_node.GetName()}' is not a disc name: rename it to one of C2/C3, "
                f"C3/C4, ... T1/T2 or PMJ."
            )
        if value in discs:
            raise UserError(
                f"The disc {DISC_NAMES[value]} is placed twice in '{markups_node.GetName()}': delete one of the points."
            )
        discs[value] = DiscPoint(value=value, position_ras=position)
    return [discs[value] for value in sorted(discs)]


def pmj_from_markups(markups_node) -> Optional[Point3]:
    """World RAS position of the point labelled "PMJ" (or "50"), or None."""
    for disc in disc_points_from_markups(markups_node):
        if disc.value == PMJ_VALUE:
            return disc.position_ras
    return None


def markups_from_disc_points(scene_or_node, discs: Iterable[DiscPoint], pmj: Optional[Point3] = None):
    """Write disc markers into a point list: given a scene, a new "Discs" point list is added; given a markups node,
    its control points are replaced. Labels are disc names ("C2/C3", ..., "PMJ"), positions world RAS mm (placed
    correctly under the node's parent transform). `pmj` (RAS) adds a "PMJ" point. Returns the node."""
    import vtk  # noqa: PLC0415

    if scene_or_node.IsA("vtkMRMLScene"):
        node = scene_or_node.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", DISC_MARKUPS_NAME)
        node.CreateDefaultDisplayNodes()
    else:
        node = scene_or_node
    points = {disc.value: tuple(disc.position_ras) for disc in discs}
    if pmj is not None:
        points[PMJ_VALUE] = tuple(pmj)
    was_modifying = node.StartModify()
    try:
        node.RemoveAllControlPoints()
        for value in sorted(points):
            position = vtk.vtkVector3d(*[float(v) for v in points[value]])
            node.AddControlPointWorld(position, DISC_NAMES.get(value, f"disc {value}"))
    finally:
        node.EndModify(was_modifying)
    return node


def next_disc_name(markups_node) -> str:
    """Name of the next disc to place in guided order C2/C3, C3/C4, ..., T1/T2, skipping discs already placed
    (whatever their label spelling); "" when all of them are placed."""
    placed = set()
    for _, label, _ in _defined_points(markups_node) if markups_node is not None else []:
        value = disc_value_from_label(label)
        if value is not None:
            placed.add(value)
    for value in GUIDED_DISC_VALUES:
        if value not in placed:
            return DISC_NAMES[value]
    return ""


# ------------------------------------------------------------------------------------------------ table, chart
def _level_rows(result: LevelResult) -> List[dict]:
    from . import export  # noqa: PLC0415  (written by the export engineer; same rows as the `levels` TSV)

    return export.level_table_rows(result)


def _column_kind(values: list) -> str:
    present = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if present and all(isinstance(v, (bool, np.bool_)) for v in present):
        return "string"
    if present and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in present):
        return "int" if len(present) == len(values) else "double"
    if all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in present):
        return "double"
    return "string"


def update_level_table_node(table_node, result: LevelResult):
    """Fill a vtkMRMLTableNode with the level table: the same columns and numbers as `rootletseg levels` writes
    (rows from `export.level_table_rows(result)`). Whole-number columns are integer columns, numeric columns double
    columns (missing = NaN), others text; columns ending in "_mm" get the unit "mm". The node is replaced in place
    (its ID and views stay) and locked against editing, since it is computed."""
    import vtk  # noqa: PLC0415

    rows = _level_rows(result)
    names: List[str] = []
    for row in rows:
        for key in row:
            if key not in names:
                names.append(key)
    table = vtk.vtkTable()
    kinds = {}
    for name in names:
        values = [row.get(name) for row in rows]
        kind = _column_kind(values)
        kinds[name] = kind
        if kind == "int":
            column = vtk.vtkIntArray()
            for v in values:
                column.InsertNextValue(int(v))
        elif kind == "double":
            column = vtk.vtkDoubleArray()
            for v in values:
                column.InsertNextValue(float("nan") if v is None else float(v))
        else:
            column = vtk.vtkStringArray()
            for v in values:
                column.InsertNextValue("" if v is None else str(v))
        column.SetName(name)
        table.AddColumn(column)

    was_modifying = table_node.StartModify()
    try:
        table_node.SetLocked(False)
        table_node.SetAndObserveTable(table)
        table_node.SetUseColumnNameAsColumnHeader(True)
        for name in names:
            if name.endswith("_mm"):
                table_node.SetColumnUnitLabel(name, "mm")
        table_node.SetAttribute(ROLE_ATTRIBUTE, "LevelTable")
        table_node.SetLocked(True)
    finally:
        table_node.EndModify(was_modifying)
    return table_node


def _role_node(scene, class_name: str, role: str, name: str):
    """The node of `class_name` tagged with `role` in `scene`, or a new one."""
    nodes = scene.GetNodesByClass(class_name)
    nodes.UnRegister(None)
    for index in range(nodes.GetNumberOfItems()):
        node = nodes.GetItemAsObject(index)
        if node.GetAttribute(ROLE_ATTRIBUTE) == role:
            return node
    node = scene.AddNewNodeByClass(class_name, name)
    node.SetAttribute(ROLE_ATTRIBUTE, role)
    return node


_CHART_LEVELS = ["C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8", "T1", "T2", "T3"]


def _chart_mode(result: LevelResult) -> str:
    """Which y values the chart shows: "distance" (the result's own distance reference, `*_distance_mm`), "pmj"
    (`*_pmj_mm`, for results without distance fields) or "S" (RAS S coordinate)."""
    if result.rows and all(row.rostral_distance_mm is not None for row in result.rows):
        return "distance"
    if result.rows and all(row.rostral_pmj_mm is not None for row in result.rows):
        return "pmj"
    return "S"


def _chart_values(row, mode: str) -> List[float]:
    if mode == "distance":
        rostral, caudal, mid = row.rostral_distance_mm, row.caudal_distance_mm, row.midpoint_distance_mm
    elif mode == "pmj":
        rostral, caudal, mid = row.rostral_pmj_mm, row.caudal_pmj_mm, row.midpoint_pmj_mm
    else:
        rostral, caudal, mid = row.rostral_S_mm, row.caudal_S_mm, None
    if mid is None and rostral is not None and caudal is not None:
        mid = (rostral + caudal) / 2
    return [float("nan") if v is None else float(v) for v in (rostral, mid, caudal)]


def update_level_chart(scene, result: LevelResult):
    """A plot chart node "RootletSeg levels": spinal and vertebral rostral bound, midpoint and caudal bound (y, mm)
    per level (x: level index, 1 = C1 .. 9 = T1, labelled by level name). y is the distance in the result's
    reference (`*_distance_mm`: below the PMJ along the cord, or below the reference S plane without a PMJ), as in
    the level table; for results without those fields the PMJ distance, else the RAS S coordinate. Reuses the chart,
    its table and series on later calls. Returns the chart node."""
    import vtk  # noqa: PLC0415

    slicer = _slicer()
    rows = {(row.level_type, row.level): row for row in result.rows}
    mode = _chart_mode(result)
    table = vtk.vtkTable()
    columns = {}
    for name, kind in (("level_index", vtk.vtkDoubleArray), ("level", vtk.vtkStringArray)):
        columns[name] = kind()
        columns[name].SetName(name)
    for level_type in ("spinal", "vertebral"):
        for part in ("rostral", "midpoint", "caudal"):
            columns[f"{level_type}_{part}_mm"] = vtk.vtkDoubleArray()
            columns[f"{level_type}_{part}_mm"].SetName(f"{level_type}_{part}_mm")
    for index, level in enumerate(_CHART_LEVELS, start=1):
        if ("spinal", level) not in rows and ("vertebral", level) not in rows:
            continue
        columns["level_index"].InsertNextValue(float(index))
        columns["level"].InsertNextValue(level)
        for level_type in ("spinal", "vertebral"):
            row = rows.get((level_type, level))
            values = _chart_values(row, mode) if row is not None else [float("nan")] * 3
            for part, value in zip(("rostral", "midpoint", "caudal"), values):
                columns[f"{level_type}_{part}_mm"].InsertNextValue(value)
    for column in columns.values():
        table.AddColumn(column)

    table_node = _role_node(scene, "vtkMRMLTableNode", "LevelChartTable", "RootletSeg level chart data")
    table_node.SetAndObserveTable(table)
    chart = _role_node(scene, "vtkMRMLPlotChartNode", "LevelChart", "RootletSeg levels")
    chart.SetTitle("Spinal and vertebral levels")
    chart.SetXAxisTitle("level (1 = C1 ... 9 = T1)")
    if mode == "S":
        y_title = "S coordinate, RAS (mm)"
    elif mode == "pmj" or result.distance_reference == "pmj":
        y_title = "distance below the PMJ along the cord (mm)"
    else:
        y_title = "distance below the reference S plane (mm)"
    chart.SetYAxisTitle(y_title)
    chart.SetLegendVisibility(True)

    styles = {
        "rostral": slicer.vtkMRMLPlotSeriesNode.MarkerStyleDiamond,
        "midpoint": slicer.vtkMRMLPlotSeriesNode.MarkerStyleCircle,
        "caudal": slicer.vtkMRMLPlotSeriesNode.MarkerStyleSquare,
    }
    colors = {"spinal": (0.0, 0.447, 0.698), "vertebral": (0.835, 0.369, 0.0)}
    for level_type in ("spinal", "vertebral"):
        for part in ("rostral", "midpoint", "caudal"):
            role = f"LevelChartSeries.{level_type}.{part}"
            series = _role_node(scene, "vtkMRMLPlotSeriesNode", role, f"{level_type} {part}")
            series.SetAndObserveTableNodeID(table_node.GetID())
            series.SetXColumnName("level_index")
            series.SetYColumnName(f"{level_type}_{part}_mm")
            series.SetLabelColumnName("level")
            series.SetPlotType(slicer.vtkMRMLPlotSeriesNode.PlotTypeScatter)
            solid = part == "midpoint"
            series.SetLineStyle(
                slicer.vtkMRMLPlotSeriesNode.LineStyleSolid if solid else slicer.vtkMRMLPlotSeriesNode.LineStyleNone
            )
            series.SetMarkerStyle(styles[part])
            series.SetColor(*colors[level_type])
            if not chart.HasPlotSeriesNodeID(series.GetID()):
                chart.AddAndObservePlotSeriesNodeID(series.GetID())
    return chart


def level_bound_markups(scene, result: LevelResult):
    """A locked point list "RootletSeg level bounds" with the level bounds as named points, world RAS mm: the same
    points, labels and descriptions as the exported level markups file (`export.level_markups`): spinal
    "C3 rostral", "C3 midpoint", "C3 caudal", vertebral "C3 vertebra rostral", ... Levels without positions are
    skipped. Reuses the node on later calls. Returns the node."""
    import vtk  # noqa: PLC0415

    from . import export  # noqa: PLC0415

    markups = export.level_markups(result, coordinate_system="RAS")["markups"][0]
    node = _role_node(scene, "vtkMRMLMarkupsFiducialNode", "LevelBounds", "RootletSeg level bounds")
    if node.GetDisplayNode() is None:
        node.CreateDefaultDisplayNodes()
    was_modifying = node.StartModify()
    try:
        node.SetLocked(False)
        node.RemoveAllControlPoints()
        for point in markups["controlPoints"]:
            index = node.AddControlPointWorld(vtk.vtkVector3d(*[float(v) for v in point["position"]]), point["label"])
            node.SetNthControlPointDescription(index, point.get("description", ""))
        node.SetLocked(True)
    finally:
        node.EndModify(was_modifying)
    return node


__all__ = [
    "CoreScene",
    "create_core_scene",
    "terminology_file",
    "terminology_entry_string",
    "register_terminology",
    "world_ijk_to_ras",
    "image_from_volume_node",
    "volume_node_from_image",
    "segment_level_value",
    "show_level_segments",
    "label_image_from_segments",
    "mask_image_from_segment",
    "disc_value_from_label",
    "disc_points_from_markups",
    "pmj_from_markups",
    "markups_from_disc_points",
    "next_disc_name",
    "update_level_table_node",
    "update_level_chart",
    "level_bound_markups",
]

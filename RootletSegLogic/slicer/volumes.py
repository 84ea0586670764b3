"""Scene set-up and volumes: the MRML side of RootletSeg that every other adapter builds on. No Qt.

Sets up a scene as Slicer does for the `slicer-core` wheel (`create_core_scene`), converts between volume nodes and
SimpleITK images in world space, and holds the geometry helpers (voxel -> world RAS matrices, parent transforms)
that `mrml_segments` and `mrml_levels` use. Segments and terminology are in `mrml_segments.py`; disc markups, the
level table, chart and level-bound markups in `mrml_levels.py`.

Everything here needs only MRML/VTK, so it runs in desktop Slicer and on the `slicer-core` wheel (tests). `slicer` and
`vtk` are imported inside the functions: importing this module never needs Slicer.

Frames and units:
- MRML world coordinates are RAS mm; SimpleITK images are LPS mm. A volume's "world" geometry is its IJK-to-RAS matrix
  with its parent transform applied (hardened). Linear parent transforms (rotation, translation, uniform or per-axis
  scaling along the voxel axes) are supported exactly; non-linear (warping) transforms and shears are refused with a
  UserError, because the result could not sit on the voxel grid the user sees without resampling.
- Markups positions are read and written in world RAS (the markups node's parent transform applied).

The public API:

    create_core_scene()                                   -> CoreScene   (slicer-core only: scene + logics)
    image_from_volume_node(volume_node)                   -> sitk.Image  (world space, LPS, exact values)
    volume_node_from_image(scene, image, name, labelmap)  -> volume node
    world_ijk_to_ras(volume_node)                         -> 4x4 voxel -> world RAS matrix
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from RootletSegLogic.errors import UserError

# ------------------------------------------------------------------------------------------------ constants
_LPS_FLIP = np.diag([-1.0, -1.0, 1.0])  # RAS <-> LPS for directions and points


def import_slicer():
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
        slicer = import_slicer()
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
        from RootletSegLogic.slicer.terminology import register_terminology

        register_terminology(self.terminology_logic)


def create_core_scene() -> CoreScene:
    """A new scene with the logics Slicer would have created (see `CoreScene`); keep the returned object alive."""
    return CoreScene()


# ------------------------------------------------------------------------------------------ matrices and geometry
def matrix_to_numpy(vtk_matrix) -> np.ndarray:
    return np.array([[vtk_matrix.GetElement(r, c) for c in range(4)] for r in range(4)], dtype=float)


def numpy_to_matrix(array: np.ndarray):
    import vtk  # noqa: PLC0415

    matrix = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            matrix.SetElement(r, c, float(array[r, c]))
    return matrix


def node_to_world(node, what: str) -> np.ndarray:
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
    return matrix_to_numpy(matrix)


def _local_ijk_to_ras(volume_node) -> np.ndarray:
    import vtk  # noqa: PLC0415

    matrix = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(matrix)
    return matrix_to_numpy(matrix)


def world_ijk_to_ras(volume_node) -> np.ndarray:
    """4x4 voxel (i, j, k) -> world RAS mm matrix of a volume node, its parent transform applied (linear only)."""
    return node_to_world(volume_node, "volume") @ _local_ijk_to_ras(volume_node)


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


def reference_world_image(volume_node) -> sitk.Image:
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
    slicer = import_slicer()
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
    node.SetIJKToRASMatrix(numpy_to_matrix(_ijk_to_ras_from_image(image)))
    node.SetAndObserveImageData(image_data)
    node.CreateDefaultDisplayNodes()
    display = node.GetDisplayNode()
    if labelmap and display is not None and scene.GetNodeByID(display.GetColorNodeID() or "") is None:
        display.SetAndObserveColorNodeID("vtkMRMLColorTableNodeLabels")
    return node


__all__ = [
    "CoreScene",
    "create_core_scene",
    "world_ijk_to_ras",
    "image_from_volume_node",
    "volume_node_from_image",
]

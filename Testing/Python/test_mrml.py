"""RootletSegLogic.slicer (volumes, segments, level nodes, terminology) on a real MRML scene (the `slicer-core` wheel:
real vtkMRMLScene, nodes and logics, no Qt). slicer-core and slicerio are test dependencies: nothing here skips.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import slicer  # slicer-core, a test dependency (`make test` installs it): these tests must run, never skip
import slicerio  # a test dependency: an independent reader of the .seg.nrrd files

# PyPI also has an unrelated package named `slicer`: say so instead of failing obscurely below
assert hasattr(slicer, "vtkMRMLScene"), "the installed `slicer` module is not 3D Slicer's MRML: install slicer-core"

import vtk  # noqa: E402  (comes with slicer-core)

from RootletSegLogic.errors import UserError  # noqa: E402
from RootletSegLogic.levels.colors import LEVEL_COLORS  # noqa: E402
from RootletSegLogic.levels.types import DISC_NAMES, DiscPoint  # noqa: E402
from RootletSegLogic.slicer.level_nodes import (
    disc_points_from_markups,
    disc_value_from_label,
    level_bound_markups,
    markups_from_disc_points,
    next_disc_name,
    pmj_from_markups,
    update_level_chart,
    update_level_table_node,
)
from RootletSegLogic.slicer.segments import (
    LEVEL_TAG,
    SOURCE_TAG,
    _get_tag,
    label_image_from_segments,
    mask_image_from_segment,
    show_level_segments,
)
from RootletSegLogic.levels.terminology import (
    TERMINOLOGY_FILE,
    terminology_entry_string,
    terminology_file,
)
from RootletSegLogic.slicer.terminology import register_terminology
from RootletSegLogic.slicer.volumes import (
    create_core_scene,
    image_from_volume_node,
    volume_node_from_image,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------------------------------ helpers
@pytest.fixture()
def core():
    return create_core_scene()


def _rotation(axis, degrees):
    axis = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    angle = math.radians(degrees)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k


def _vtk_matrix(array):
    matrix = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            matrix.SetElement(r, c, float(array[r, c]))
    return matrix


def _numpy(matrix):
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def _linear_transform_node(scene, matrix4):
    node = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "T")
    node.SetMatrixTransformToParent(_vtk_matrix(matrix4))
    return node


def _rigid(axis=(1, 2, 3), degrees=17.0, translation=(5.5, -12.25, 30.0)):
    m = np.eye(4)
    m[:3, :3] = _rotation(axis, degrees)
    m[:3, 3] = translation
    return m


def _volume_node(scene, array_kji, ijk_to_ras, name="vol"):
    from vtk.util import numpy_support

    image_data = vtk.vtkImageData()
    image_data.SetDimensions(array_kji.shape[2], array_kji.shape[1], array_kji.shape[0])
    image_data.GetPointData().SetScalars(numpy_support.numpy_to_vtk(np.ascontiguousarray(array_kji).ravel(), deep=True))
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    node.SetIJKToRASMatrix(_vtk_matrix(ijk_to_ras))
    node.SetAndObserveImageData(image_data)
    return node


def _world_ras_of_node_voxels(node, ijk):
    """World RAS of voxel indices as MRML computes it: parent transform(s) applied to the IJK-to-RAS matrix."""
    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    to_world = np.eye(4)
    if node.GetParentTransformNode() is not None:
        w = vtk.vtkMatrix4x4()
        node.GetParentTransformNode().GetMatrixTransformToWorld(w)
        to_world = _numpy(w)
    hom = np.c_[np.asarray(ijk, dtype=float), np.ones(len(ijk))]
    return (to_world @ _numpy(m) @ hom.T).T[:, :3]


def _world_ras_of_image_voxels(image, ijk):
    lps = np.array([image.TransformContinuousIndexToPhysicalPoint([float(v) for v in p]) for p in ijk])
    lps[:, :2] *= -1
    return lps


def _grid_points(size):
    corners = [(i, j, k) for i in (0, size[0] - 1) for j in (0, size[1] - 1) for k in (0, size[2] - 1)]
    rng = np.random.default_rng(0)
    inner = rng.integers(0, size, size=(20, 3))
    return np.vstack([corners, inner])


def _oblique_ijk_to_ras(spacing=(0.8, 1.3, 2.1), origin=(-40.5, 22.25, 101.0)):
    m = np.eye(4)
    m[:3, :3] = _rotation((0.3, -1.0, 0.6), 23.0) @ np.diag(spacing)
    m[:3, 3] = origin
    return m


# ------------------------------------------------------------------------------------------------ scene set-up
def test_module_imports_without_slicer_or_vtk():
    """The rest of the core imports the Slicer adapters (volumes, segments, level nodes, terminology) without Slicer:
    slicer/vtk are imported inside the functions."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['slicer'] = None; sys.modules['vtk'] = None; sys.modules['vtkmodules'] = None\n"
        "from RootletSegLogic.slicer import volumes, segments\n"
        "from RootletSegLogic.slicer.level_nodes import disc_value_from_label\n"
        "from RootletSegLogic.slicer.terminology import terminology_entry_string\n"
        "print(terminology_entry_string('rootlets'))\n"
        "print(disc_value_from_label('C2/C3'))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(REPO_ROOT), timeout=120)
    assert done.returncode == 0, done.stderr
    assert "SCT^69733000^Spinal nerve root" in done.stdout and done.stdout.split()[-1] == "3"


def test_core_scene_has_the_logics_and_converters(core):
    assert core.scene.GetNodeByID("vtkMRMLColorTableNodeLabels") is not None  # default colour nodes
    for name in ("Colors", "Volumes", "Segmentations", "Markups", "Tables", "Plots", "Terminologies"):
        assert core.app_logic.GetModuleLogic(name) is not None, name
    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    assert "Binary labelmap to closed surface" in {rule.GetName() for rule in factory.GetConverterRules()}


def test_terminology_entry_matches_slicers_own_serialization(core):
    logic = core.terminology_logic
    for kind, code, meaning in (("rootlets", "69733000", "Spinal nerve root"), ("cord", "2748008", "Spinal cord")):
        text = terminology_entry_string(kind)
        entry = slicer.vtkSlicerTerminologyEntry()
        assert logic.DeserializeTerminologyEntry(text, entry)
        assert entry.GetTerminologyContextName() == "Segmentation category and type - RootletSeg"
        assert entry.GetCategoryObject().GetCodeValue() == "123037004"
        assert entry.GetTypeObject().GetCodeValue() == code
        assert entry.GetTypeObject().GetCodeMeaning() == meaning
        assert entry.GetTypeObject().GetCodingSchemeDesignator() == "SCT"
        assert logic.SerializeTerminologyEntry(entry) == text
    assert terminology_file().is_file() and terminology_file() == TERMINOLOGY_FILE
    assert register_terminology(logic) == "Segmentation category and type - RootletSeg"  # loading twice is harmless


# --------------------------------------------------------------------------------------------- volume round trip
@pytest.mark.parametrize("dtype", [np.int16, np.float32, np.uint8])
def test_oblique_volume_under_a_transform_round_trips_on_the_exact_grid(core, dtype):
    scene = core.scene
    rng = np.random.default_rng(1)
    array = (rng.normal(100, 40, size=(6, 9, 11))).astype(dtype)  # (k, j, i)
    ijk_to_ras = _oblique_ijk_to_ras()
    node = _volume_node(scene, array, ijk_to_ras)
    transform = _linear_transform_node(scene, _rigid())
    node.SetAndObserveTransformNodeID(transform.GetID())

    image = image_from_volume_node(node)

    # the user's node is untouched (transform not hardened on it)
    assert node.GetTransformNodeID() == transform.GetID()
    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    np.testing.assert_allclose(_numpy(m), ijk_to_ras, atol=1e-12)
    # exact values and type, same voxel positions in world space
    assert sitk.GetArrayViewFromImage(image).dtype == dtype
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), array)
    ijk = _grid_points(image.GetSize())
    np.testing.assert_allclose(
        _world_ras_of_image_voxels(image, ijk), _world_ras_of_node_voxels(node, ijk), atol=1e-6
    )
    assert image.GetSize() == (11, 9, 6)

    # and back: a node without transform on the same world grid, values exact
    back = volume_node_from_image(scene, image, "back")
    assert back.GetParentTransformNode() is None
    np.testing.assert_allclose(_world_ras_of_node_voxels(back, ijk), _world_ras_of_node_voxels(node, ijk), atol=1e-6)
    again = image_from_volume_node(back)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(again), array)
    assert sitk.GetArrayViewFromImage(again).dtype == dtype
    np.testing.assert_allclose(again.GetOrigin(), image.GetOrigin(), atol=1e-9)
    np.testing.assert_allclose(again.GetSpacing(), image.GetSpacing(), atol=1e-9)
    np.testing.assert_allclose(again.GetDirection(), image.GetDirection(), atol=1e-9)


def test_labelmap_node_from_image_keeps_values(core):
    image = sitk.GetImageFromArray(np.arange(24, dtype=np.uint8).reshape(2, 3, 4) % 10)
    image.SetSpacing((0.5, 0.6, 3.0))
    image.SetOrigin((10.0, -4.0, 2.0))
    node = volume_node_from_image(core.scene, image, "labels", labelmap=True)
    assert node.IsA("vtkMRMLLabelMapVolumeNode")
    assert core.scene.GetNodeByID(node.GetDisplayNode().GetColorNodeID()) is not None
    back = image_from_volume_node(node)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(image))
    np.testing.assert_allclose(back.GetOrigin(), image.GetOrigin(), atol=1e-9)


def test_scaled_transform_changes_spacing(core):
    node = _volume_node(core.scene, np.zeros((3, 4, 5), np.int16), _oblique_ijk_to_ras())
    scale = np.diag([2.0, 2.0, 2.0, 1.0])
    node.SetAndObserveTransformNodeID(_linear_transform_node(core.scene, scale).GetID())
    image = image_from_volume_node(node)
    np.testing.assert_allclose(image.GetSpacing(), (1.6, 2.6, 4.2), atol=1e-9)


def test_non_linear_or_shearing_transforms_are_refused_clearly(core):
    scene = core.scene
    node = _volume_node(scene, np.zeros((3, 4, 5), np.int16), _oblique_ijk_to_ras(), name="T2 axial")
    # thin-plate spline: non-linear
    source, target = vtk.vtkPoints(), vtk.vtkPoints()
    for p, q in (((0, 0, 0), (0, 0, 0)), ((50, 0, 0), (52, 1, 0)), ((0, 50, 0), (0, 50, 3)), ((0, 0, 50), (1, 0, 50)),
                 ((30, 30, 30), (25, 33, 30))):
        source.InsertNextPoint(p)
        target.InsertNextPoint(q)
    tps = vtk.vtkThinPlateSplineTransform()
    tps.SetSourceLandmarks(source)
    tps.SetTargetLandmarks(target)
    tps.SetBasisToR()
    warp = scene.AddNewNodeByClass("vtkMRMLTransformNode", "warp")
    warp.SetAndObserveTransformToParent(tps)
    node.SetAndObserveTransformNodeID(warp.GetID())
    with pytest.raises(UserError, match="non-linear.*T2 axial|T2 axial.*non-linear"):
        image_from_volume_node(node)

    shear = np.eye(4)
    shear[0, 1] = 0.3
    node.SetAndObserveTransformNodeID(_linear_transform_node(scene, shear).GetID())
    with pytest.raises(UserError, match="sheared"):
        image_from_volume_node(node)


def test_vector_volume_is_refused(core):
    node = core.scene.AddNewNodeByClass("vtkMRMLVectorVolumeNode", "rgb")
    image_data = vtk.vtkImageData()
    image_data.SetDimensions(2, 2, 2)
    image_data.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 3)
    node.SetAndObserveImageData(image_data)
    with pytest.raises(UserError, match="values per voxel"):
        image_from_volume_node(node)


# ------------------------------------------------------------------------------------------------ segments
def _real_data(core, sct_data, transform=None):
    t2 = sitk.ReadImage(str(sct_data / "t2" / "t2.nii.gz"))
    labels = sitk.ReadImage(str(sct_data / "t2" / "t2_seg-deepseg_rootlets.nii.gz"))
    volume = volume_node_from_image(core.scene, t2, "t2")
    if transform is not None:
        volume.SetAndObserveTransformNodeID(_linear_transform_node(core.scene, transform).GetID())
    world = image_from_volume_node(volume)  # the grid the core sees (and segments on)
    labels_world = sitk.GetImageFromArray(sitk.GetArrayFromImage(labels))
    labels_world.CopyInformation(world)
    return volume, labels_world


def _our_segments(segmentation_node):
    segmentation = segmentation_node.GetSegmentation()
    return {
        segmentation.GetSegment(i).GetName(): segmentation.GetSegment(i)
        for i in segmentation.GetSegmentIDs()
        if _get_tag(segmentation.GetSegment(i), SOURCE_TAG) == "RootletSeg"
    }


@pytest.mark.parametrize("transformed", [False, True], ids=["plain", "under-transform"])
def test_label_map_becomes_level_segments_and_back_exactly(core, sct_data, transformed):
    volume, labels = _real_data(core, sct_data, _rigid() if transformed else None)
    assert "".join(sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(
        sitk.ReadImage(str(sct_data / "t2" / "t2.nii.gz")).GetDirection())) == "PSR"
    segmentation_node = core.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Rootlets")

    created = show_level_segments(segmentation_node, labels, volume)

    present = sorted(int(v) for v in np.unique(sitk.GetArrayViewFromImage(labels)) if v)
    assert present == [3, 4, 5, 6]
    assert sorted(created) == present
    ours = _our_segments(segmentation_node)
    assert sorted(ours) == ["C3 rootlets", "C4 rootlets", "C5 rootlets", "C6 rootlets"]
    colors = set()
    for value, segment_id in created.items():
        segment = segmentation_node.GetSegmentation().GetSegment(segment_id)
        assert segment.GetName() == f"C{value} rootlets"
        np.testing.assert_allclose(segment.GetColor(), LEVEL_COLORS[value])
        colors.add(tuple(segment.GetColor()))
        assert segment.GetTerminology() == terminology_entry_string("rootlets")
        assert _get_tag(segment, "TerminologyEntry") == terminology_entry_string("rootlets")
        assert _get_tag(segment, LEVEL_TAG) == str(value)
        surface = segmentation_node.GetClosedSurfaceInternalRepresentation(segment_id)
        assert surface is not None and surface.GetNumberOfPoints() > 0 and surface.GetNumberOfCells() > 0
    assert len(colors) == len(created)
    assert segmentation_node.GetDisplayNode() is not None
    if transformed:
        assert segmentation_node.GetTransformNodeID() == volume.GetTransformNodeID()

    back = label_image_from_segments(segmentation_node, volume)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(labels))
    np.testing.assert_allclose(back.GetOrigin(), labels.GetOrigin(), atol=1e-6)
    np.testing.assert_allclose(back.GetDirection(), labels.GetDirection(), atol=1e-9)
    np.testing.assert_allclose(back.GetSpacing(), labels.GetSpacing(), atol=1e-9)


def test_segments_in_a_segmentation_under_another_transform_stay_in_place(core, sct_data):
    volume, labels = _real_data(core, sct_data, _rigid())
    segmentation_node = core.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Rootlets")
    segmentation_node.GetSegmentation().AddEmptySegment("user", "My notes")
    other = _linear_transform_node(core.scene, _rigid((0, 0, 1), -30.0, (1.0, 2.0, 3.0)))
    segmentation_node.SetAndObserveTransformNodeID(other.GetID())
    show_level_segments(segmentation_node, labels, volume, closed_surfaces=False)
    assert segmentation_node.GetTransformNodeID() == other.GetID()  # a node with user content is not moved
    back = label_image_from_segments(segmentation_node, volume)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(labels))


def _add_user_segment(segmentation_node, volume, mask_kji, name):
    """A user's segment painted on the volume's grid (what the Segment Editor would make)."""
    from vtk.util import numpy_support

    oriented = slicer.vtkOrientedImageData()
    oriented.SetExtent(0, mask_kji.shape[2] - 1, 0, mask_kji.shape[1] - 1, 0, mask_kji.shape[0] - 1)
    oriented.GetPointData().SetScalars(
        numpy_support.numpy_to_vtk(np.ascontiguousarray(mask_kji, dtype=np.uint8).ravel(), deep=True)
    )
    m = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(m)
    oriented.SetImageToWorldMatrix(m)
    segment_id = segmentation_node.GetSegmentation().AddEmptySegment("", name)
    slicer.vtkSlicerSegmentationsModuleLogic.SetBinaryLabelmapToSegment(
        oriented, segmentation_node, segment_id, slicer.vtkSlicerSegmentationsModuleLogic.MODE_REPLACE
    )
    return segment_id


def test_rerun_replaces_only_our_segments_and_keeps_the_users(core, sct_data):
    volume, labels = _real_data(core, sct_data)
    segmentation_node = core.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Rootlets")
    show_level_segments(segmentation_node, labels, volume, closed_surfaces=False)
    array = sitk.GetArrayFromImage(labels)
    cord = np.zeros(array.shape, np.uint8)
    cord[:, 20:30, 25:35] = 1
    cord_id = _add_user_segment(segmentation_node, volume, cord, "Spinal cord")

    # second run: C6 gone, C4 relabelled C7
    array2 = array.copy()
    array2[array2 == 6] = 0
    array2[array2 == 4] = 7
    labels2 = sitk.GetImageFromArray(array2)
    labels2.CopyInformation(labels)
    show_level_segments(segmentation_node, labels2, volume, closed_surfaces=False)

    segmentation = segmentation_node.GetSegmentation()
    names = [segmentation.GetSegment(i).GetName() for i in segmentation.GetSegmentIDs()]
    assert sorted(names) == ["C3 rootlets", "C5 rootlets", "C7 rootlets", "Spinal cord"]
    assert segmentation.GetSegment(cord_id).GetName() == "Spinal cord"
    np.testing.assert_array_equal(
        sitk.GetArrayFromImage(mask_image_from_segment(segmentation_node, cord_id, volume)), cord
    )
    back = label_image_from_segments(segmentation_node, volume)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), array2)


def test_user_segments_named_like_levels_are_read_back(core, sct_data):
    volume, labels = _real_data(core, sct_data)
    segmentation_node = core.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Rootlets")
    show_level_segments(segmentation_node, labels, volume, closed_surfaces=False)
    extra = np.zeros(sitk.GetArrayViewFromImage(labels).shape, np.uint8)
    extra[5:8, 40:42, 10:12] = 1  # a T1 level drawn by hand, no RootletSeg tags
    _add_user_segment(segmentation_node, volume, extra, "T1 rootlets")
    expected = sitk.GetArrayFromImage(labels)
    expected[extra > 0] = 9
    back = label_image_from_segments(segmentation_node, volume)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), expected)

    # the Segment Editor keeps segments in shared labelmap layers (one layer, a label value per segment)
    segmentation = segmentation_node.GetSegmentation()
    segmentation.CollapseBinaryLabelmaps(False)
    assert segmentation.GetNumberOfLayers() < segmentation.GetNumberOfSegments()
    back = label_image_from_segments(segmentation_node, volume)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), expected)


def test_labels_outside_c2_t1_still_round_trip(core, sct_data):
    volume, labels = _real_data(core, sct_data)
    array = sitk.GetArrayFromImage(labels)
    array[array == 6] = 12
    odd = sitk.GetImageFromArray(array)
    odd.CopyInformation(labels)
    segmentation_node = core.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Rootlets")
    created = show_level_segments(segmentation_node, odd, volume, closed_surfaces=False)
    assert segmentation_node.GetSegmentation().GetSegment(created[12]).GetName() == "label 12 rootlets"
    back = label_image_from_segments(segmentation_node, volume)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), array)


def test_no_level_segments_and_wrong_grid_are_clear_errors(core, sct_data):
    volume, labels = _real_data(core, sct_data)
    segmentation_node = core.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Empty")
    with pytest.raises(UserError, match="no rootlet level segments"):
        label_image_from_segments(segmentation_node, volume)
    with pytest.raises(UserError, match="has no segment"):
        mask_image_from_segment(segmentation_node, "nope", volume)
    small = sitk.Image(5, 5, 5, sitk.sitkUInt8)
    with pytest.raises(UserError, match="not on the grid"):
        show_level_segments(segmentation_node, small, volume)


# ------------------------------------------------------------------------------------------------ discs
def test_disc_points_round_trip_through_markups_under_a_transform(core):
    discs = [DiscPoint(3, (1.0, -20.5, 40.25)), DiscPoint(4, (1.5, -21.0, 22.0)), DiscPoint(9, (2.0, -15.0, -60.0))]
    pmj = (0.5, -10.0, 80.0)
    node = core.scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "Discs")
    transform = _linear_transform_node(core.scene, _rigid())
    node.SetAndObserveTransformNodeID(transform.GetID())

    assert markups_from_disc_points(node, discs, pmj=pmj) is node
    labels = [node.GetNthControlPointLabel(i) for i in range(node.GetNumberOfControlPoints())]
    assert labels == ["C2/C3", "C3/C4", "T1/T2", "PMJ"]
    # stored in the node's local frame so that world positions are the given RAS points
    local = [0.0, 0.0, 0.0]
    node.GetNthControlPointPosition(0, local)
    np.testing.assert_allclose(
        (np.linalg.inv(_rigid()) @ np.r_[discs[0].position_ras, 1.0])[:3], local, atol=1e-9
    )

    back = disc_points_from_markups(node)
    assert [d.value for d in back] == [3, 4, 9, 50]
    for got, want in zip(back, discs + [DiscPoint(50, pmj)]):
        np.testing.assert_allclose(got.position_ras, want.position_ras, atol=1e-9)
    np.testing.assert_allclose(pmj_from_markups(node), pmj, atol=1e-9)

    # moving the transform moves the discs in world space
    shifted = _rigid(translation=(15.5, -2.25, 40.0))
    transform.SetMatrixTransformToParent(_vtk_matrix(shifted))
    expected = (shifted @ np.linalg.inv(_rigid()) @ np.r_[discs[0].position_ras, 1.0])[:3]
    np.testing.assert_allclose(disc_points_from_markups(node)[0].position_ras, expected, atol=1e-9)


def test_markups_from_disc_points_on_a_scene_makes_a_discs_node(core):
    node = markups_from_disc_points(core.scene, [DiscPoint(5, (0.0, 0.0, 1.0))])
    assert node.GetName() == "Discs" and node.GetScene() is core.scene
    assert node.GetNthControlPointLabel(0) == "C4/C5"


def test_disc_labels_in_several_spellings_and_bad_labels(core):
    node = core.scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "Discs")
    for label, z in (("disc 3", 30.0), ("4", 20.0), ("c4-c5", 10.0), (" C5/C6 ", 0.0), ("pmj", 50.0)):
        node.AddControlPointWorld(vtk.vtkVector3d(0.0, 0.0, z), label)
    assert [d.value for d in disc_points_from_markups(node)] == [3, 4, 5, 6, 50]
    assert disc_value_from_label("C7/T1") == 8 and disc_value_from_label("T1-T2") == 9
    assert disc_value_from_label("F-1") is None and disc_value_from_label("disc 77") is None
    # the panel reads a label as `rootletseg levels --disc-points` reads it in a .mrk.json file
    from RootletSegLogic.levels.discs import disc_value

    for spelling in ("C2/3", "C2_C3", "top of C1", "disc 3.0", "PMG", "C7T1"):
        assert disc_value_from_label(spelling) == disc_value(spelling), spelling
    node.AddControlPointWorld(vtk.vtkVector3d(0.0, 0.0, -5.0), "F-1")
    with pytest.raises(UserError, match="'F-1'.*not a disc name"):
        disc_points_from_markups(node)
    node.SetNthControlPointLabel(node.GetNumberOfControlPoints() - 1, "C2/C3")
    with pytest.raises(UserError, match="C2/C3 is placed twice"):
        disc_points_from_markups(node)


def test_next_disc_name_follows_the_guided_order(core):
    node = core.scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "Discs")
    assert next_disc_name(node) == "C2/C3"
    node.AddControlPointWorld(vtk.vtkVector3d(0, 0, 0), "C2/C3")
    node.AddControlPointWorld(vtk.vtkVector3d(0, 0, -10), "5")  # C4/C5 placed out of order
    node.AddControlPointWorld(vtk.vtkVector3d(0, 0, 10), "PMJ")
    assert next_disc_name(node) == "C3/C4"
    node.AddControlPointWorld(vtk.vtkVector3d(0, 0, -5), next_disc_name(node))
    assert next_disc_name(node) == "C5/C6"
    for value in (6, 7, 8, 9):
        node.AddControlPointWorld(vtk.vtkVector3d(0, 0, -10.0 * value), DISC_NAMES[value])
    assert next_disc_name(node) == ""


# ------------------------------------------------------------------------------------------------ table, chart
def _result():
    from level_results import synthetic_result

    return synthetic_result(with_pmj=True)


def test_level_table_node_holds_the_same_numbers_as_the_levels_tsv(core):
    from RootletSegLogic.levels.tables import (
        DECIMALS,
        LEVEL_COLUMNS,
        level_table_rows,
        level_table_tsv,
    )

    result = _result()
    rows = level_table_rows(result)
    node = core.scene.AddNewNodeByClass("vtkMRMLTableNode", "Levels")
    assert update_level_table_node(node, result) is node
    table = node.GetTable()
    assert [table.GetColumnName(c) for c in range(table.GetNumberOfColumns())] == list(LEVEL_COLUMNS)
    assert table.GetNumberOfRows() == len(rows)
    assert table.GetColumnByName("label_value").IsA("vtkIntArray")
    assert table.GetColumnByName("n_voxels").IsA("vtkIntArray")
    assert table.GetColumnByName("height_mm").IsA("vtkDoubleArray")
    assert table.GetColumnByName("level").IsA("vtkStringArray")
    assert node.GetColumnUnitLabel("height_mm") == "mm"
    # headers come from column titles (SetUseColumnNameAsColumnHeader is deprecated in Slicer 5.10 and warns)
    assert node.GetUseColumnTitleAsColumnHeader()
    assert all(node.GetColumnTitle(name) == name for name in LEVEL_COLUMNS)
    for r, row in enumerate(rows):
        for name, want in row.items():
            column = table.GetColumnByName(name)
            got = column.GetValue(r)
            if isinstance(want, float):
                assert got == want, (r, name)
            elif want is None:
                assert math.isnan(got), (r, name)
            else:
                assert got == want, (r, name)
    # the table text equals the TSV's cells (3 decimals) for every numeric cell
    tsv_lines = level_table_tsv(result).splitlines()
    for r, line in enumerate(tsv_lines[1:]):
        for c, cell in enumerate(line.split("\t")):
            value = table.GetColumn(c).GetValue(r)
            if isinstance(value, float):
                assert (cell == "" and math.isnan(value)) or cell == f"{value:.{DECIMALS}f}"

    # updating again keeps the node, replaces the content
    fewer = _result()
    fewer.rows = fewer.rows[:3]
    fewer.overlaps = [o for o in fewer.overlaps if o.spinal_level in ("C2", "C3", "C4")]
    update_level_table_node(node, fewer)
    assert node.GetTable().GetNumberOfRows() == 3


def test_gui_flow_on_the_phantom_gives_the_same_levels_as_the_files(core):
    """Phantom -> volume node -> level segments + cord segment + disc markups -> back to the core -> compute_levels:
    the table node holds exactly the numbers `rootletseg levels` computes from the phantom's own images."""
    from RootletSegLogic.levels.method import compute_levels
    from RootletSegLogic.levels.tables import level_table_rows
    from RootletSegLogic.synthetic.phantom import make_phantom

    case = make_phantom(seed=0, orientation="PSR")
    discs = [DiscPoint(int(v), tuple(d["position_ras"])) for v, d in case.truth["discs"].items()]
    pmj = tuple(case.truth["pmj_ras"])
    expected = compute_levels(case.rootlets, case.cord, discs, pmj)

    scene = core.scene
    volume = volume_node_from_image(scene, case.image, "phantom")
    segmentation_node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Rootlets")
    show_level_segments(segmentation_node, case.rootlets, volume, closed_surfaces=False)
    cord_id = _add_user_segment(segmentation_node, volume, sitk.GetArrayFromImage(case.cord) > 0, "Spinal cord")
    markups = markups_from_disc_points(scene, discs, pmj=pmj)

    rootlets = label_image_from_segments(segmentation_node, volume)
    cord = mask_image_from_segment(segmentation_node, cord_id, volume)
    landmarks = disc_points_from_markups(markups)
    result = compute_levels(rootlets, cord, landmarks)

    assert level_table_rows(result) == level_table_rows(expected)
    node = update_level_table_node(scene.AddNewNodeByClass("vtkMRMLTableNode", "Levels"), result)
    rows = level_table_rows(expected)
    table = node.GetTable()
    for name in ("rostral_S_mm", "caudal_S_mm", "rostral_pmj_mm", "caudal_pmj_mm", "height_mm", "n_voxels"):
        column = table.GetColumnByName(name)
        assert [column.GetValue(r) for r in range(len(rows))] == [row[name] for row in rows], name

    chart = update_level_chart(scene, result)
    chart_table = chart.GetNthPlotSeriesNode(0).GetTableNode().GetTable()
    chart_levels = [chart_table.GetColumnByName("level").GetValue(r) for r in range(chart_table.GetNumberOfRows())]
    midpoints = chart_table.GetColumnByName("spinal_midpoint_mm")
    for row in result.spinal():
        assert midpoints.GetValue(chart_levels.index(row.level)) == row.midpoint_distance_mm
    assert "PMJ" in chart.GetYAxisTitle()


def test_level_chart_has_spinal_and_vertebral_series_and_is_reused(core):
    result = _result()
    chart = update_level_chart(core.scene, result)
    assert chart.IsA("vtkMRMLPlotChartNode")
    assert chart.GetNumberOfPlotSeriesNodes() == 6
    names = set()
    for index in range(chart.GetNumberOfPlotSeriesNodes()):
        series = chart.GetNthPlotSeriesNode(index)
        table = series.GetTableNode().GetTable()
        y = table.GetColumnByName(series.GetYColumnName())
        x = table.GetColumnByName(series.GetXColumnName())
        assert y is not None and x is not None and table.GetNumberOfRows() > 0
        names.add(series.GetYColumnName())
    assert names == {f"{t}_{p}_mm" for t in ("spinal", "vertebral") for p in ("rostral", "midpoint", "caudal")}
    table = chart.GetNthPlotSeriesNode(0).GetTableNode().GetTable()
    levels = [table.GetColumnByName("level").GetValue(r) for r in range(table.GetNumberOfRows())]
    assert levels == ["C2", "C3", "C4", "C5", "C6", "C7", "C8", "T1"]
    spinal_mid = table.GetColumnByName("spinal_midpoint_mm")
    c3 = next(r for r in result.rows if r.level_type == "spinal" and r.level == "C3")
    assert spinal_mid.GetValue(1) == c3.midpoint_pmj_mm
    assert math.isnan(spinal_mid.GetValue(levels.index("T1")))  # no spinal T1 in this result
    assert "PMJ" in chart.GetYAxisTitle()

    again = update_level_chart(core.scene, result)
    assert again is chart or again.GetID() == chart.GetID()
    assert core.scene.GetNumberOfNodesByClass("vtkMRMLPlotChartNode") == 1
    assert core.scene.GetNumberOfNodesByClass("vtkMRMLPlotSeriesNode") == 6


def test_level_bound_markups_match_the_exported_markups(core):
    from RootletSegLogic.levels.planning import level_markups

    result = _result()
    node = level_bound_markups(core.scene, result)
    exported = level_markups(result, coordinate_system="RAS")["markups"][0]["controlPoints"]
    assert node.GetNumberOfControlPoints() == len(exported) > 0
    for index, point in enumerate(exported):
        assert node.GetNthControlPointLabel(index) == point["label"]
        position = [0.0, 0.0, 0.0]
        node.GetNthControlPointPositionWorld(index, position)
        np.testing.assert_allclose(position, point["position"], atol=1e-9)
    assert node.GetNthControlPointLabel(0) == "C2 rostral"
    level_bound_markups(core.scene, result)
    assert core.scene.GetNumberOfNodesByClass("vtkMRMLMarkupsFiducialNode") == 1


def test_label_map_read_back_from_nifti_fits_an_oblique_transformed_volume(core, tmp_path):
    """The GUI's path: the world-space volume is written to NIfTI for the CLI, the CLI's label map is read back.
    NIfTI stores the geometry in single precision: the segments still land exactly on the volume's grid."""
    from RootletSegLogic.images.atomic import write_image
    from RootletSegLogic.images.reading import read_label_map

    rng = np.random.default_rng(3)
    node = _volume_node(core.scene, rng.normal(size=(7, 8, 9)).astype(np.float32), _oblique_ijk_to_ras())
    node.SetAndObserveTransformNodeID(_linear_transform_node(core.scene, _rigid()).GetID())
    world = image_from_volume_node(node)
    labels = sitk.GetImageFromArray(rng.integers(0, 10, size=(7, 8, 9)).astype(np.uint8))
    labels.CopyInformation(world)
    write_image(labels, tmp_path / "seg.nii.gz")
    from_file = read_label_map(tmp_path / "seg.nii.gz")
    assert from_file.GetOrigin() != world.GetOrigin() or from_file.GetDirection() != world.GetDirection()

    segmentation_node = core.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Rootlets")
    show_level_segments(segmentation_node, from_file, node, closed_surfaces=False)
    back = label_image_from_segments(segmentation_node, node)
    # every value, label 1 ("label 1 rootlets") included, comes back by its RootletSeg tag
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(labels))


@pytest.mark.parametrize("segmentation_transform", ["same", "other", "none"])
def test_slicers_own_export_gives_identical_voxels_on_an_oblique_transformed_volume(core, segmentation_transform):
    """Segments -> label map is Slicer's ExportSegmentsToLabelmapNode (with the reference grid expressed in the
    segmentation's frame): on an oblique volume (oblique IJKToRAS) under a rotation + translation, every voxel comes
    back, whether the segmentation shares the volume's transform, has another one, or none. No helper node is left."""
    rng = np.random.default_rng(11)
    node = _volume_node(core.scene, rng.normal(size=(9, 10, 11)).astype(np.float32), _oblique_ijk_to_ras())
    node.SetAndObserveTransformNodeID(_linear_transform_node(core.scene, _rigid()).GetID())
    labels = sitk.GetImageFromArray(rng.choice([0, 0, 0, 2, 3, 5, 9], size=(9, 10, 11)).astype(np.uint8))
    labels.CopyInformation(image_from_volume_node(node))
    segmentation_node = core.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Rootlets")
    if segmentation_transform != "same":
        segmentation_node.GetSegmentation().AddEmptySegment("user", "My notes")  # keeps its own frame
    if segmentation_transform == "other":
        other = _linear_transform_node(core.scene, _rigid((2, -1, 1), 41.0, (-3.0, 7.5, 1.0)))
        segmentation_node.SetAndObserveTransformNodeID(other.GetID())
    nodes_before = core.scene.GetNumberOfNodes()
    show_level_segments(segmentation_node, labels, node, closed_surfaces=False)
    nodes_after_show = core.scene.GetNumberOfNodes()

    back = label_image_from_segments(segmentation_node, node)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(labels))
    segment_id = segmentation_node.GetSegmentation().GetSegmentIdBySegmentName("C5 rootlets")
    mask = mask_image_from_segment(segmentation_node, segment_id, node)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(mask), sitk.GetArrayFromImage(labels) == 5)
    assert core.scene.GetNumberOfNodes() == nodes_after_show >= nodes_before


def test_saved_seg_nrrd_carries_sct_label_values(core, sct_data, tmp_path):
    """Export Segmentation (Slicer's storage node, what slicer.util.saveNode uses) writes the level segments in one
    shared layer with label values 2..9 = SCT values, read back by slicerio (not written here)."""
    volume, labels = _real_data(core, sct_data)
    segmentation_node = core.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Rootlets")
    show_level_segments(segmentation_node, labels, volume, closed_surfaces=False)
    storage = slicer.vtkMRMLSegmentationStorageNode()
    core.scene.AddNode(storage)
    storage.SetFileName(str(tmp_path / "t2_rootlets.seg.nrrd"))
    assert storage.WriteData(segmentation_node)
    read = slicerio.read_segmentation(str(tmp_path / "t2_rootlets.seg.nrrd"))
    by_name = {segment["name"]: segment for segment in read["segments"]}
    assert {name: segment["labelValue"] for name, segment in by_name.items()} == {
        "C3 rootlets": 3, "C4 rootlets": 4, "C5 rootlets": 5, "C6 rootlets": 6}
    assert {segment["layer"] for segment in read["segments"]} == {0}
    for segment in read["segments"]:
        assert segment["terminology"]["type"] == ["SCT", "69733000", "Spinal nerve root"]
    present = sorted(int(v) for v in np.unique(read["voxels"]) if v)
    assert present == [3, 4, 5, 6]

"""The Slicer segmentation file the CLI writes (`images.seg_nrrd`), read back by `slicerio` (which nobody here wrote)
and by Slicer's own segmentation storage node (slicer-core): names, colours, terminology, label values 2..9, grid."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import slicerio  # a test dependency: an independent reader of Slicer segmentation files

from RootletSegLogic.errors import UserError
from RootletSegLogic.images.seg_nrrd import write_seg_nrrd
from RootletSegLogic.levels.colors import LEVEL_COLORS
from RootletSegLogic.levels.terminology import terminology_entry_string


def _labels():
    rng = np.random.default_rng(5)
    array = np.zeros((12, 10, 8), np.uint8)
    for value in range(2, 10):
        array[rng.integers(0, 12), rng.integers(0, 10), :] = value
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.8, 0.9, 1.7))
    image.SetOrigin((10.0, -20.0, 30.5))
    rotation = sitk.VersorTransform((0.2, 0.5, 0.1), 0.7).GetMatrix()
    image.SetDirection(rotation)
    return image


def test_slicerio_reads_the_level_segments_with_sct_values(tmp_path):
    labels = _labels()
    path = write_seg_nrrd(labels, tmp_path / "sub_rootlets.seg.nrrd")
    segmentation = slicerio.read_segmentation(str(path))
    segments = segmentation["segments"]
    assert [s["name"] for s in segments] == [f"{n} rootlets" for n in ("C2", "C3", "C4", "C5", "C6", "C7", "C8", "T1")]
    assert [s["labelValue"] for s in segments] == list(range(2, 10))
    for segment in segments:
        np.testing.assert_allclose(segment["color"], LEVEL_COLORS[segment["labelValue"]], atol=1e-6)
        assert segment["terminology"]["category"] == ["SCT", "123037004", "Anatomical Structure"]
        assert segment["terminology"]["type"] == ["SCT", "69733000", "Spinal nerve root"]
        assert segment["tags"] == {"RootletSeg.Source": "RootletSeg", "RootletSeg.Level": str(segment["labelValue"])}
        assert segment["terminology"]["contextName"] == terminology_entry_string("rootlets").split("~")[0]
    voxels = segmentation["voxels"]
    # slicerio keeps the file's (i, j, k) order; SimpleITK's array is (k, j, i)
    np.testing.assert_array_equal(np.transpose(voxels, (2, 1, 0)), sitk.GetArrayFromImage(labels))
    ijk_to_lps = np.asarray(segmentation["ijkToLPS"])
    direction = np.asarray(labels.GetDirection()).reshape(3, 3) * np.asarray(labels.GetSpacing())
    np.testing.assert_allclose(ijk_to_lps[:3, :3], direction, atol=1e-6)
    np.testing.assert_allclose(ijk_to_lps[:3, 3], labels.GetOrigin(), atol=1e-6)


def test_slicer_loads_it_as_a_segmentation(tmp_path):
    import slicer  # slicer-core, a test dependency

    from RootletSegLogic.slicer.segments import label_image_from_segments
    from RootletSegLogic.slicer.volumes import create_core_scene, volume_node_from_image

    labels = _labels()
    path = write_seg_nrrd(labels, tmp_path / "x.seg.nrrd")
    core = create_core_scene()
    volume = volume_node_from_image(core.scene, sitk.Cast(labels, sitk.sitkFloat32), "vol")
    node = core.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "loaded")
    storage = slicer.vtkMRMLSegmentationStorageNode()
    core.scene.AddNode(storage)
    storage.SetFileName(str(path))
    assert storage.ReadData(node)
    segmentation = node.GetSegmentation()
    segment = segmentation.GetSegment("RootletSeg_C4")
    assert segment.GetName() == "C4 rootlets" and segment.GetLabelValue() == 4
    assert segment.GetTerminology() == terminology_entry_string("rootlets")
    back = label_image_from_segments(node, volume)  # found by the RootletSeg.Level tags
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(labels))


def test_never_replaces_a_file_unasked_and_refuses_an_empty_map(tmp_path):
    labels = _labels()
    path = write_seg_nrrd(labels, tmp_path / "a.seg.nrrd")
    with pytest.raises(UserError):
        write_seg_nrrd(labels, path)
    write_seg_nrrd(labels, path, overwrite=True)
    with pytest.raises(UserError, match="empty"):
        write_seg_nrrd(labels * 0, tmp_path / "b.seg.nrrd")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.seg.nrrd"]

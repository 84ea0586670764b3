"""One pass over the data, one provenance shape, one module for output names.

`segment --cord --discs --pmj` runs in-process under spies (decode_spy.py): each input file is decoded once and
hashed once, grid checks read headers only, and nothing the command wrote is read back. The model record of the
sidecar and of the level outputs is one shape (provenance.model_record). Output names come from naming.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parent))

from decode_spy import segment_with_levels, summary  # noqa: E402

from RootletSegLogic import naming  # noqa: E402
from RootletSegLogic.errors import UserError  # noqa: E402
from RootletSegLogic.images.header import read_header  # noqa: E402
from RootletSegLogic.provenance import model_record_from_sidecar  # noqa: E402


@pytest.fixture(scope="module")
def segmented(tmp_path_factory):
    folder = tmp_path_factory.mktemp("one_pass")
    code, spy, inputs = segment_with_levels(folder)
    return folder, code, spy, inputs


def test_each_input_decoded_once_hashed_once_nothing_read_back(segmented):
    folder, code, spy, inputs = segmented
    assert code == 0
    report = summary(spy, inputs)
    for name, counts in report["inputs"].items():
        assert counts["decode"] == 1, (name, counts)
        assert counts["hash"] == 1, (name, counts)
        # images/reading.py's NaN check opens NIfTI files with nibabel once per read_image; at most once here
        assert counts["nibabel"] <= 1, (name, counts)
    # The early grid check reads the image and cord headers once each; reading a float NIfTI (the phantom image)
    # reads its header once more, with its first voxel, to take ITK's exact grid beside nibabel's voxels.
    assert report["inputs"]["cord"]["header"] == 1 and report["inputs"]["image"]["header"] in (1, 2)
    assert report["read_after_write"] == []


def test_sidecar_and_levels_share_the_model_record(segmented):
    folder, code, _, _ = segmented
    sidecar = json.loads((folder / "image_rootlets.json").read_text())
    planning = json.loads((folder / "image_levels.json").read_text())
    assert planning["provenance"]["model"] == sidecar["model"] == model_record_from_sidecar(folder / "image_rootlets.json")
    assert sidecar["model"]["name"] == "demo" and sidecar["model"]["checkpoints"]
    # the checkpoints' digests come from when they were loaded (Segmenter.checkpoint_sha256): the files' own
    from RootletSegLogic.images.files import file_sha256

    for record in sidecar["model"]["checkpoints"].values():
        assert record["sha256"] == file_sha256(Path(sidecar["model"]["folder"]) / record["file"])
    inputs = planning["provenance"]["inputs"]
    assert inputs["cord"]["sha256"] and inputs["rootlets"] == {"path": str(folder / "image_rootlets.nii.gz"),
                                                               "written_by": "this command"}
    assert sidecar["input"]["sha256"] and sidecar["input"]["path"] == str(folder / "image.nii.gz")


def test_model_record_from_sidecar_refuses_other_files(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        model_record_from_sidecar(tmp_path / "missing.json")
    (tmp_path / "other.json").write_text('{"a": 1}')
    with pytest.raises(UserError, match="not a RootletSeg segmentation sidecar"):
        model_record_from_sidecar(tmp_path / "other.json")


def test_naming_rules():
    assert naming.segmentation_path("/d/sub-01_T2w_0000.nii.gz") == Path("/d/sub-01_T2w_rootlets.nii.gz")
    assert naming.sidecar_path("/d/sub-01_rootlets.nii.gz") == Path("/d/sub-01_rootlets.json")
    paths = naming.level_paths_for_segmentation("/d/sub-01_rootlets.nii.gz", with_label_image=True)
    assert {k: p.name for k, p in paths.items()} == {
        "table": "sub-01_levels.tsv", "planning_json": "sub-01_levels.json", "markups": "sub-01_levels.mrk.json",
        "pairings": "sub-01_pairings.tsv", "label_image": "sub-01_levels.nii.gz"}
    assert naming.level_paths_for_segmentation("/d/_rootlets.nii", False)["label_image"] is None
    assert naming.level_stem("/d/_rootlets.nii") == "_rootlets"
    assert [p.name for p in naming.figure_paths(naming.demo_figure_bases("/d")["qc_sagittal"])] == \
        ["qc_sagittal.png", "qc_sagittal.svg"]


def test_header_reads_the_grid_without_voxels(tmp_path):
    image = sitk.Image(4, 5, 6, sitk.sitkUInt8)
    image.SetSpacing((0.5, 1.0, 2.0))
    image.SetOrigin((1.0, -2.0, 3.0))
    image.SetDirection((0, 0, 1, 1, 0, 0, 0, 1, 0))
    sitk.WriteImage(image, str(tmp_path / "a.nrrd"))
    header = read_header(tmp_path / "a.nrrd")
    assert header.GetSize() == (4, 5, 6) and header.GetSpacing() == (0.5, 1.0, 2.0)
    assert header.GetOrigin() == (1.0, -2.0, 3.0) and header.GetDirection() == image.GetDirection()
    four = sitk.JoinSeries([image])  # a 3D volume stored with a 4th axis of one, as read_image accepts
    sitk.WriteImage(four, str(tmp_path / "b.nii.gz"))
    assert read_header(tmp_path / "b.nii.gz").GetSize() == (4, 5, 6)
    with pytest.raises(UserError, match="does not exist"):
        read_header(tmp_path / "missing.nii.gz")
    (tmp_path / "text.nii.gz").write_text("not an image")
    with pytest.raises(UserError, match="could not be read as an image"):
        read_header(tmp_path / "text.nii.gz")

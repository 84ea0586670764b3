"""Disc names <-> SCT values, and disc/PMJ readers: label images (real PAM50 data), CSV/TSV, JSON, Slicer markups."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from RootletSegLogic.errors import UserError
from RootletSegLogic.images.orientation import reorient
from RootletSegLogic.images.reading import read_label_map
from RootletSegLogic.levels.discs import (
    disc_name,
    disc_value,
    discs_from_label_image,
    landmarks_from_label_image,
    pmj_from_label_image,
    read_disc_points,
    read_landmarks,
    vertebra_name,
)


@pytest.mark.parametrize(
    "name,value",
    [("C1/C2", 2), ("C2/C3", 3), ("C3-C4", 4), ("c4/c5", 5), ("C5C6", 6), ("C6/7", 7), ("C7/T1", 8), ("T1/T2", 9),
     ("T12/L1", 20), ("disc 4", 4), ("4", 4), ("PMJ", 50), ("PMG", 49), ("C1 top", 1), (" C3/C4 disc ", 4)],
)
def test_disc_names_both_ways(name, value):
    assert disc_value(name) == value


def test_disc_name_round_trip():
    for value in list(range(1, 26)) + [49, 50]:
        assert disc_value(disc_name(value)) == value
    assert disc_name(3) == "C2/C3" and disc_name(8) == "C7/T1" and disc_name(9) == "T1/T2"
    assert [vertebra_name(v) for v in (1, 7, 8, 19, 20)] == ["C1", "C7", "T1", "T12", "L1"]


@pytest.mark.parametrize("bad", ["C2/C4", "foo", "C9/C10", ""])
def test_bad_disc_names(bad):
    with pytest.raises(UserError):
        disc_value(bad)


def _pam50(sct_data):
    t = sct_data / "template"
    return (read_label_map(t / "PAM50_small_label_disc.nii.gz"),
            read_label_map(t / "PAM50_small_t2_pmj_manual.nii.gz"))


def test_label_images_real_data(sct_data):
    disc_img, pmj_img = _pam50(sct_data)
    points = discs_from_label_image(disc_img)
    assert [p.value for p in points] == list(range(2, 20))
    # PAM50_small: LAS 1x1x2 mm, disc 2 (C1/C2) at voxel (35, 35, 235)
    assert points[0].position_ras == pytest.approx((0.0, 0.0, 195.5))
    assert pmj_from_label_image(pmj_img) == pytest.approx((0.0, 10.0, 239.5))
    for code in ("PSR", "RPI", "SAL"):
        moved = discs_from_label_image(reorient(disc_img, code))
        for a, b in zip(points, moved):
            assert a.value == b.value and a.position_ras == pytest.approx(b.position_ras)
    # a PMJ (50) inside a disc label image goes to the PMJ, not the discs
    arr = sitk.GetArrayFromImage(disc_img) + 50 * sitk.GetArrayFromImage(pmj_img).astype(np.float32) / 50
    both = sitk.GetImageFromArray(arr)
    both.CopyInformation(disc_img)
    d, pmj = landmarks_from_label_image(both)
    assert len(d) == 18 and pmj == pytest.approx((0.0, 10.0, 239.5))


def test_pmj_label_checks():
    img = sitk.Image(5, 5, 5, sitk.sitkUInt8)
    with pytest.raises(UserError, match="empty"):
        pmj_from_label_image(img)
    img[1, 1, 1] = 1
    assert pmj_from_label_image(img) == pytest.approx((-1.0, -1.0, 1.0))  # LPS (1,1,1) -> RAS
    img[2, 2, 2] = 3
    with pytest.raises(UserError, match="value 50"):
        pmj_from_label_image(img)


def test_point_files(tmp_path):
    ras = {"C2/C3": (1.0, 2.0, 30.0), "C3/C4": (1.5, 2.5, 12.0), "PMJ": (0.0, 5.0, 80.0)}
    (tmp_path / "p.csv").write_text(
        "name,R,A,S\n" + "".join(f"{n},{p[0]},{p[1]},{p[2]}\n" for n, p in ras.items()))
    (tmp_path / "p.tsv").write_text(
        "value\tx\ty\tz\tframe\n" + "".join(
            f"{disc_value(n)}\t{-p[0]}\t{-p[1]}\t{p[2]}\tLPS\n" for n, p in ras.items()))
    (tmp_path / "p.json").write_text(json.dumps(
        {"coordinate_system": "RAS", "points": [{"name": n, "position": list(p)} for n, p in ras.items()]}))
    (tmp_path / "list.json").write_text(json.dumps([{"value": disc_value(n), "lps": [-p[0], -p[1], p[2]]}
                                                    for n, p in ras.items()]))
    for frame, sign in (("LPS", -1.0), ("RAS", 1.0)):
        markups = {"@schema": "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/"
                              "Resources/Schema/markups-schema-v1.0.3.json#",
                   "markups": [{"type": "Fiducial", "coordinateSystem": frame, "controlPoints": [
                       {"id": str(k), "label": n, "position": [sign * p[0], sign * p[1], p[2]],
                        "positionStatus": "defined"} for k, (n, p) in enumerate(ras.items())]
                       + [{"id": "x", "label": "C5/C6", "position": [0, 0, 0], "positionStatus": "undefined"}]}]}
        (tmp_path / f"p_{frame}.mrk.json").write_text(json.dumps(markups))
    for name in ("p.csv", "p.tsv", "p.json", "list.json", "p_LPS.mrk.json", "p_RAS.mrk.json"):
        points, pmj = read_landmarks(tmp_path / name)
        assert [p.value for p in points] == [3, 4], name
        assert points[0].position_ras == pytest.approx(ras["C2/C3"]), name
        assert points[1].position_ras == pytest.approx(ras["C3/C4"]), name
        assert pmj == pytest.approx(ras["PMJ"]), name
        assert [p.value for p in read_disc_points(tmp_path / name)] == [3, 4]


@pytest.mark.parametrize(
    "name,text,match",
    [("a.csv", "name,x,y,z\nC2/C3,1,2,3\n", "frame"),
     ("b.csv", "foo,R,A,S\nC2/C3,1,2,3\n", "column 'name'"),
     ("c.csv", "name,R,A,S\nC2/C3,1,two,3\n", "three"),
     ("d.json", "{not json", "valid JSON"),
     ("e.json", json.dumps({"coordinate_system": "XYZ", "points": [{"name": "C2/C3", "position": [1, 2, 3]}]}), "RAS or LPS"),
     ("f.csv", "name,R,A,S\nC2/C4,1,2,3\n", "neighbouring"),
     ("g.txt2", "", "not a disc point file")],
)
def test_bad_point_files(tmp_path, name, text, match):
    (tmp_path / name).write_text(text)
    with pytest.raises(UserError, match=match):
        read_landmarks(tmp_path / name)


def test_a_segmentation_given_as_landmarks_is_refused(sct_data):
    """A cord mask passed as --discs or --pmj is not taken as one huge disc or as a PMJ at the cord's centroid."""
    cord = read_label_map(sct_data / "t2" / "t2_seg-manual.nii.gz")
    with pytest.raises(UserError, match="marks one point"):
        landmarks_from_label_image(cord)
    with pytest.raises(UserError, match="marks one point"):
        pmj_from_label_image(cord)
    labels = landmarks_from_label_image(
        read_label_map(sct_data / "template" / "PAM50_small_label_disc.nii.gz"))[0]
    assert [d.value for d in labels][:3] == [2, 3, 4]

"""Hardening (issue 8), kinds "malformed point and table files" and "statistics": disc point files (JSON, Slicer
markups, CSV/TSV) of wrong structure, encoding or values; level tables and heights files that are empty, Latin-1,
binary, non-finite or duplicated; too few subjects. Property tests (hypothesis) over point-file JSON shapes in
process, and real `rootletseg levels` / `rootletseg stats` processes on real files."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hardening_kit import assert_refused, cli, snapshot  # noqa: E402

from RootletSegLogic.errors import UserError  # noqa: E402
from RootletSegLogic.levels.discs import read_landmarks  # noqa: E402
from RootletSegLogic.levels.tables import read_level_table  # noqa: E402


# ----------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def phantom(tmp_path_factory) -> dict:
    """Phantom files moved 80 mm right and 60 mm anterior (as a real scanner's origin would be, so that reading
    the disc points in the wrong frame puts them far from the cord), their disc points in RAS, and a level table."""
    folder = tmp_path_factory.mktemp("inputs_phantom")
    assert cli("phantom", "--out", folder / "raw", "--shape", "32", "32", "128").returncode == 0
    for name in ("rootlets", "cord", "discs", "pmj"):
        image = sitk.ReadImage(str(folder / "raw" / f"{name}.nii.gz"))
        origin = np.array(image.GetOrigin()) + np.array([-80.0, -60.0, 0.0])  # LPS: -x = right, -y = anterior
        image.SetOrigin(tuple(origin))
        sitk.WriteImage(image, str(folder / f"{name}.nii.gz"), True)
    from RootletSegLogic.images.reading import read_label_map
    from RootletSegLogic.levels.discs import discs_from_label_image

    discs = discs_from_label_image(read_label_map(folder / "discs.nii.gz"))
    points = [{"name": f"disc {d.value}", "position": [float(v) for v in d.position_ras]} for d in discs]
    (folder / "points.json").write_text(json.dumps({"coordinate_system": "RAS", "points": points}))
    table = folder / "sub-01_levels.tsv"
    result = cli("levels", "--rootlets", folder / "rootlets.nii.gz", "--cord", folder / "cord.nii.gz",
                 "--disc-points", folder / "points.json", "--pmj", folder / "pmj.nii.gz", "-o", table,
                 "--progress", "none")
    assert result.returncode == 0, result.stderr
    return {"folder": folder, "points": points, "table": table}


def levels_with_points(phantom, points_file: Path, out: Path):
    f = phantom["folder"]
    return cli("levels", "--rootlets", f / "rootlets.nii.gz", "--cord", f / "cord.nii.gz", "--disc-points",
               points_file, "-o", out, "--progress", "none")


def refused_without_output(phantom, tmp_path, name: str, content, *fragments):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    before = snapshot(tmp_path)
    assert_refused(levels_with_points(phantom, path, tmp_path / "t.tsv"), *fragments)
    assert snapshot(tmp_path) == before


# ----------------------------------------------------------------------------------------------- point files
MARKUPS_WRONG = [
    {"markups": {"controlPoints": []}},  # markups not a list
    {"markups": ["C3/C4"]},  # markup not an object
    {"markups": [{"controlPoints": {"label": "C3/C4"}}]},  # controlPoints not a list
    {"markups": [{"controlPoints": ["C3/C4", [1, 2, 3]]}]},  # control point not an object
    {"markups": [{"coordinateSystem": "LPS", "controlPoints": [{"label": "C3/C4", "position": "1 2 3"}]}]},
    {"markups": [{"coordinateSystem": ["RAS"], "controlPoints": [{"label": "C3/C4", "position": [1, 2, 3]}]}]},
]


@pytest.mark.parametrize("content", MARKUPS_WRONG, ids=range(len(MARKUPS_WRONG)))
def test_markups_of_wrong_structure(phantom, tmp_path, content):
    refused_without_output(phantom, tmp_path, "p.mrk.json", content)


@pytest.mark.parametrize("content, fragment", [
    ({"coordinate_system": "RAS", "points": [{"value": True, "position": [0, 0, 0]}]}, "not a disc name or value"),
    ({"coordinate_system": "RAS", "points": [{"value": 4, "position": [True, 0, 0]}]}, "not three numbers"),
    ({"coordinate_system": "RAS", "points": [{"value": 99, "position": [0, 0, 0]}]}, "not an SCT disc label"),
    ({"coordinate_system": "RAS", "points": [{"value": -3, "position": [0, 0, 0]}]}, "not an SCT disc label"),
    ({"coordinate_system": "RAS", "points": [{"value": 4.5, "position": [0, 0, 0]}]}, "not a whole number"),
    ({"coordinate_system": "RAS", "points": [{"name": ["C3/C4"], "position": [0, 0, 0]}]}, "not a disc name"),
    ({"coordinate_system": "RAS", "points": [{"name": {"x": "C3/C4"}, "position": [0, 0, 0]}]}, "not a disc name"),
    ({"coordinate_system": "RAS", "points": [{"name": "disc 77", "position": [0, 0, 0]}]}, "not an SCT disc label"),
    ({"coordinate_system": 1.5, "points": [{"name": "C3/C4", "position": [0, 0, 0]}]}, "not RAS or LPS"),
])
def test_point_values_of_wrong_type_or_range(phantom, tmp_path, content, fragment):
    refused_without_output(phantom, tmp_path, "p.json", content, fragment)


@pytest.mark.parametrize("name, content, fragment", [
    ("empty.csv", "", "empty"),
    ("blank.tsv", "\n\n# only a comment\n", "empty"),
    ("latin1.csv", "name,R,A,S\nC3/C4,1,2,3\n# vértèbre\n".encode("latin-1"), "UTF-8"),
    ("binary.tsv", b"name\tR\tA\tS\n\x00\x01\x02\xff\xfe", "binary"),
    ("binary.json", b"\x89PNG\r\n\x1a\n\x00\x00", "binary"),
    ("latin1.json", '{"coordinate_system": "RAS", "points": [{"name": "C3/C4 é", "position": [0,0,0]}]}'
     .encode("latin-1"), "UTF-8"),
    ("true.csv", "value,R,A,S\ntrue,1,2,3\n", "not a disc name"),
    ("short.csv", "name,R,A,S\nC3/C4,1\n", "not three"),
])
def test_point_tables_empty_latin1_binary(phantom, tmp_path, name, content, fragment):
    refused_without_output(phantom, tmp_path, name, content, fragment)


def test_far_disc_points_warn_about_the_frame(phantom, tmp_path):
    good = levels_with_points(phantom, phantom["folder"] / "points.json", tmp_path / "good.tsv")
    assert good.returncode == 0, good.stderr
    assert "far from the cord" not in good.stderr
    mixed = tmp_path / "lps.json"  # the same numbers said to be LPS: the RAS/LPS mix-up
    mixed.write_text(json.dumps({"coordinate_system": "LPS", "points": phantom["points"]}))
    result = levels_with_points(phantom, mixed, tmp_path / "mixed.tsv")
    assert "far from the cord" in result.stderr and "RAS or LPS" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-100, 100) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8) | st.sampled_from(["C3/C4", "PMJ", "RAS", "LPS", "disc 4", "C7/T1"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["markups", "controlPoints", "label", "position", "coordinateSystem", "coordinate_system",
                         "points", "discs", "name", "value", "ras", "lps", "positionStatus", "description"]),
        children, max_size=5),
    max_leaves=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=json_values, markups=st.booleans())
def test_any_json_is_points_or_one_sentence(tmp_path, data, markups):
    path = tmp_path / ("p.mrk.json" if markups else "p.json")
    path.write_text(json.dumps(data))
    try:
        discs, pmj = read_landmarks(path)
    except UserError as error:
        assert "\n" not in str(error)
        return
    for disc in discs:
        assert isinstance(disc.value, int) and 1 <= disc.value <= 25
        assert len(disc.position_ras) == 3 and np.all(np.isfinite(disc.position_ras))
    assert pmj is None or np.all(np.isfinite(pmj))


# ----------------------------------------------------------------------------------------------- tables / stats
def subject_table(phantom, folder: Path, subject: str, shift: float = 0.0, edit=None) -> Path:
    """A copy of the phantom's level table for `subject`, midpoints shifted by `shift` mm, lines edited by `edit`."""
    lines = phantom["table"].read_text().splitlines()
    header = lines[0].split("\t")
    out = []
    for line in lines[1:]:
        cells = line.split("\t")
        for index, column in enumerate(header):
            if column.endswith("_mm") and cells[index] not in ("", "n/a"):
                cells[index] = f"{float(cells[index]) + shift:.3f}"
        out.append(cells)
    if edit:
        edit(header, out)
    path = folder / f"sub-{subject}_levels.tsv"
    path.write_text("\n".join(["\t".join(header)] + ["\t".join(c) for c in out]) + "\n")
    return path


def test_stats_refuses_bad_tables(phantom, tmp_path):
    good = [subject_table(phantom, tmp_path, f"{i:02d}", shift=i * 0.7) for i in range(1, 4)]

    def infinite(header, rows):
        rows[0][header.index("midpoint_pmj_mm")] = "inf"

    cases = {
        "empty": b"",
        "latin1": phantom["table"].read_text().replace("spinal", "spinal", 1).encode("utf-8") + "é\n".encode("latin-1"),
        "binary": b"level\tlevel_type\x00\x01\xff",
    }
    for name, content in cases.items():
        bad = tmp_path / f"sub-{name}_levels.tsv"
        bad.write_bytes(content)
        before = snapshot(tmp_path)
        assert_refused(cli("stats", *good, bad, "-o", tmp_path / "out", "--progress", "none"))
        assert snapshot(tmp_path) == before
        bad.unlink()
    bad = subject_table(phantom, tmp_path, "inf", edit=infinite)
    before = snapshot(tmp_path)
    assert_refused(cli("stats", *good, bad, "-o", tmp_path / "out", "--progress", "none"), "finite")
    assert snapshot(tmp_path) == before


def test_read_level_table_non_finite_and_fractional_ints(phantom, tmp_path):
    def overflow(header, rows):
        rows[0][header.index("n_voxels")] = "1e999"

    with pytest.raises(UserError, match="whole number"):
        read_level_table(subject_table(phantom, tmp_path, "ov", edit=overflow))

    def nan_midpoint(header, rows):
        rows[0][header.index("midpoint_pmj_mm")] = "-inf"

    with pytest.raises(UserError, match="finite"):
        read_level_table(subject_table(phantom, tmp_path, "ni", edit=nan_midpoint))


def test_stats_duplicate_heights_refused(phantom, tmp_path):
    tables = [subject_table(phantom, tmp_path, f"{i:02d}", shift=i) for i in range(1, 4)]
    heights = tmp_path / "participants.tsv"
    heights.write_text("participant_id\theight\nsub-01\t170\nsub-02\t180\nsub-03\t175\nsub-01\t160\n")
    before = snapshot(tmp_path)
    assert_refused(cli("stats", *tables, "--heights", heights, "-o", tmp_path / "o", "--progress", "none"),
                   "twice")
    assert snapshot(tmp_path) == before
    heights.write_bytes("participant_id\theight\nsub-01\t170\nsub-02\t180\nsub-03\t175\n# é\n".encode("latin-1"))
    assert_refused(cli("stats", *tables, "--heights", heights, "-o", tmp_path / "o", "--progress", "none"), "UTF-8")
    heights.write_bytes(b"participant_id\theight\n\x00\x00")
    assert_refused(cli("stats", *tables, "--heights", heights, "-o", tmp_path / "o", "--progress", "none"))
    assert not (tmp_path / "o").exists() and set(snapshot(tmp_path)) == set(before)


def test_stats_warns_for_one_subject_and_for_subjects_left_out(phantom, tmp_path):
    one = subject_table(phantom, tmp_path, "01")
    result = cli("stats", one, "-o", tmp_path / "one", "--progress", "none")
    assert result.returncode == 0, result.stderr
    assert "equal the bias" in result.stderr

    def no_vertebral(header, rows):
        rows[:] = [r for r in rows if r[header.index("level_type")] != "vertebral"]

    tables = [subject_table(phantom, tmp_path, f"{i:02d}", shift=i) for i in range(2, 5)]
    lonely = subject_table(phantom, tmp_path, "99", edit=no_vertebral)
    result = cli("stats", *tables, lonely, "-o", tmp_path / "many", "--progress", "none")
    assert result.returncode == 0, result.stderr
    assert "sub-99" in result.stderr and "left out" in result.stderr
    assert "equal the bias" not in result.stderr

"""Level table, pairings table, planning JSON and Slicer markups: written to real files and read back."""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest
from level_results import synthetic_result

from RootletSegLogic.errors import UserError
from RootletSegLogic.levels.planning import level_markups, write_level_outputs
from RootletSegLogic.levels.tables import (
    PAIRING_COLUMNS,
    level_table_rows,
    level_table_tsv,
    read_level_table,
)

REQUIRED = ("level_type", "level", "rostral_S_mm", "caudal_S_mm", "rostral_pmj_mm", "caudal_pmj_mm",
            "midpoint_pmj_mm", "height_mm")


def _write_all(result, folder, **kwargs):
    return write_level_outputs(
        result, tsv_path=folder / "levels.tsv", json_path=folder / "levels.json",
        markups_path=folder / "levels.mrk.json", pairings_path=folder / "pairs.tsv", **kwargs)


def test_level_table_columns_values_and_read_back(tmp_path):
    result = synthetic_result()
    paths = _write_all(result, tmp_path)
    assert set(paths) == {"table", "planning_json", "markups", "pairings"}
    with open(paths["table"], newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert all(c in rows[0] for c in REQUIRED)
    assert [r["level_type"] for r in rows] == ["spinal"] * 7 + ["vertebral"] * 7
    assert [r["level"] for r in rows[:7]] == ["C2", "C3", "C4", "C5", "C6", "C7", "C8"]
    for r in rows:  # fixed 3 decimals for every number
        for column in ("rostral_S_mm", "caudal_S_mm", "midpoint_pmj_mm", "height_mm", "midpoint_S_mm"):
            assert re.fullmatch(r"-?\d+\.\d{3}", r[column]), (column, r[column])
    c5 = next(r for r in rows if r["level"] == "C5" and r["level_type"] == "spinal")
    assert float(c5["rostral_pmj_mm"]) == 87.0 and float(c5["caudal_pmj_mm"]) == 100.0
    assert float(c5["midpoint_pmj_mm"]) == 93.5 and float(c5["height_mm"]) == 13.0
    assert float(c5["rostral_S_mm"]) == 13.0  # PMJ at S = 100
    assert c5["method"] == "paper" and c5["distance_reference"] == "pmj" and c5["label_value"] == "5"
    # overlaps: spinal C5 (87..100) lies in vertebral C4 (84..100) only
    assert c5["vertebral_overlap"] == "C4:1.000"
    c3 = next(r for r in rows if r["level"] == "C3" and r["level_type"] == "spinal")
    parts = dict(p.split(":") for p in c3["vertebral_overlap"].split(";"))
    assert parts == {"C2": f"{4 / 12:.3f}", "C3": f"{8 / 12:.3f}"}

    typed = read_level_table(paths["table"])
    assert typed == level_table_rows(result)  # every value survives the round trip (3 decimals suffice here)
    assert isinstance(typed[0]["label_value"], int) and isinstance(typed[0]["height_mm"], float)


def test_pairings_table(tmp_path):
    result = synthetic_result()
    path = write_level_outputs(result, pairings_path=tmp_path / "p.tsv")["pairings"]
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert tuple(rows[0]) == PAIRING_COLUMNS
    pairs = {(r["pairing"], r["vertebral_level"], r["spinal_level"]) for r in rows}
    assert ("not_shifted", "T1", "C8") in pairs and ("shifted", "C2", "C3") in pairs
    for r in rows:
        v, s = float(r["vertebral_midpoint_mm"]), float(r["spinal_midpoint_mm"])
        assert float(r["difference_mm"]) == pytest.approx(v - s, abs=2e-3)
        assert float(r["mean_mm"]) == pytest.approx((v + s) / 2, abs=2e-3)
    row = next(r for r in rows if r["pairing"] == "not_shifted" and r["vertebral_level"] == "C2")
    assert float(row["difference_mm"]) == pytest.approx(59.0 - 60.5)


def test_without_pmj_the_pmj_cells_are_empty(tmp_path):
    result = synthetic_result(with_pmj=False)
    text = level_table_tsv(result)
    rows = list(csv.DictReader(text.splitlines(), delimiter="\t"))
    assert all(r["rostral_pmj_mm"] == r["caudal_pmj_mm"] == r["midpoint_pmj_mm"] == "" for r in rows)
    assert all(r["distance_reference"] == "S-axis" and r["midpoint_distance_mm"] != "" for r in rows)
    (tmp_path / "t.tsv").write_text(text)
    assert all(r["midpoint_pmj_mm"] is None for r in read_level_table(tmp_path / "t.tsv"))


def test_planning_json_schema_and_ras_lps(tmp_path):
    result = synthetic_result()
    path = write_level_outputs(result, json_path=tmp_path / "plan.json",
                                      provenance={"model": "demo"})["planning_json"]
    doc = json.loads(path.read_text())
    assert doc["schema"] == "rootletseg.levels" and doc["schema_version"] == 1 and doc["units"] == "mm"
    assert doc["method"] == "paper" and doc["distance_reference"] == "pmj"
    prov = doc["provenance"]
    assert prov["model"] == "demo" and prov["software"] == "rootletseg" and prov["software_version"]
    assert prov["inputs"]["rootlets"]["sha256"] == "0" * 64 and prov["method"] == "paper"
    assert doc["warnings"] == ["example warning"]
    assert doc["pmj"]["ras"] == [1.5, -2.0, 100.0] and doc["pmj"]["lps"] == [-1.5, 2.0, 100.0]
    assert len(doc["levels"]) == 14 and len(doc["pairings"]) == len(result.pairings)
    rows = {(r.level_type, r.level): r for r in result.rows}
    for level in doc["levels"]:
        row = rows[level["level_type"], level["level"]]
        for which in ("rostral", "caudal", "midpoint"):
            point = level[which]["position"]
            r, a, s = point["ras"]
            assert point["lps"] == [-r, -a, s]
            assert [r, a, s] == pytest.approx(list(getattr(row, f"{which}_ras")))
            assert level[which]["pmj_distance_mm"] == pytest.approx(getattr(row, f"{which}_pmj_mm"))
            assert level[which]["distance_mm"] == pytest.approx(getattr(row, f"{which}_distance_mm"))
        assert level["rostral"]["pmj_distance_mm"] <= level["caudal"]["pmj_distance_mm"]
        assert len(level["color_rgb"]) == 3
        if level["level_type"] == "spinal":
            assert sum(o["fraction"] for o in level["vertebral_overlap"]) == pytest.approx(1.0)
        else:
            assert "vertebral_overlap" not in level


@pytest.mark.parametrize("system", ["LPS", "RAS"])
def test_markups_file(tmp_path, system):
    result = synthetic_result()
    doc = level_markups(result, coordinate_system=system)
    path = tmp_path / "levels.mrk.json"
    path.write_text(json.dumps(doc))
    loaded = json.loads(path.read_text())
    assert loaded["@schema"].startswith("https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups")
    markup = loaded["markups"][0]
    assert markup["type"] == "Fiducial" and markup["coordinateSystem"] == system
    assert markup["coordinateUnits"] == "mm" and markup["locked"] is True
    points = markup["controlPoints"]
    assert len(points) == 14 * 3
    labels = [p["label"] for p in points]
    assert len(set(labels)) == len(labels)
    assert {"C3 rostral", "C3 midpoint", "C3 caudal", "T1 vertebra caudal"} <= set(labels)
    row = next(r for r in result.rows if r.level_type == "spinal" and r.level == "C3")
    point = next(p for p in points if p["label"] == "C3 rostral")
    expected = np.array(row.rostral_ras) * (np.array([-1, -1, 1]) if system == "LPS" else 1)
    assert point["position"] == pytest.approx(list(expected))
    assert all(p["locked"] and p["positionStatus"] == "defined" and len(p["position"]) == 3 for p in points)
    assert [int(p["id"]) for p in points] == list(range(1, len(points) + 1))


def test_outputs_are_all_or_nothing(tmp_path):
    result = synthetic_result()
    (tmp_path / "levels.json").write_text("user's file")
    with pytest.raises(UserError, match="already exists"):
        _write_all(result, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["levels.json"]
    assert (tmp_path / "levels.json").read_text() == "user's file"
    paths = _write_all(result, tmp_path, overwrite=True)
    assert json.loads(paths["planning_json"].read_text())["schema"] == "rootletseg.levels"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["levels.json", "levels.mrk.json", "levels.tsv", "pairs.tsv"]


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "empty"),
        ("a\tb\n1\t2\n", "not a level table"),
        ("level_type\tlevel\trostral_S_mm\tcaudal_S_mm\tmidpoint_pmj_mm\theight_mm\nspinal\tC3\tabc\t1\t2\t3\n", "abc"),
        ("level_type\tlevel\trostral_S_mm\tcaudal_S_mm\tmidpoint_pmj_mm\theight_mm\nfoo\tC3\t1\t1\t2\t3\n", "level_type"),
        ("level_type\tlevel\trostral_S_mm\tcaudal_S_mm\tmidpoint_pmj_mm\theight_mm\nspinal\tC3\t1\n", "cells"),
    ],
)
def test_read_level_table_rejects_bad_tables(tmp_path, content, message):
    path = tmp_path / "bad.tsv"
    path.write_text(content)
    with pytest.raises(UserError, match=message) as info:
        read_level_table(path)
    assert "\n" not in str(info.value)


def test_real_levels_on_pam50(sct_data, tmp_path):
    """A real result from levels.py (PAM50_small: rootlets, cord, discs, PMJ) exported and read back."""
    from RootletSegLogic.images.reading import read_label_map
    from RootletSegLogic.levels.discs import (
        landmarks_from_label_image,
        pmj_from_label_image,
    )
    from RootletSegLogic.levels.method import compute_levels

    template = sct_data / "template"
    rootlets = read_label_map(template / "PAM50_small_rootlets.nii.gz")
    cord = read_label_map(template / "PAM50_small_cord.nii.gz")
    disc_points, pmj = landmarks_from_label_image(read_label_map(template / "PAM50_small_label_disc.nii.gz"))
    pmj = pmj_from_label_image(read_label_map(template / "PAM50_small_t2_pmj_manual.nii.gz"))
    result = compute_levels(rootlets, cord, disc_points, pmj)
    paths = _write_all(result, tmp_path)
    rows = read_level_table(paths["table"])
    spinal = [r for r in rows if r["level_type"] == "spinal"]
    assert [r["level"] for r in spinal] == [r.level for r in sorted(result.spinal(), key=lambda r: r.label_value)]
    assert {"C3", "C4", "C5", "C6", "C7", "C8"} <= {r["level"] for r in spinal}
    assert all(r["midpoint_pmj_mm"] is not None and r["midpoint_pmj_mm"] > 0 for r in rows)
    mids = [r["midpoint_pmj_mm"] for r in spinal]
    assert mids == sorted(mids)
    for row, original in zip(rows, sorted(result.rows, key=lambda r: (r.level_type != "spinal", r.label_value))):
        assert row["midpoint_pmj_mm"] == pytest.approx(original.midpoint_pmj_mm, abs=5e-4)
        assert row["rostral_S_mm"] == pytest.approx(original.rostral_S_mm, abs=5e-4)
    doc = json.loads(paths["planning_json"].read_text())
    for level in doc["levels"]:
        for which in ("rostral", "caudal", "midpoint"):
            r, a, s = level[which]["position"]["ras"]
            assert level[which]["position"]["lps"] == [-r, -a, s]
    markup = json.loads(paths["markups"].read_text())["markups"][0]
    assert markup["coordinateSystem"] == "LPS" and len(markup["controlPoints"]) == 3 * len(result.rows)

"""Exports of a `LevelResult`: level table (TSV), pairings table (TSV), planning JSON, Slicer markups.

Units and frames: every number is in mm. `*_S_mm` is the world RAS S coordinate; `*_pmj_mm` is the arc length along
the cord centerline below the pontomedullary junction (PMJ), empty when no PMJ was given. Point coordinates are
written in RAS (Slicer) and, in the planning JSON, also in LPS (ITK/DICOM: x and y negated).

Table formats (tab-separated, one header line, numbers with 3 decimals, empty cell = not available):

- level table, one row per level, columns `LEVEL_COLUMNS`;
- pairings table, one row per paired vertebral/spinal level, columns `PAIRING_COLUMNS`.

`read_level_table` reads a level table back with typed values; it is what `rootletseg stats` uses.
The planning JSON is documented in docs/planning_json.md.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, List, Optional

from . import __version__
from .colors import level_color
from .errors import UserError
from .imageio import absolute_path, atomic_outputs
from .level_types import LevelResult, LevelRow

DECIMALS = 3

LEVEL_COLUMNS = (
    "level_type",  # spinal | vertebral
    "level",  # C2 .. T1
    "rostral_S_mm",  # world RAS S of the rostral bound
    "caudal_S_mm",
    "rostral_pmj_mm",  # arc length below the PMJ along the centerline; empty without PMJ
    "caudal_pmj_mm",
    "midpoint_pmj_mm",
    "height_mm",  # caudal - rostral along the distance reference
    "label_value",  # spinal: rootlet label 2..9; vertebral: SCT vertebral level 2..8
    "method",  # paper | gapless | rootlets-only | discs
    "n_voxels",
    "distance_reference",  # pmj | S-axis
    "rostral_distance_mm",  # distance in the reference: = *_pmj_mm with a PMJ, else mm below the reference S plane
    "caudal_distance_mm",
    "midpoint_distance_mm",
    "midpoint_R_mm",  # midpoint on the cord centerline, RAS
    "midpoint_A_mm",
    "midpoint_S_mm",
    "vertebral_overlap",  # spinal rows: "C2:0.350;C3:0.650" (fraction of the spinal level's height)
)
"""Columns of the level table, in order."""

PAIRING_COLUMNS = (
    "pairing",  # not_shifted | shifted
    "vertebral_level",
    "spinal_level",
    "vertebral_midpoint_mm",
    "spinal_midpoint_mm",
    "difference_mm",  # vertebral - spinal midpoint
    "mean_mm",
)
"""Columns of the pairings table, in order."""

_FLOAT_COLUMNS = {
    "rostral_S_mm", "caudal_S_mm", "rostral_pmj_mm", "caudal_pmj_mm", "midpoint_pmj_mm", "height_mm",
    "midpoint_R_mm", "midpoint_A_mm", "midpoint_S_mm",
    "rostral_distance_mm", "caudal_distance_mm", "midpoint_distance_mm",
    "vertebral_midpoint_mm", "spinal_midpoint_mm", "difference_mm", "mean_mm",
}
_INT_COLUMNS = {"label_value", "n_voxels"}
_REQUIRED_LEVEL_COLUMNS = ("level_type", "level", "rostral_S_mm", "caudal_S_mm", "midpoint_pmj_mm", "height_mm")

SCHEMA_NAME = "rootletseg.levels"
SCHEMA_VERSION = 1
MARKUPS_SCHEMA = (
    "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/Resources/Schema/"
    "markups-schema-v1.0.3.json#"
)


# ------------------------------------------------------------------------------------------------ formatting
def _fmt(value) -> str:
    """A cell: '' for None/NaN, fixed 3 decimals for floats, str() otherwise."""
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.{DECIMALS}f}"
    return str(value)


def _tsv(columns, rows: List[dict], delimiter: str = "\t") -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_fmt(row.get(column)) for column in columns])
    return buffer.getvalue()


def _opt_float(value) -> Optional[float]:
    return None if value is None else float(value)


def _overlap_text(result: LevelResult, row: LevelRow) -> str:
    if row.level_type != "spinal":
        return ""
    parts = [f"{o.vertebral_level}:{o.fraction:.{DECIMALS}f}" for o in result.overlaps if o.spinal_level == row.level]
    return ";".join(parts)


# ------------------------------------------------------------------------------------------------ level table
def level_table_rows(result: LevelResult) -> List[Dict[str, object]]:
    """One dict per level (spinal first, then vertebral, each rostral to caudal), keys `LEVEL_COLUMNS`.

    Values are typed: floats in mm (None where not available, e.g. PMJ distances without a PMJ), ints for
    `label_value`/`n_voxels`, strings otherwise. `vertebral_overlap` lists, for a spinal level, the vertebral levels
    it overlaps with the fraction of its height in each ("C2:0.350;C3:0.650"); empty for vertebral rows.
    """
    ordered = sorted(result.rows, key=lambda r: (r.level_type != "spinal", r.label_value))
    rows = []
    for row in ordered:
        midpoint = row.midpoint_ras if row.midpoint_ras is not None else (None, None, None)
        rows.append(
            {
                "level_type": row.level_type,
                "level": row.level,
                "rostral_S_mm": _opt_float(row.rostral_S_mm),
                "caudal_S_mm": _opt_float(row.caudal_S_mm),
                "rostral_pmj_mm": _opt_float(row.rostral_pmj_mm),
                "caudal_pmj_mm": _opt_float(row.caudal_pmj_mm),
                "midpoint_pmj_mm": _opt_float(row.midpoint_pmj_mm),
                "height_mm": _opt_float(row.height_mm),
                "label_value": int(row.label_value),
                "method": row.method,
                "n_voxels": int(row.n_voxels),
                "distance_reference": result.distance_reference,
                "rostral_distance_mm": _opt_float(getattr(row, "rostral_distance_mm", None)),
                "caudal_distance_mm": _opt_float(getattr(row, "caudal_distance_mm", None)),
                "midpoint_distance_mm": _opt_float(getattr(row, "midpoint_distance_mm", None)),
                "midpoint_R_mm": _opt_float(midpoint[0]),
                "midpoint_A_mm": _opt_float(midpoint[1]),
                "midpoint_S_mm": _opt_float(midpoint[2]),
                "vertebral_overlap": _overlap_text(result, row),
            }
        )
    return rows


def level_table_tsv(result: LevelResult) -> str:
    """The level table as TSV text (header + one line per level; 3 decimals; empty cell = not available)."""
    return _tsv(LEVEL_COLUMNS, level_table_rows(result))


def level_table_csv(result: LevelResult) -> str:
    """The level table as comma-separated text: the same columns and cells as `level_table_tsv`."""
    return _tsv(LEVEL_COLUMNS, level_table_rows(result), delimiter=",")


def pairings_rows(result: LevelResult) -> List[Dict[str, object]]:
    """One dict per pairing of a vertebral with a spinal level, keys `PAIRING_COLUMNS` (mm, same distance reference)."""
    return [
        {
            "pairing": p.pairing,
            "vertebral_level": p.vertebral_level,
            "spinal_level": p.spinal_level,
            "vertebral_midpoint_mm": float(p.vertebral_midpoint_mm),
            "spinal_midpoint_mm": float(p.spinal_midpoint_mm),
            "difference_mm": float(p.difference_mm),
            "mean_mm": float(p.mean_mm),
        }
        for p in result.pairings
    ]


def pairings_tsv(result: LevelResult) -> str:
    """The pairings table as TSV text: pairing, vertebral_level, spinal_level, midpoints, difference, mean (mm)."""
    return _tsv(PAIRING_COLUMNS, pairings_rows(result))


def _parse_cell(column: str, text: str, path: Path, line: int):
    text = text.strip()
    if column in _FLOAT_COLUMNS:
        if text == "" or text.lower() in ("n/a", "nan", "na"):
            return None
        try:
            return float(text)
        except ValueError:
            raise UserError(
                f"The level table '{path}' has '{text}' in column {column} on line {line}: "
                f"give a number in mm or leave the cell empty."
            ) from None
    if column in _INT_COLUMNS:
        if text == "":
            return None
        try:
            return int(float(text))
        except ValueError:
            raise UserError(
                f"The level table '{path}' has '{text}' in column {column} on line {line}: give a whole number."
            ) from None
    return text


def read_level_table(path: os.PathLike | str) -> List[Dict[str, object]]:
    """Read a level table written by `level_table_tsv` (or `rootletseg levels`) with typed values.

    Floats (mm) for the `*_mm` columns (None for empty cells), ints for `label_value`/`n_voxels`, strings otherwise.
    Extra columns (e.g. `participant_id`) are kept as strings. Raises UserError, one sentence, for a missing or
    empty file, a file that is not a level table (missing columns), an unknown level type or a non-number.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"The level table '{path}' does not exist: check the path.")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (UnicodeDecodeError, OSError):
        raise UserError(f"The level table '{path}' is not a readable text file: give a TSV written by 'rootletseg levels'.") from None
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise UserError(f"The level table '{path}' is empty: give a TSV written by 'rootletseg levels'.")
    reader = csv.reader(lines, delimiter="\t")
    header = [h.strip() for h in next(reader)]
    missing = [c for c in _REQUIRED_LEVEL_COLUMNS if c not in header]
    if missing:
        raise UserError(
            f"The file '{path}' is not a level table (no column {', '.join(missing)}): "
            f"give a tab-separated table written by 'rootletseg levels'."
        )
    rows = []
    for line_number, cells in enumerate(reader, start=2):
        if len(cells) != len(header):
            raise UserError(
                f"The level table '{path}' has {len(cells)} cells on line {line_number} but {len(header)} columns: "
                f"fix the line or write the table again."
            )
        row = {column: _parse_cell(column, cell, path, line_number) for column, cell in zip(header, cells)}
        if row["level_type"] not in ("spinal", "vertebral"):
            raise UserError(
                f"The level table '{path}' has level_type '{row['level_type']}' on line {line_number}: "
                f"use 'spinal' or 'vertebral'."
            )
        rows.append(row)
    if not rows:
        raise UserError(f"The level table '{path}' has a header but no levels: run 'rootletseg levels' again.")
    return rows


# ------------------------------------------------------------------------------------------------ planning JSON
def _point(ras) -> Optional[dict]:
    if ras is None:
        return None
    r, a, s = (float(v) + 0.0 for v in ras)  # + 0.0 and 0.0 - x: no "-0.0" in the JSON
    return {"ras": [r, a, s], "lps": [0.0 - r, 0.0 - a, s]}


def _bound(ras, s_mm, pmj_mm, distance_mm) -> dict:
    return {
        "position": _point(ras),
        "S_mm": _opt_float(s_mm),
        "pmj_distance_mm": _opt_float(pmj_mm),
        "distance_mm": _opt_float(distance_mm),
    }


def planning_json(result: LevelResult, provenance: Optional[dict] = None) -> dict:
    """A versioned planning document (schema "rootletseg.levels", version 1), documented in docs/planning_json.md.

    Per level: rostral / caudal / midpoint as points on the cord centerline in RAS and LPS mm, their S coordinate,
    their distance below the PMJ along the centerline (None without a PMJ), height, overlaps with vertebral levels;
    the pairings of the paper; the PMJ; warnings; provenance (`result.provenance` updated with `provenance`, plus the
    software name and version, method and distance reference).
    """
    prov = dict(result.provenance or {})
    prov.update(provenance or {})
    prov.setdefault("software", "rootletseg")
    prov.setdefault("software_version", __version__)
    prov.setdefault("method", result.method)
    prov.setdefault("distance_reference", result.distance_reference)
    prov.setdefault("created_utc", datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    levels = []
    ordered = sorted(result.rows, key=lambda r: (r.level_type != "spinal", r.label_value))
    for row in ordered:
        entry = {
            "level_type": row.level_type,
            "level": row.level,
            "label_value": int(row.label_value),
            "method": row.method,
            "rostral": _bound(row.rostral_ras, row.rostral_S_mm, row.rostral_pmj_mm,
                              getattr(row, "rostral_distance_mm", None)),
            "caudal": _bound(row.caudal_ras, row.caudal_S_mm, row.caudal_pmj_mm,
                             getattr(row, "caudal_distance_mm", None)),
            "midpoint": _bound(
                row.midpoint_ras,
                None if row.midpoint_ras is None else row.midpoint_ras[2],
                row.midpoint_pmj_mm,
                getattr(row, "midpoint_distance_mm", None),
            ),
            "height_mm": _opt_float(row.height_mm),
            "n_voxels": int(row.n_voxels),
            "color_rgb": list(level_color(row.level)),
        }
        if row.level_type == "spinal":
            entry["vertebral_overlap"] = [
                {"vertebral_level": o.vertebral_level, "fraction": float(o.fraction)}
                for o in result.overlaps
                if o.spinal_level == row.level
            ]
        levels.append(entry)
    return {
        "schema": SCHEMA_NAME,
        "schema_version": SCHEMA_VERSION,
        "units": "mm",
        "coordinate_systems": {
            "ras": "world RAS (Slicer): +x Right, +y Anterior, +z Superior",
            "lps": "world LPS (ITK/DICOM): +x Left, +y Posterior, +z Superior; lps = (-r, -a, s)",
        },
        "method": result.method,
        "distance_reference": result.distance_reference,
        "reference_S_mm": _opt_float(getattr(result, "reference_S_mm", None)),
        "pmj": _point(result.pmj_ras),
        "levels": levels,
        "pairings": pairings_rows(result),
        "overlaps": [
            {"spinal_level": o.spinal_level, "vertebral_level": o.vertebral_level, "fraction": float(o.fraction)}
            for o in result.overlaps
        ],
        "warnings": list(result.warnings),
        "provenance": prov,
    }


# ------------------------------------------------------------------------------------------------ Slicer markups
def _markup_label(row: LevelRow, which: str) -> str:
    return f"{row.level} {which}" if row.level_type == "spinal" else f"{row.level} vertebra {which}"


def level_markups(result: LevelResult, coordinate_system: str = "LPS", include_vertebral: bool = True,
                  name: str = "RootletSeg levels") -> dict:
    """A Slicer markups point list (`.mrk.json`, markups schema v1.0.3) with the level bounds as named points.

    One locked control point per bound and midpoint: spinal "C3 rostral", "C3 midpoint", "C3 caudal"; vertebral
    "C3 vertebra rostral", ... (when `include_vertebral`). Positions in mm, in `coordinate_system` ("LPS", as Slicer
    writes its own files, or "RAS"); the file states which. Levels without positions are skipped.
    """
    coordinate_system = coordinate_system.upper()
    if coordinate_system not in ("LPS", "RAS"):
        raise ValueError("coordinate_system must be 'LPS' or 'RAS'")
    sign = (-1.0, -1.0, 1.0) if coordinate_system == "LPS" else (1.0, 1.0, 1.0)
    orientation = [sign[0], 0.0, 0.0, 0.0, sign[1], 0.0, 0.0, 0.0, 1.0]
    points = []
    ordered = sorted(result.rows, key=lambda r: (r.level_type != "spinal", r.label_value))
    for row in ordered:
        if row.level_type == "vertebral" and not include_vertebral:
            continue
        for which, ras, pmj in (
            ("rostral", row.rostral_ras, row.rostral_pmj_mm),
            ("midpoint", row.midpoint_ras, row.midpoint_pmj_mm),
            ("caudal", row.caudal_ras, row.caudal_pmj_mm),
        ):
            if ras is None:
                continue
            where = f"{pmj:.1f} mm below the PMJ" if pmj is not None else f"S = {ras[2]:.1f} mm"
            points.append(
                {
                    "id": str(len(points) + 1),
                    "label": _markup_label(row, which),
                    "description": f"{row.level_type} level {row.level}, {which} ({row.method}); {where}",
                    "associatedNodeID": "",
                    "position": [float(ras[i]) * sign[i] for i in range(3)],
                    "orientation": orientation,
                    "selected": False,
                    "locked": True,
                    "visibility": True,
                    "positionStatus": "defined",
                }
            )
    return {
        "@schema": MARKUPS_SCHEMA,
        "markups": [
            {
                "type": "Fiducial",
                "name": name,
                "coordinateSystem": coordinate_system,
                "coordinateUnits": "mm",
                "locked": True,
                "fixedNumberOfControlPoints": True,
                "labelFormat": "%N-%d",
                "lastUsedControlPointNumber": len(points),
                "controlPoints": points,
                "measurements": [],
                "display": {
                    "visibility": True,
                    "opacity": 1.0,
                    "color": [1.0, 1.0, 0.0],
                    "selectedColor": [1.0, 0.5, 0.5],
                    "activeColor": [0.4, 1.0, 0.0],
                    "propertiesLabelVisibility": False,
                    "pointLabelsVisibility": True,
                    "textScale": 3.0,
                    "glyphType": "Sphere3D",
                    "glyphScale": 1.0,
                    "glyphSize": 5.0,
                    "useGlyphScale": True,
                },
            }
        ],
    }


# ------------------------------------------------------------------------------------------------ writing
def write_level_outputs(
    result: LevelResult,
    tsv_path=None,
    json_path=None,
    markups_path=None,
    pairings_path=None,
    overwrite: bool = False,
    provenance: Optional[dict] = None,
) -> Dict[str, Path]:
    """Write the requested outputs all-or-nothing (nothing is written if any exists and `overwrite` is False).

    Returns {"table": tsv, "planning_json": json, "markups": mrk.json, "pairings": tsv} for the paths given
    (absolute paths). A markups path should end in `.mrk.json` for Slicer to recognise it.
    """
    contents = []
    if tsv_path is not None:
        contents.append(("table", tsv_path, level_table_tsv(result)))
    if pairings_path is not None:
        contents.append(("pairings", pairings_path, pairings_tsv(result)))
    if json_path is not None:
        contents.append(("planning_json", json_path, json.dumps(planning_json(result, provenance), indent=2) + "\n"))
    if markups_path is not None:
        contents.append(("markups", markups_path, json.dumps(level_markups(result), indent=2) + "\n"))
    if not contents:
        return {}
    with atomic_outputs([path for _, path, _ in contents], overwrite) as temporaries:
        for tmp, (_, _, text) in zip(temporaries, contents):
            Path(tmp).write_text(text, encoding="utf-8")
    return {name: absolute_path(path) for name, path, _ in contents}

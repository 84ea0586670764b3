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

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, Optional

from RootletSegLogic import __version__
from RootletSegLogic.images.atomic import atomic_outputs
from RootletSegLogic.images.files import absolute_path
from RootletSegLogic.levels.colors import level_color
from RootletSegLogic.levels.tables import (
    level_table_tsv,
    optional_float,
    pairings_rows,
    pairings_tsv,
)
from RootletSegLogic.levels.types import LevelResult, LevelRow

"""Columns of the level table, in order."""
"""Columns of the pairings table, in order."""

SCHEMA_NAME = "rootletseg.levels"
SCHEMA_VERSION = 1
MARKUPS_SCHEMA = (
    "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/Resources/Schema/"
    "markups-schema-v1.0.3.json#"
)


# ------------------------------------------------------------------------------------------------ planning JSON
def _point(ras) -> Optional[dict]:
    if ras is None:
        return None
    r, a, s = (float(v) + 0.0 for v in ras)  # + 0.0 and 0.0 - x: no "-0.0" in the JSON
    return {"ras": [r, a, s], "lps": [0.0 - r, 0.0 - a, s]}


def _bound(ras, s_mm, pmj_mm, distance_mm) -> dict:
    return {
        "position": _point(ras),
        "S_mm": optional_float(s_mm),
        "pmj_distance_mm": optional_float(pmj_mm),
        "distance_mm": optional_float(distance_mm),
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
            "height_mm": optional_float(row.height_mm),
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
        "reference_S_mm": optional_float(getattr(result, "reference_S_mm", None)),
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

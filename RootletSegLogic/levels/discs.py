"""Intervertebral disc points and the PMJ: names <-> SCT values, and readers (label images, CSV/TSV, JSON, Slicer markups).

SCT disc-label convention: 1 = top of C1, 2 = C1/C2, 3 = C2/C3, ..., 8 = C7/T1, 9 = T1/T2, ...; 49 = pontomedullary
groove (PMG), 50 = pontomedullary junction (PMJ). Disc N lies between vertebrae N-1 and N (vertebra values: 1..7 =
C1..C7, 8..19 = T1..T12, 20..24 = L1..L5, 25 = S1), so a disc's value is the value of the vertebra below it.

Every position returned is world RAS in mm (Slicer's frame). Label images may be on any grid: only their world
positions are used.

Point files:
- `.csv` / `.tsv`: a header row, then one row per point. A column `name` (e.g. "C3/C4", "disc 4", "PMJ") or `value`
  (SCT value), and coordinates as columns `R,A,S` (RAS mm), `L,P,S` (LPS mm), or `x,y,z` together with a column
  `frame` (or `coordinate_system`) holding RAS or LPS on each row.
- `.json` (RootletSeg disc points, version 1)::

      {"coordinate_system": "RAS",          # or "LPS"; required
       "points": [{"name": "C2/C3", "position": [x, y, z]}, {"value": 4, "position": [x, y, z]}, ...]}

  A top-level list of such point objects is accepted when each has `"ras": [...]` or `"lps": [...]` instead of
  `position`.
- `.mrk.json` (Slicer markups): control points of every markup; their `label` is parsed as a disc name or value;
  `coordinateSystem` ("LPS" or "RAS", Slicer >= 4.11 writes LPS) is honoured; undefined points are skipped.
"""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import SimpleITK as sitk

from RootletSegLogic.errors import UserError
from RootletSegLogic.images.files import IMAGE_SUFFIXES, remember_input
from RootletSegLogic.images.reading import read_label_map
from RootletSegLogic.images.world import lps_to_ras, voxel_centers_lps
from RootletSegLogic.levels.types import PMG_VALUE, PMJ_VALUE, DiscPoint

_REGIONS = (("C", 1, 7), ("T", 8, 19), ("L", 20, 24), ("S", 25, 29))


# ------------------------------------------------------------------------------------------------------- names
def vertebra_name(value: int) -> str:
    """SCT vertebral level value -> name: 1 -> "C1", 7 -> "C7", 8 -> "T1", 20 -> "L1"."""
    for letter, first, last in _REGIONS:
        if first <= value <= last:
            return f"{letter}{value - first + 1}"
    raise ValueError(f"no vertebra has SCT value {value}")


def vertebra_value(name: str) -> int:
    """Vertebra name -> SCT value: "C2" -> 2, "T1" -> 8, "L1" -> 20 (case-insensitive)."""
    match = re.fullmatch(r"\s*([CTLS])\s*(\d{1,2})\s*", name, flags=re.IGNORECASE)
    if match:
        letter, number = match.group(1).upper(), int(match.group(2))
        for region, first, last in _REGIONS:
            if region == letter and 1 <= number <= last - first + 1:
                return first + number - 1
    raise UserError(f"'{name}' is not a vertebra name: use C1..C7, T1..T12, L1..L5 or S1.")


def disc_name(value: int) -> str:
    """SCT disc value -> name: 1 -> "C1 top", 3 -> "C2/C3", 8 -> "C7/T1", 9 -> "T1/T2", 49 -> "PMG", 50 -> "PMJ"."""
    value = int(value)
    if value == PMJ_VALUE:
        return "PMJ"
    if value == PMG_VALUE:
        return "PMG"
    if value == 1:
        return "C1 top"
    try:
        return f"{vertebra_name(value - 1)}/{vertebra_name(value)}"
    except ValueError:
        return f"disc {value}"


def disc_value(name) -> int:
    """Disc name or value -> SCT value: "C2/C3" (also "C2-C3", "C2C3", "C2/3"), "disc 3", "3", "PMJ", "PMG", "C1 top".

    Raises UserError for anything else (including two vertebrae that are not neighbours, like "C2/C4").
    """
    if isinstance(name, (bool, np.bool_)) or not isinstance(name, (str, int, float, np.integer, np.floating)):
        # JSON true/false, lists, objects: str() of them could even contain a disc name by accident
        raise UserError(f"The disc label {json.dumps(name) if isinstance(name, (bool, list, dict)) else repr(name)} "
                        "is not a disc name or value: use names like C3/C4 or SCT values like 4.")
    if isinstance(name, (float, np.floating)):
        if not np.isfinite(name) or float(name) != int(name):
            raise UserError(f"The disc value {name!r} is not a whole number: use SCT disc values like 4, or names "
                            "like C3/C4.")
        name = int(name)
    if isinstance(name, (int, np.integer)):
        return _checked_value(int(name))
    text = str(name).strip()
    upper = text.upper()
    if upper in ("PMJ", "PONTOMEDULLARY JUNCTION"):
        return PMJ_VALUE
    if upper in ("PMG", "PONTOMEDULLARY GROOVE"):
        return PMG_VALUE
    if re.fullmatch(r"C1[\s_-]*TOP|TOP[\s_-]*(OF[\s_-]*)?C1", upper):
        return 1
    match = re.fullmatch(r"(?:DISC|DISK|LABEL)?[\s_#-]*(\d{1,2})(?:\.0+)?", upper)
    if match:
        return _checked_value(int(match.group(1)))
    match = re.search(r"([CTLS])\s*(\d{1,2})\s*[/\\\-_ ]?\s*([CTLS])?\s*(\d{1,2})", upper)
    if match:
        upper_v = vertebra_value(match.group(1) + match.group(2))
        lower_letter = match.group(3) or match.group(1)
        lower_v = vertebra_value(lower_letter + match.group(4))
        if lower_v != upper_v + 1:
            raise UserError(f"'{text}' does not name a disc between two neighbouring vertebrae (such as C3/C4).")
        return lower_v
    raise UserError(f"'{text}' is not a disc name: use names like C3/C4, C7/T1, 'disc 4' (SCT value) or PMJ.")


MAX_DISC_VALUE = 25  # S1 (the L5/S1 disc): SCT's disc labels stop there


def _checked_value(value: int) -> int:
    """An SCT landmark value: 1 (C1 top) .. 25 (L5/S1), 49 (PMG) or 50 (PMJ); UserError otherwise."""
    if 1 <= value <= MAX_DISC_VALUE or value in (PMG_VALUE, PMJ_VALUE):
        return value
    raise UserError(f"The disc value {value} is not an SCT disc label (1 = C1 top, 2 = C1/C2, 3 = C2/C3, ... "
                    f"{MAX_DISC_VALUE} = L5/S1, 49 = PMG, 50 = PMJ): fix the point file.")


# -------------------------------------------------------------------------------------------------- label images
LANDMARK_MAX_RADIUS_MM = 5.0
"""A disc or PMJ label is a point; SCT writes one voxel, some tools a small blob. Farther than this from its
centroid, a label is not a landmark (a cord mask given as discs, say)."""


def label_centroids(image: sitk.Image, what: str = "landmark label image") -> dict:
    """{value: centroid RAS mm} over the voxels of each non-zero label value; each must be point-like."""
    array = sitk.GetArrayViewFromImage(image)
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array)) or not np.all(np.mod(array, 1) == 0):
            raise UserError(f"The {what} has non-integer values: give a label image (whole numbers).")
    zyx = np.argwhere(array != 0)
    if len(zyx) == 0:
        return {}
    values = np.asarray(array[tuple(zyx.T)]).astype(int)
    ras = lps_to_ras(voxel_centers_lps(image, zyx[:, ::-1]))
    centroids = {}
    for value in np.unique(values):
        points = ras[values == value]
        centroid = points.mean(axis=0)
        spread_mm = float(np.max(np.linalg.norm(points - centroid, axis=1)))
        if spread_mm > LANDMARK_MAX_RADIUS_MM:
            raise UserError(
                f"The {what} has label {int(value)} on {len(points)} voxels spread over {2 * spread_mm:.0f} mm: a disc "
                f"or PMJ label marks one point (SCT writes one voxel); is this a segmentation instead of labels?"
            )
        centroids[int(value)] = tuple(float(c) for c in centroid)
    return centroids


def landmarks_from_label_image(image: sitk.Image, what: str = "disc label image") -> Tuple[List[DiscPoint], Optional[tuple]]:
    """(discs, PMJ RAS or None) from an SCT disc label image: each value's voxel centroid, RAS mm.

    Value 50 is the PMJ; value 49 (PMG) is dropped; all other positive values are discs.
    """
    centroids = label_centroids(image, what)
    bad = [v for v in centroids if v < 1]
    if bad:
        raise UserError(f"The {what} holds negative values ({bad[0]}): give SCT disc labels (2 = C1/C2, 3 = C2/C3, ...).")
    discs = [DiscPoint(v, p) for v, p in sorted(centroids.items()) if v not in (PMG_VALUE, PMJ_VALUE)]
    return discs, centroids.get(PMJ_VALUE)


def discs_from_label_image(image: sitk.Image) -> List[DiscPoint]:
    """Disc points (value, RAS mm centroid of that value's voxels) from an SCT disc label image; 49/50 excluded."""
    return landmarks_from_label_image(image)[0]


def pmj_from_label_image(image: sitk.Image) -> tuple:
    """PMJ point (RAS mm): centroid of the voxels with value 50, or of the only label when the image has one value."""
    centroids = label_centroids(image, "PMJ label image")
    if PMJ_VALUE in centroids:
        return centroids[PMJ_VALUE]
    if len(centroids) == 1:
        return next(iter(centroids.values()))
    if not centroids:
        raise UserError("The PMJ label image is empty: mark the pontomedullary junction with one labelled voxel (value 50).")
    raise UserError(
        "The PMJ label image holds several values and none is 50: mark the pontomedullary junction with value 50."
    )


# ----------------------------------------------------------------------------------------------------- point files
def _frame(text, where: str) -> str:
    frame = str(text or "").strip().upper()
    if frame in ("RAS", "LPS"):
        return frame
    if frame in ("0",):  # Slicer's old numeric code 0 = RAS
        return "RAS"
    if frame in ("1",):
        return "LPS"
    raise UserError(f"{where}: the coordinate frame '{text}' is not RAS or LPS: state which one the positions use.")


def _to_ras(position, frame: str, where: str) -> tuple:
    # a string would iterate into its characters ("123" -> 1, 2, 3) and true/false into 1/0: neither is a position
    if not isinstance(position, (list, tuple)) or any(isinstance(v, (bool, np.bool_)) for v in position):
        shown = json.dumps(position, default=repr)[:80]
        raise UserError(f"{where}: the position {shown} is not three numbers in mm.")
    try:
        xyz = [float(v) for v in position]
    except (TypeError, ValueError):
        raise UserError(f"{where}: the position {position!r} is not three numbers in mm.") from None
    if len(xyz) != 3 or not np.all(np.isfinite(xyz)):
        raise UserError(f"{where}: the position {position!r} is not three finite numbers in mm.")
    ras = lps_to_ras(xyz) if frame == "LPS" else np.asarray(xyz)
    return tuple(float(v) for v in ras)


def _split(points: List[Tuple[int, tuple]], path: Path) -> Tuple[List[DiscPoint], Optional[tuple]]:
    discs, pmj = [], None
    for value, ras in points:
        if value == PMJ_VALUE:
            if pmj is not None:
                raise UserError(f"'{path.name}' has two PMJ points: keep one.")
            pmj = ras
        elif value != PMG_VALUE:
            if value < 1:
                raise UserError(f"'{path.name}': disc value {value} is not an SCT disc label (2 = C1/C2, 3 = C2/C3, ...).")
            discs.append(DiscPoint(value, ras))
    if not discs and pmj is None:
        raise UserError(f"'{path.name}' holds no disc point: give one point per disc, named like C3/C4.")
    return discs, pmj


def _read_text(path: Path) -> str:
    """A point file's text: UTF-8 (with or without BOM), refusing binary content and other encodings with one
    sentence (guessing Latin-1 could turn a name into another one silently)."""
    data = path.read_bytes()
    if b"\0" in data:
        raise UserError(f"'{path.name}' is not a text file (it holds binary data): give a CSV/TSV or JSON point file.")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UserError(f"'{path.name}' is not UTF-8 text (perhaps Latin-1): save it as UTF-8 and run again.") from None


def _read_table(path: Path) -> List[Tuple[int, tuple]]:
    text = _read_text(path)
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if not lines:
        raise UserError(f"'{path.name}' is empty: give a header line and one line per disc point.")
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ("\t" if "\t" in lines[0] else ",")
    reader = csv.DictReader(lines, delimiter=delimiter)
    fields = {f.strip().lower(): f for f in (reader.fieldnames or [])}
    name_col = fields.get("name") or fields.get("label") or fields.get("disc")
    value_col = fields.get("value")
    if name_col is None and value_col is None:
        raise UserError(f"'{path.name}' needs a column 'name' (like C3/C4) or 'value' (SCT disc value).")
    if all(k in fields for k in ("r", "a", "s")):
        cols, fixed_frame = [fields["r"], fields["a"], fields["s"]], "RAS"
    elif all(k in fields for k in ("l", "p", "s")):
        cols, fixed_frame = [fields["l"], fields["p"], fields["s"]], "LPS"
    elif all(k in fields for k in ("x", "y", "z")):
        cols, fixed_frame = [fields["x"], fields["y"], fields["z"]], None
        frame_col = fields.get("frame") or fields.get("coordinate_system") or fields.get("coordinatesystem")
        if frame_col is None:
            raise UserError(
                f"'{path.name}' gives x,y,z without saying their frame: add a column 'frame' (RAS or LPS) "
                f"or name the columns R,A,S or L,P,S."
            )
    else:
        raise UserError(f"'{path.name}' needs coordinate columns R,A,S or L,P,S or x,y,z (+ frame), in mm.")
    points = []
    rows = _csv_rows(reader, path)
    for n, row in enumerate(rows, start=2):
        where = f"'{path.name}' line {n}"
        label = (row.get(value_col) if value_col else None) or (row.get(name_col) if name_col else None)
        if label is None or not str(label).strip():
            raise UserError(f"{where} has no disc name or value.")
        frame = fixed_frame or _frame(row.get(frame_col), where)
        points.append((disc_value(label), _to_ras([row.get(c) for c in cols], frame, where)))
    return points


def _csv_rows(reader, path: Path) -> list:
    try:
        return list(reader)
    except csv.Error as error:
        raise UserError(f"'{path.name}' is not a valid CSV/TSV table ({error}): fix the file.") from None


def _read_json(path: Path, data) -> List[Tuple[int, tuple]]:
    if isinstance(data, dict) and "markups" in data:
        return _read_markups(path, data)
    frame = None
    if isinstance(data, dict):
        frame = data.get("coordinate_system") or data.get("coordinateSystem")
        if frame is not None and not isinstance(frame, str):
            raise UserError(f"'{path.name}': the coordinate_system {json.dumps(frame)} is not RAS or LPS: state "
                            "which one the positions use.")
        items = data.get("points", data.get("discs"))
    else:
        items = data
    if not isinstance(items, list):
        raise UserError(f"'{path.name}' is not a disc point file: expected {{\"coordinate_system\": ..., \"points\": [...]}}.")
    points = []
    for n, item in enumerate(items):
        where = f"'{path.name}' point {n + 1}"
        if not isinstance(item, dict):
            raise UserError(f"{where} is not an object with a name or value and a position.")
        label = item.get("value", item.get("name", item.get("label")))
        if label is None:
            raise UserError(f"{where} has no 'name' or 'value'.")
        if "ras" in item:
            ras = _to_ras(item["ras"], "RAS", where)
        elif "lps" in item:
            ras = _to_ras(item["lps"], "LPS", where)
        elif "position" in item:
            ras = _to_ras(item["position"], _frame(item.get("coordinate_system", frame), where), where)
        else:
            raise UserError(f"{where} has no 'position' (or 'ras' / 'lps').")
        points.append((disc_value(label), ras))
    return points


def _read_markups(path: Path, data: dict) -> List[Tuple[int, tuple]]:
    points = []
    wrong = (f"'{path.name}' is not a Slicer markups file of the expected shape ({{\"markups\": [{{\"controlPoints\": "
             "[{\"label\": ..., \"position\": [x, y, z]}]}]}): export the points again from Slicer.")
    markups = data.get("markups")
    if not isinstance(markups, list):
        raise UserError(wrong)
    for markup in markups:
        if not isinstance(markup, dict) or not isinstance(markup.get("controlPoints", []), list):
            raise UserError(wrong)
        frame = _frame(markup.get("coordinateSystem", "LPS"), f"'{path.name}'")
        for n, cp in enumerate(markup.get("controlPoints", [])):
            if not isinstance(cp, dict):
                raise UserError(wrong)
            if cp.get("positionStatus", "defined") != "defined":
                continue
            where = f"'{path.name}' control point {cp.get('label') or n + 1}"
            label = cp.get("label") or cp.get("description")
            if not label and label != 0:
                raise UserError(f"{where} has no label: name each disc point like C3/C4.")
            points.append((disc_value(label), _to_ras(cp.get("position"), frame, where)))
    return points


def read_landmarks(path: os.PathLike | str) -> Tuple[List[DiscPoint], Optional[tuple]]:
    """(discs, PMJ RAS or None) from a point file (.csv, .tsv, .json, .mrk.json; see the module docstring) or,
    for an image suffix, an SCT disc label image."""
    path = Path(path)
    name = path.name.lower()
    if any(name.endswith(s) for s in IMAGE_SUFFIXES):
        return landmarks_from_label_image(read_label_map(path, "disc label image"))
    if not path.is_file():
        raise UserError(f"The disc point file '{path}' does not exist: check the path.")
    remember_input(path)
    if name.endswith((".csv", ".tsv", ".txt")):
        points = _read_table(path)
    elif name.endswith(".json"):
        try:
            data = json.loads(_read_text(path))
        except ValueError:
            raise UserError(f"'{path.name}' is not valid JSON: give a disc point or Slicer markups file.") from None
        points = _read_json(path, data)
    else:
        raise UserError(f"'{path.name}' is not a disc point file: use .csv, .tsv, .json or .mrk.json.")
    return _split(points, path)


def read_disc_points(path: os.PathLike | str) -> List[DiscPoint]:
    """Disc points (RAS mm) from a .csv/.tsv/.json/.mrk.json file; a PMJ/PMG point in it is left out."""
    return read_landmarks(path)[0]

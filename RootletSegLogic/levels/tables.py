"""Level and pairing tables: rows, TSV/CSV text, and reading a level table back with typed values."""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path
from typing import Dict, List, Optional

from RootletSegLogic.errors import UserError
from RootletSegLogic.levels.types import LevelResult, LevelRow

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

PAIRING_COLUMNS = (
    "pairing",  # not_shifted | shifted
    "vertebral_level",
    "spinal_level",
    "vertebral_midpoint_mm",
    "spinal_midpoint_mm",
    "difference_mm",  # vertebral - spinal midpoint
    "mean_mm",
)

_FLOAT_COLUMNS = {
    "rostral_S_mm", "caudal_S_mm", "rostral_pmj_mm", "caudal_pmj_mm", "midpoint_pmj_mm", "height_mm",
    "midpoint_R_mm", "midpoint_A_mm", "midpoint_S_mm",
    "rostral_distance_mm", "caudal_distance_mm", "midpoint_distance_mm",
    "vertebral_midpoint_mm", "spinal_midpoint_mm", "difference_mm", "mean_mm",
}
_INT_COLUMNS = {"label_value", "n_voxels"}
_REQUIRED_LEVEL_COLUMNS = ("level_type", "level", "rostral_S_mm", "caudal_S_mm", "midpoint_pmj_mm", "height_mm")


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


def optional_float(value) -> Optional[float]:
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
                "rostral_S_mm": optional_float(row.rostral_S_mm),
                "caudal_S_mm": optional_float(row.caudal_S_mm),
                "rostral_pmj_mm": optional_float(row.rostral_pmj_mm),
                "caudal_pmj_mm": optional_float(row.caudal_pmj_mm),
                "midpoint_pmj_mm": optional_float(row.midpoint_pmj_mm),
                "height_mm": optional_float(row.height_mm),
                "label_value": int(row.label_value),
                "method": row.method,
                "n_voxels": int(row.n_voxels),
                "distance_reference": result.distance_reference,
                "rostral_distance_mm": optional_float(getattr(row, "rostral_distance_mm", None)),
                "caudal_distance_mm": optional_float(getattr(row, "caudal_distance_mm", None)),
                "midpoint_distance_mm": optional_float(getattr(row, "midpoint_distance_mm", None)),
                "midpoint_R_mm": optional_float(midpoint[0]),
                "midpoint_A_mm": optional_float(midpoint[1]),
                "midpoint_S_mm": optional_float(midpoint[2]),
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
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):  # "inf", "1e999": not a distance; would silently drop the subject later
            raise UserError(
                f"The level table '{path}' has '{text}' in column {column} on line {line}: "
                f"give a finite number in mm or leave the cell empty."
            ) from None
        return value
    if column in _INT_COLUMNS:
        if text == "":
            return None
        try:
            number = float(text)
            if number != int(number):
                raise ValueError(text)
            return int(number)
        except (ValueError, OverflowError):
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
    from RootletSegLogic.images.files import remember_input

    remember_input(path)
    try:
        data = path.read_bytes()
        if b"\0" in data:
            raise UnicodeDecodeError("utf-8", data, 0, 1, "binary data")
        text = data.decode("utf-8-sig")
    except (UnicodeDecodeError, OSError):
        raise UserError(f"The level table '{path}' is not a readable UTF-8 text file: give a TSV written by "
                        "'rootletseg levels'.") from None
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

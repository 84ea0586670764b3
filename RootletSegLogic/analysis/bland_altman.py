"""Bland–Altman agreement between vertebral and spinal levels over many subjects, as the RootletSeg paper does.

For each subject and each paired (vertebral, spinal) level:
    difference = vertebral midpoint - spinal midpoint   (mm; positive = the vertebral midpoint lies more caudally)
    mean       = (vertebral midpoint + spinal midpoint) / 2   (mm)
Midpoints are distances below the pontomedullary junction (PMJ) along the cord centerline (`midpoint_pmj_mm`).

Per level and over all levels, as the paper and its analysis scripts (ivadomed/model-spinal-rootlets) compute
them: n, bias = MEDIAN difference, limits of agreement = 2.5th and 97.5th percentiles of the differences (NumPy's
default linear interpolation between order statistics), Spearman's rank correlation between the SPINAL and the
VERTEBRAL midpoints (`spearman_rho`, `spearman_p`; scipy; NaN when fewer than 3 points or a constant input) and
the least-squares line vertebral = slope x spinal + intercept (`fit_slope`, `fit_intercept_mm`; NaN under 2
points). Also reported, labelled as NOT in the paper: Spearman of the differences with the means
(`spearman_rho_difference_vs_mean`, `spearman_p_difference_vs_mean`), a check for proportional bias. Pairings:
    "not_shifted": vertebral Cn with spinal Cn (n = 2..7), vertebral T1 with spinal C8;
    "shifted":     vertebral Cn with spinal C(n+1) (n = 2..7), vertebral T1 with spinal T1.
The paper has no vertebral C1 / spinal C2 pair; when disc 1 (top of C1) was given, that pair is reported as its
own row with pairing "shifted_extra" and `in_paper` = "no", and is left out of the "all" row of "shifted".

Tables without PMJ distances (a `levels` run without a PMJ) fall back, for every subject of the run, to the S axis:
midpoint = `midpoint_distance_mm` (mm below that subject's reference S plane), or -(rostral_S + caudal_S) / 2 (mm
below the plane S = 0) for tables without that column. Differences are then still meaningful (up to cord
curvature), means are not comparable between subjects, and height normalisation is refused.

Body-height normalisation (paper, group analyses): midpoint_norm = midpoint / height × median height of the
subjects analysed (heights in cm from a BIDS participants.tsv, columns `participant_id` and `height`).

Subject ids: a level table's `participant_id` column when it has one (one value for all rows); otherwise the
file name: its BIDS `sub-<label>` entity when the name starts with one ("sub-01_T2w_levels.tsv" -> "sub-01"), else
the file name without `.tsv`. Two tables with the same subject id are refused.
"""

from __future__ import annotations

import csv
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from RootletSegLogic.analysis.agreement import bland_altman
from RootletSegLogic.errors import UserError
from RootletSegLogic.levels.types import PAPER_PAIRINGS

ALL_LEVELS = "all"

STATS_COLUMNS = (
    "pairing", "vertebral_level", "spinal_level", "n", "bias_mm", "loa_lower_mm", "loa_upper_mm",
    "spearman_rho", "spearman_p", "fit_slope", "fit_intercept_mm",
    "spearman_rho_difference_vs_mean", "spearman_p_difference_vs_mean",
    "mean_difference_mm", "sd_difference_mm", "distance_reference", "normalised", "in_paper",
)
EXTRA_PAIRING = "shifted_extra"  # vertebral C1 / spinal C2: not a pair of the paper
PAPER_PAIRINGS_ONLY = {
    name: tuple(pair for pair in pairs if pair != ("C1", "C2")) for name, pairs in PAPER_PAIRINGS.items()}
ALL_PAIRINGS = dict(PAPER_PAIRINGS_ONLY, **{EXTRA_PAIRING: (("C1", "C2"),)})
POINT_COLUMNS = (
    "participant_id", "pairing", "vertebral_level", "spinal_level",
    "vertebral_midpoint_mm", "spinal_midpoint_mm", "difference_mm", "mean_mm",
)


# ------------------------------------------------------------------------------------------------ subjects
@dataclass
class SubjectLevels:
    """One subject's level midpoints (mm, same reference), from one level table."""

    participant_id: str
    source: str  # the table's path
    spinal: Dict[str, float]  # level name -> midpoint (mm)
    vertebral: Dict[str, float]
    distance_reference: str  # "pmj" | "S-axis"


def subject_id_from_path(path: os.PathLike | str) -> str:
    """BIDS `sub-<label>` at the start of the file name, else the file name without `.tsv`."""
    name = Path(path).name
    match = re.match(r"(sub-[A-Za-z0-9]+)", name)
    if match:
        return match.group(1)
    return name[:-4] if name.lower().endswith(".tsv") else name


def subject_from_rows(rows: List[dict], path: os.PathLike | str, reference: str) -> SubjectLevels:
    """Midpoints of one level table's rows (from `export.read_level_table`) in the distance `reference`."""
    ids = {str(r.get("participant_id") or "").strip() for r in rows} - {""}
    if len(ids) > 1:
        raise UserError(
            f"The level table '{path}' names several participants ({', '.join(sorted(ids))}): give one table per subject."
        )
    participant = ids.pop() if ids else subject_id_from_path(path)
    levels: Dict[str, Dict[str, float]] = {"spinal": {}, "vertebral": {}}
    for r in rows:
        if reference == "pmj":
            midpoint = r.get("midpoint_pmj_mm")
        elif r.get("midpoint_distance_mm") is not None:
            midpoint = r["midpoint_distance_mm"]
        else:
            rostral, caudal = r.get("rostral_S_mm"), r.get("caudal_S_mm")
            midpoint = None if rostral is None or caudal is None else -(rostral + caudal) / 2.0
        if midpoint is None:
            continue
        if not math.isfinite(float(midpoint)):  # would silently drop the subject from every statistic
            raise UserError(f"The level table '{path}' has a non-finite midpoint for level {r['level']}: write the "
                            "table again with 'rootletseg levels'.")
        kind = levels[r["level_type"]]
        if r["level"] in kind:
            raise UserError(
                f"The level table '{path}' lists {r['level_type']} level {r['level']} twice: give one row per level."
            )
        kind[r["level"]] = float(midpoint)
    return SubjectLevels(participant, str(path), levels["spinal"], levels["vertebral"], reference)


def table_has_pmj(rows: List[dict]) -> bool:
    """True when every row of a level table has a PMJ midpoint distance."""
    return all(r.get("midpoint_pmj_mm") is not None for r in rows)


def read_heights(path: os.PathLike | str) -> Dict[str, float]:
    """participant_id -> body height (cm) from a BIDS participants.tsv (columns `participant_id`, `height`).

    Rows with an empty or 'n/a' height are left out (a subject analysed without a height is reported by
    `group_bland_altman`). Raises UserError for a missing file, missing columns, or a height that is not a number > 0.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"The heights file '{path}' does not exist: give a participants.tsv with participant_id and height (cm).")
    data = path.read_bytes()
    try:
        if b"\0" in data:
            raise UnicodeDecodeError("utf-8", data, 0, 1, "binary data")
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UserError(f"The heights file '{path}' is not a UTF-8 text file (binary, or perhaps Latin-1): save it "
                        "as UTF-8 tab-separated text and run again.") from None
    from RootletSegLogic.images.files import remember_input

    remember_input(path)
    import io as _io

    with _io.StringIO(text, newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        header = [h.strip() for h in (reader.fieldnames or [])]
        if "participant_id" not in header or "height" not in header:
            raise UserError(
                f"The heights file '{path}' has no participant_id and height columns: "
                f"give a tab-separated participants.tsv with the height in cm."
            )
        heights = {}
        for line, raw in enumerate(reader, start=2):
            row = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}
            text = row.get("height", "")
            if text == "" or text.lower() in ("n/a", "na", "nan"):
                continue
            try:
                value = float(text)
            except ValueError:
                value = math.nan
            if not math.isfinite(value) or value <= 0:
                raise UserError(
                    f"The heights file '{path}' has height '{text}' on line {line}: give the body height in cm (> 0) or n/a."
                )
            subject = row["participant_id"]
            if subject in heights:  # taking the last one silently could normalise by the wrong height
                raise UserError(f"The heights file '{path}' gives {subject} twice (line {line} again): keep one "
                                "height per participant.")
            heights[subject] = value
    return heights


# ------------------------------------------------------------------------------------------------ group analysis
@dataclass
class GroupStats:
    """Bland–Altman over subjects: one entry per (pairing, vertebral level) plus (pairing, "all")."""

    rows: List[dict]  # keys STATS_COLUMNS (+ "result": BlandAltman)
    points: List[dict]  # keys POINT_COLUMNS: every paired midpoint used
    distance_reference: str
    normalised: bool
    reference_height_cm: Optional[float]
    subjects: List[str]
    warnings: List[str]


def group_bland_altman(subjects: Sequence[SubjectLevels], heights_cm: Optional[Dict[str, float]] = None) -> GroupStats:
    """Bland–Altman per level and over all levels for both pairings.

    With `heights_cm` (participant_id -> cm), every midpoint is first normalised by body height to the median height
    of the subjects analysed. Raises UserError when a subject has no height or the distances are not PMJ distances.
    """
    if not subjects:
        raise UserError("No level tables were given: give at least one table written by 'rootletseg levels'.")
    seen: Dict[str, str] = {}
    for s in subjects:
        if s.participant_id in seen:
            raise UserError(
                f"The tables '{seen[s.participant_id]}' and '{s.source}' are both subject '{s.participant_id}': "
                f"give each subject once (the id comes from a participant_id column or the sub-<label> file name)."
            )
        seen[s.participant_id] = s.source
    reference = subjects[0].distance_reference
    warnings: List[str] = []
    scale = {s.participant_id: 1.0 for s in subjects}
    reference_height = None
    if heights_cm is not None:
        if reference != "pmj":
            raise UserError(
                "Height normalisation needs distances from the PMJ, but some level tables have none: "
                "run 'rootletseg levels' with --pmj or leave out --heights."
            )
        missing = [s.participant_id for s in subjects if s.participant_id not in heights_cm]
        if missing:
            raise UserError(
                f"No height is given for subject(s) {', '.join(missing)}: add them to the heights file "
                f"(participant_id must match the sub-<label> of the table's name or its participant_id column)."
            )
        reference_height = float(np.median([heights_cm[s.participant_id] for s in subjects]))
        scale = {s.participant_id: reference_height / heights_cm[s.participant_id] for s in subjects}
    points = []
    for s in subjects:
        for pairing, pairs in ALL_PAIRINGS.items():
            for vertebral, spinal in pairs:
                if vertebral in s.vertebral and spinal in s.spinal:
                    v = s.vertebral[vertebral] * scale[s.participant_id]
                    p = s.spinal[spinal] * scale[s.participant_id]
                    points.append(
                        {
                            "participant_id": s.participant_id,
                            "pairing": pairing,
                            "vertebral_level": vertebral,
                            "spinal_level": spinal,
                            "vertebral_midpoint_mm": v,
                            "spinal_midpoint_mm": p,
                            "difference_mm": v - p,
                            "mean_mm": (v + p) / 2.0,
                        }
                    )
    if not points:
        raise UserError(
            "No subject has both a vertebral level and its paired spinal level: "
            "give level tables with vertebral levels (run 'rootletseg levels' with discs)."
        )
    used = list(dict.fromkeys(pt["participant_id"] for pt in points))
    left_out = [s.participant_id for s in subjects if s.participant_id not in used]
    if left_out:
        warnings.append(f"Subject(s) {', '.join(left_out)} have no vertebral level paired with a spinal level and "
                        "are left out of the statistics: check their level tables (discs given?).")
    if len(used) < 3:
        # the limits are the 2.5th / 97.5th percentiles: with one subject they equal the bias, with two they are
        # nearly the two values; either way they say nothing about agreement
        warnings.append(f"Only {len(used)} subject{'s' if len(used) > 1 else ''} contribute: the limits of agreement "
                        f"{'equal the bias' if len(used) == 1 else 'are just the extreme values'} and mean little; "
                        "give more subjects.")
    rows = []
    for pairing, pairs in ALL_PAIRINGS.items():
        groups = [(v, s, [pt for pt in points if pt["pairing"] == pairing and pt["vertebral_level"] == v]) for v, s in pairs]
        if pairing != EXTRA_PAIRING:  # the paper's summary over all levels: its own pairs only
            groups.append((ALL_LEVELS, ALL_LEVELS, [pt for pt in points if pt["pairing"] == pairing]))
        for vertebral, spinal, chosen in groups:
            if not chosen:
                continue
            result = bland_altman([c["vertebral_midpoint_mm"] for c in chosen], [c["spinal_midpoint_mm"] for c in chosen])
            rows.append(
                {
                    "pairing": pairing,
                    "vertebral_level": vertebral,
                    "spinal_level": spinal,
                    "n": result.n,
                    "bias_mm": result.bias_mm,
                    "loa_lower_mm": result.loa_lower_mm,
                    "loa_upper_mm": result.loa_upper_mm,
                    "spearman_rho": result.spearman_rho,
                    "spearman_p": result.spearman_p,
                    "fit_slope": result.fit_slope,
                    "fit_intercept_mm": result.fit_intercept_mm,
                    "spearman_rho_difference_vs_mean": result.spearman_rho_difference_vs_mean,
                    "spearman_p_difference_vs_mean": result.spearman_p_difference_vs_mean,
                    "mean_difference_mm": result.mean_difference_mm,
                    "sd_difference_mm": result.sd_difference_mm,
                    "distance_reference": reference,
                    "normalised": "height" if heights_cm is not None else "no",
                    "in_paper": "no" if pairing == EXTRA_PAIRING else "yes",
                    "result": result,
                }
            )
    if reference != "pmj":
        warnings.append(
            "Some level tables have no PMJ distances, so midpoints are taken along the S axis for all subjects: "
            "differences are valid, means are not comparable between subjects."
        )
    return GroupStats(rows, points, reference, heights_cm is not None, reference_height,
                      [s.participant_id for s in subjects], warnings)


def load_subjects(paths: Sequence[os.PathLike | str]) -> List[SubjectLevels]:
    """Read level tables (one per subject) and take the PMJ reference if all have it, else the S axis for all."""
    from RootletSegLogic.levels.tables import read_level_table

    tables = [(path, read_level_table(path)) for path in paths]
    reference = "pmj" if all(table_has_pmj(rows) for _, rows in tables) else "S-axis"
    return [subject_from_rows(rows, path, reference) for path, rows in tables]


def _cell(value, significant: bool = False) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return f"{value:.3g}" if significant else f"{value:.3f}"
    return str(value)


def stats_tsv(stats: GroupStats) -> str:
    """The Bland–Altman table (STATS_COLUMNS) as TSV text: mm and rho with 3 decimals, p with 3 significant digits,
    empty = undefined (e.g. Spearman with fewer than 3 points)."""
    lines = ["\t".join(STATS_COLUMNS)]
    lines += ["\t".join(_cell(row.get(c), c.startswith("spearman_p")) for c in STATS_COLUMNS) for row in stats.rows]
    return "\n".join(lines) + "\n"


def points_tsv(stats: GroupStats) -> str:
    """Every paired midpoint used (POINT_COLUMNS) as TSV text, 3 decimals."""
    lines = ["\t".join(POINT_COLUMNS)]
    lines += ["\t".join(_cell(row.get(c)) for c in POINT_COLUMNS) for row in stats.points]
    return "\n".join(lines) + "\n"

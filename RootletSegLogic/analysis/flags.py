"""Review flags for one subject's levels: what a person should look at in the QC report.

Each flag is {"code": short id, "text": one sentence}. The thresholds are review heuristics, not anatomy limits:
a spinal level is flagged when its height (mm, along the distance reference) is outside
`PLAUSIBLE_SPINAL_HEIGHT_MM` (adult cervical spinal levels are about 10-15 mm high in the RootletSeg cohort; the
range is wide so that only clear errors stand out).
"""

from __future__ import annotations

from typing import Dict, List, Optional

from RootletSegLogic.levels.types import SPINAL_LEVEL_NAMES

PLAUSIBLE_SPINAL_HEIGHT_MM = (3.0, 30.0)


def review_flags(levels: List[dict], rootlet_voxels: Dict[int, int], landmarks_source: str, method: str,
                 distance_reference: str) -> List[dict]:
    """Flags for one subject.

    levels: rows {"level_type", "level", "label_value", "midpoint_mm", "height_mm", "n_voxels"} (mm);
    rootlet_voxels: {level value 2..9: rootlet voxels of that value in the label map};
    landmarks_source: "derivatives" or "automatic"; method: the rows' method ("rootlets-only" = no cord);
    distance_reference: "pmj" or "S-axis".
    """
    flags: List[dict] = []
    spinal = sorted((r for r in levels if r["level_type"] == "spinal"), key=lambda r: r["label_value"])
    present = [r["label_value"] for r in spinal]
    if not spinal:
        flags.append({"code": "no-spinal-levels", "text": "No spinal level was found."})
    else:
        missing = [SPINAL_LEVEL_NAMES[v] for v in range(present[0], present[-1] + 1) if v not in present]
        if missing:
            flags.append({"code": "missing-levels",
                          "text": f"Spinal level(s) {', '.join(missing)} missing between the levels found."})
    mids = [r["midpoint_mm"] for r in spinal]
    if any(b < a for a, b in zip(mids, mids[1:])):
        flags.append({"code": "levels-out-of-order",
                      "text": "Spinal level midpoints are not in rostro-caudal order."})
    low, high = PLAUSIBLE_SPINAL_HEIGHT_MM
    odd = [f"{r['level']} ({r['height_mm']:.1f} mm)" for r in spinal if not (low <= r["height_mm"] <= high)]
    if odd:
        flags.append({"code": "implausible-height",
                      "text": f"Spinal level height outside {low:g}-{high:g} mm: {', '.join(odd)}."})
    used = {r["label_value"]: r.get("n_voxels", 0) for r in spinal}
    far = [SPINAL_LEVEL_NAMES[v] for v, n in sorted(rootlet_voxels.items()) if n > 0 and 2 <= v <= 9 and not used.get(v)]
    if far and method != "rootlets-only":
        flags.append({"code": "rootlets-far-from-cord",
                      "text": f"Rootlets of {', '.join(far)} lie farther than 3 voxels from the cord mask."})
    vertebral = [r for r in levels if r["level_type"] == "vertebral"]
    if not vertebral:
        flags.append({"code": "no-vertebral-levels", "text": "No vertebral level (discs missing or fewer than two)."})
    if method == "rootlets-only":
        flags.append({"code": "no-cord", "text": "No cord mask: levels from all rootlet voxels, not the paper's method."})
    if distance_reference != "pmj":
        flags.append({"code": "no-pmj", "text": "No PMJ: distances along the S axis, not from the PMJ."})
    if landmarks_source == "automatic":
        flags.append({"code": "automatic-landmarks", "text": "Cord and/or discs were detected automatically."})
    return flags


def level_summary_rows(result) -> List[dict]:
    """Rows of a LevelResult for the report and the flags: mm in the result's distance reference."""
    return [{
        "level_type": row.level_type,
        "level": row.level,
        "label_value": int(row.label_value),
        "rostral_mm": _num(row.rostral_distance_mm),
        "caudal_mm": _num(row.caudal_distance_mm),
        "midpoint_mm": _num(row.midpoint_distance_mm),
        "height_mm": _num(row.height_mm),
        "n_voxels": int(row.n_voxels),
    } for row in result.rows]


def _num(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(float(value), 3)

"""Cohort summaries from the subjects' outcomes: the group Bland–Altman per image suffix and the HTML QC report.

Group statistics (`analysis.bland_altman`, as the paper computes them) use every done or skipped image of one
suffix (one contrast) that has spinal and vertebral levels: `<out>/group/<suffix>/bland_altman.tsv`,
`bland_altman_points.tsv`, `bland_altman.png/.svg`. Subject ids are `sub-<label>[_ses-<label>]`. Midpoints are the
level tables' distances (from the PMJ when every subject has one, else along each subject's S axis, as
`rootletseg stats` does). These files and `<out>/rootletseg_qc_report.html` are the batch's own summaries: each
run replaces them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, List

from RootletSegLogic.cohort.records import Outcome, write_text_replacing
from RootletSegLogic.errors import UserError

REPORT_FILE = "rootletseg_qc_report.html"
GROUP_FOLDER = "group"


def _subject_levels(image, outcome: Outcome):
    from RootletSegLogic.analysis.bland_altman import SubjectLevels

    rows = outcome.summary.get("levels") or []
    spinal = {r["level"]: r["midpoint_mm"] for r in rows if r["level_type"] == "spinal" and r["midpoint_mm"] is not None}
    vertebral = {r["level"]: r["midpoint_mm"] for r in rows
                 if r["level_type"] == "vertebral" and r["midpoint_mm"] is not None}
    return SubjectLevels(image.participant_id, image.relative, spinal, vertebral,
                         outcome.summary.get("distance_reference", "S-axis"))


def group_statistics(out_root: Path, images, outcomes: Dict[str, Outcome],
                     note: Callable[[str], None]) -> Dict[str, str]:
    """Write the group Bland–Altman of each suffix; returns {output name: path}. A suffix without any subject
    with paired levels is noted (a warning), not an error."""
    from RootletSegLogic.analysis.bland_altman import group_bland_altman, points_tsv, stats_tsv
    from RootletSegLogic.analysis.figures import bland_altman_figure

    written: Dict[str, str] = {}
    for suffix in sorted({image.suffix for image in images}):
        subjects = [_subject_levels(image, outcomes[image.relative]) for image in images
                    if image.suffix == suffix and image.relative in outcomes
                    and outcomes[image.relative].status in ("done", "skipped")]
        subjects = [s for s in subjects if s.spinal and s.vertebral]
        if not subjects:
            note(f"No {suffix} image has both spinal and vertebral levels: no group Bland–Altman for {suffix}.")
            continue
        reference = "pmj" if all(s.distance_reference == "pmj" for s in subjects) else "S-axis"
        for subject in subjects:
            subject.distance_reference = reference
        try:
            stats = group_bland_altman(subjects)
        except UserError as error:
            note(f"No group Bland–Altman for {suffix}: {error}")
            continue
        for message in stats.warnings:
            note(message)
        folder = out_root / GROUP_FOLDER / suffix
        folder.mkdir(parents=True, exist_ok=True)
        write_text_replacing(folder / "bland_altman.tsv", stats_tsv(stats))
        write_text_replacing(folder / "bland_altman_points.tsv", points_tsv(stats))
        png, _svg = bland_altman_figure(stats, folder / "bland_altman", overwrite=True,
                                        title=f"{suffix}: vertebral vs spinal level midpoints (n = {len(subjects)})")
        written[f"group_{suffix}"] = str(folder / "bland_altman.tsv")
        written[f"group_{suffix}_figure"] = str(png)
    return written


def report_entries(images, outcomes: Dict[str, Outcome]) -> List[dict]:
    """One entry per image for `analysis.report.qc_report_html`; figure paths relative to the output root."""
    entries = []
    for image in images:
        outcome = outcomes.get(image.relative) or Outcome(image.relative, "not-run", "the batch stopped first")
        figures = {name: f"{image.folder}/{outcome.outputs[f'figure_{name}']}" for name in ("qc_sagittal", "level_chart")
                   if f"figure_{name}" in outcome.outputs}
        entries.append({
            "participant_id": image.participant_id,
            "image": image.relative,
            "suffix": image.suffix,
            "status": outcome.status,
            "reason": outcome.reason,
            "seconds": outcome.seconds,
            "flags": outcome.summary.get("flags", []),
            "levels": outcome.summary.get("levels", []),
            "warnings": outcome.summary.get("warnings", []),
            "landmarks": outcome.summary.get("landmarks", image.landmarks.source),
            "figures": figures,
        })
    return entries


def write_group_outputs(out_root: Path, images, outcomes: Dict[str, Outcome],
                        note: Callable[[str], None]) -> Dict[str, str]:
    """The group statistics and the QC report (which links them); returns {output name: path}."""
    from RootletSegLogic.analysis.report import qc_report_html

    written = group_statistics(out_root, images, outcomes, note)
    group_links = {name: str(Path(path).relative_to(out_root).as_posix()) for name, path in written.items()}
    html = qc_report_html(report_entries(images, outcomes), title=f"RootletSeg QC: {out_root.name}",
                          group_links=group_links)
    write_text_replacing(out_root / REPORT_FILE, html)
    written["report"] = str(out_root / REPORT_FILE)
    return written

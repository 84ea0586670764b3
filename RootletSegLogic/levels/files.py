"""Levels from files to files: the workflow shared by `rootletseg levels`, `segment --cord ...` and `demo`.

Reads the rootlet label map, the optional cord mask (same grid as the rootlets), disc labels or disc points and
PMJ (any grid: only their world positions are used), computes the levels (`compute_levels`) and writes the
requested outputs all-or-nothing: level table TSV, planning JSON, Slicer markups, pairings TSV, spinal-level
label image.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from RootletSegLogic import __version__
from RootletSegLogic.errors import UserError
from RootletSegLogic.images.files import absolute_path
from RootletSegLogic.progress import ProgressCallback, no_progress


@dataclass
class LevelInputs:
    """Input files: rootlets (required), cord mask, disc label image or disc point file, PMJ label image."""

    rootlets: Path
    cord: Optional[Path] = None
    discs: Optional[Path] = None
    disc_points: Optional[Path] = None
    pmj: Optional[Path] = None

    def items(self) -> List[Tuple[str, Path]]:
        return [(f.name, Path(getattr(self, f.name))) for f in fields(self) if getattr(self, f.name)]


@dataclass
class LevelOutputs:
    """Output files; `table` is always written, the others when set."""

    table: Path
    planning_json: Optional[Path] = None
    markups: Optional[Path] = None
    pairings: Optional[Path] = None
    label_image: Optional[Path] = None

    def items(self) -> List[Tuple[str, Path]]:
        return [(f.name, Path(getattr(self, f.name))) for f in fields(self) if getattr(self, f.name)]


def default_level_outputs(folder: Path, stem: str, with_label_image: bool) -> LevelOutputs:
    """`<stem>_levels.tsv`, `<stem>_levels.json`, `<stem>_levels.mrk.json`, `<stem>level_pairings.tsv` and, with a
    cord mask, `<stem>_levels.nii.gz` in `folder`."""
    folder = Path(folder)
    return LevelOutputs(
        table=folder / f"{stem}_levels.tsv",
        planning_json=folder / f"{stem}_levels.json",
        markups=folder / f"{stem}_levels.mrk.json",
        pairings=folder / f"{stem}level_pairings.tsv",
        label_image=folder / f"{stem}_levels.nii.gz" if with_label_image else None,
    )


def check_level_request(inputs: LevelInputs, outputs: LevelOutputs, overwrite: bool,
                        rootlets_pending: bool = False) -> None:
    """Fail before any work: input files must exist (the rootlets too, unless `rootlets_pending`: still to be
    segmented), outputs must be writable, a label image needs a cord."""
    from RootletSegLogic.images.atomic import check_outputs

    if inputs.discs and inputs.disc_points:
        raise UserError("Give the discs either as a label image or as a point file, not both.")
    if outputs.label_image and not inputs.cord:
        raise UserError("The spinal level label image needs --cord: it marks cord voxels with their level.")
    for name, path in inputs.items():
        if rootlets_pending and name == "rootlets":
            continue
        if not path.exists():
            raise UserError(f"The {name.replace('_', ' ')} file '{path}' does not exist: check the path.")
    check_outputs([path for _, path in outputs.items()], overwrite)


def compute_levels_from_files(inputs: LevelInputs, method: str = "paper", progress: ProgressCallback = no_progress):
    """Read the inputs and compute the levels. Returns (LevelResult, rootlets image, cord image or None)."""
    from RootletSegLogic.images.reading import read_label_map
    from RootletSegLogic.levels.discs import (
        landmarks_from_label_image,
        pmj_from_label_image,
        read_landmarks,
    )
    from RootletSegLogic.levels.method import compute_levels

    rootlets = read_label_map(inputs.rootlets, "rootlet segmentation")
    cord = read_label_map(inputs.cord, "spinal cord mask") if inputs.cord else None
    disc_points, pmj = [], None
    if inputs.discs:
        disc_image = read_label_map(inputs.discs, "disc label image")
        disc_points, pmj = landmarks_from_label_image(disc_image)
    elif inputs.disc_points:
        disc_points, pmj = read_landmarks(inputs.disc_points)
    if inputs.pmj:
        pmj = pmj_from_label_image(read_label_map(inputs.pmj, "PMJ label image"))
    result = compute_levels(rootlets, cord, disc_points, pmj, method=method, progress=progress)
    return result, rootlets, cord


def provenance_for(inputs: LevelInputs, method: str, extra: Optional[dict] = None) -> dict:
    """Input paths and sha256s, method, software and version (plus `extra`, e.g. the model that segmented)."""
    from RootletSegLogic.images.files import file_sha256

    record = {
        "inputs": {name: {"path": str(absolute_path(path)), "sha256": file_sha256(path)} for name, path in inputs.items()},
        "method": method,
        "software": "rootletseg",
        "software_version": __version__,
    }
    record.update(extra or {})
    return record


def write_level_files(result, outputs: LevelOutputs, rootlets, cord, overwrite: bool = False) -> Dict[str, str]:
    """Write every requested output together or not at all; returns {name: absolute path}."""
    import SimpleITK as sitk

    from RootletSegLogic.images.atomic import atomic_outputs
    from RootletSegLogic.levels.entry_zone import spinal_level_label_image
    from RootletSegLogic.levels.planning import write_level_outputs

    label_image = spinal_level_label_image(rootlets, cord, result) if outputs.label_image else None
    named = outputs.items()
    with atomic_outputs([path for _, path in named], overwrite) as temporaries:
        tmp = {name: path for (name, _), path in zip(named, temporaries)}
        if label_image is not None:
            sitk.WriteImage(label_image, str(tmp["label_image"]), True)
        write_level_outputs(
            result,
            tsv_path=tmp["table"],
            json_path=tmp.get("planning_json"),
            markups_path=tmp.get("markups"),
            pairings_path=tmp.get("pairings"),
            overwrite=True,  # only our own temporary files are replaced; the user's files were checked above
            provenance=result.provenance,
        )
    return {name: str(absolute_path(path)) for name, path in named}


def levels_from_files_to_files(inputs: LevelInputs, outputs: LevelOutputs, method: str = "paper",
                               overwrite: bool = False, provenance_extra: Optional[dict] = None,
                               progress: ProgressCallback = no_progress, warn=None) -> Tuple[object, Dict[str, str]]:
    """The whole file workflow: check, compute, report warnings through `warn`, write. Returns (result, outputs)."""
    check_level_request(inputs, outputs, overwrite)
    result, rootlets, cord = compute_levels_from_files(inputs, method, progress)
    result.provenance = provenance_for(inputs, method, provenance_extra)
    for warning in result.warnings:
        (warn or (lambda _message: None))(warning)
    return result, write_level_files(result, outputs, rootlets, cord, overwrite)

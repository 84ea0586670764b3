"""Levels from files to files: the workflow shared by `rootletseg levels`, `segment --cord ...` and `demo`.

Three steps, so that a caller holding some inputs in memory (the segment workflow holds the label map it just
made) neither writes nor re-reads them:

1. `read_level_inputs`: decode each input file once -- the rootlet label map, the optional cord mask (same grid
   as the rootlets), disc labels or disc points and PMJ (any grid: only their world positions are used).
2. `compute_level_data`: the levels from the decoded inputs (`compute_levels`), nothing read or written.
3. `write_level_temporaries` (into paths the caller made with `images.atomic.atomic_outputs`, so the level
   outputs can join a larger all-or-nothing set) or `write_level_files` (their own set): level table TSV,
   planning JSON, Slicer markups, pairings TSV, spinal-level label image.

Output names: `RootletSegLogic.naming`. Provenance shape: `RootletSegLogic.provenance`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from RootletSegLogic.errors import UserError
from RootletSegLogic.images.files import absolute_path
from RootletSegLogic.progress import ProgressCallback, no_progress
from RootletSegLogic.provenance import FileRecords, level_provenance


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


@dataclass
class LevelData:
    """Decoded level inputs: images in their own physical space (LPS mm), disc points and PMJ in RAS mm."""

    rootlets: object  # sitk.Image label map, 2 = C2 ... 9 = T1
    cord: Optional[object] = None  # sitk.Image mask on the rootlets' grid, or None
    disc_points: Sequence = ()  # levels.types.DiscPoint list
    pmj: Optional[object] = None  # RAS mm, or None


def read_landmark_inputs(inputs: LevelInputs) -> LevelData:
    """Decode the cord mask, discs and PMJ (each file once), not the rootlets: `rootlets` is left None for a
    caller that makes the label map itself (the segment workflow reads these before its long inference, so a bad
    file fails first)."""
    from RootletSegLogic.images.reading import read_label_map
    from RootletSegLogic.levels.discs import (
        landmarks_from_label_image,
        pmj_from_label_image,
        read_landmarks,
    )

    cord = read_label_map(inputs.cord, "spinal cord mask") if inputs.cord else None
    disc_points, pmj = [], None
    if inputs.discs:
        disc_points, pmj = landmarks_from_label_image(read_label_map(inputs.discs, "disc label image"))
    elif inputs.disc_points:
        disc_points, pmj = read_landmarks(inputs.disc_points)
    if inputs.pmj:
        pmj = pmj_from_label_image(read_label_map(inputs.pmj, "PMJ label image"))
    return LevelData(None, cord, disc_points, pmj)


def read_level_inputs(inputs: LevelInputs) -> LevelData:
    """Decode every input file once: the rootlet label map, then the landmarks (`read_landmark_inputs`)."""
    from RootletSegLogic.images.reading import read_label_map

    rootlets = read_label_map(inputs.rootlets, "rootlet segmentation")
    data = read_landmark_inputs(inputs)
    data.rootlets = rootlets
    return data


def compute_level_data(data: LevelData, method: str = "paper", progress: ProgressCallback = no_progress,
                       distance: str = "pmj"):
    """The levels (`levels.method.compute_levels`: `method`, `distance` "pmj" or "sct") of decoded inputs; nothing
    is read or written."""
    from RootletSegLogic.levels.method import compute_levels

    return compute_levels(data.rootlets, data.cord, data.disc_points, data.pmj, method=method, progress=progress,
                          distance=distance)


def provenance_for(inputs: LevelInputs, method: str, extra: Optional[dict] = None,
                   records: Optional[FileRecords] = None, model: Optional[dict] = None,
                   distance: str = "pmj") -> dict:
    """Input records (`provenance.FileRecords`: path + sha256, each file hashed once per `records`), method,
    software and version, the model record when known (`provenance.model_record`), plus `extra`. SCT-compatible
    distances are recorded (`"distance": "sct"`); the default adds nothing, so its outputs stay as they were."""
    record = level_provenance((records or FileRecords()).records(inputs.items()), method, model)
    if distance != "pmj":
        record["distance"] = distance
    record.update(extra or {})
    return record


def write_level_temporaries(result, temporaries: Dict[str, Path], rootlets, cord) -> None:
    """Write the level outputs into `temporaries` ({LevelOutputs field: path}), paths the caller got from
    `images.atomic.atomic_outputs`, which renames them onto the outputs or removes them, all together."""
    import SimpleITK as sitk

    from RootletSegLogic.levels.entry_zone import spinal_level_label_image
    from RootletSegLogic.levels.planning import write_level_outputs

    if temporaries.get("label_image"):
        sitk.WriteImage(spinal_level_label_image(rootlets, cord, result), str(temporaries["label_image"]), True)
    write_level_outputs(
        result,
        tsv_path=temporaries["table"],
        json_path=temporaries.get("planning_json"),
        markups_path=temporaries.get("markups"),
        pairings_path=temporaries.get("pairings"),
        overwrite=True,  # only our own temporary files are replaced; the user's files were checked before
        provenance=result.provenance,
    )


def write_level_files(result, outputs: LevelOutputs, rootlets, cord, overwrite: bool = False) -> Dict[str, str]:
    """Write every requested output together or not at all; returns {name: absolute path}."""
    from RootletSegLogic.images.atomic import atomic_outputs

    named = outputs.items()
    with atomic_outputs([path for _, path in named], overwrite) as temporaries:
        write_level_temporaries(result, {name: tmp for (name, _), tmp in zip(named, temporaries)}, rootlets, cord)
    return {name: str(absolute_path(path)) for name, path in named}


def levels_from_files_to_files(inputs: LevelInputs, outputs: LevelOutputs, method: str = "paper",
                               overwrite: bool = False, provenance_extra: Optional[dict] = None,
                               progress: ProgressCallback = no_progress, warn=None,
                               model: Optional[dict] = None,
                               records: Optional[FileRecords] = None,
                               distance: str = "pmj") -> Tuple[object, Dict[str, str]]:
    """The whole file workflow: check, read each input once, compute, report warnings through `warn`, write.
    `model`: the model record of the segmentation (`provenance.model_record`), when known. `distance`: "pmj"
    (default) or "sct" (`levels.method.compute_levels`). Returns (result, {output name: absolute path})."""
    check_level_request(inputs, outputs, overwrite)
    data = read_level_inputs(inputs)
    result = compute_level_data(data, method, progress, distance)
    result.provenance = provenance_for(inputs, method, provenance_extra, records, model, distance)
    for warning in result.warnings:
        (warn or (lambda _message: None))(warning)
    return result, write_level_files(result, outputs, data.rootlets, data.cord, overwrite)

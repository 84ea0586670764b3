"""The panel's exports: one file of a kind (label map, .seg.nrrd, level table TSV/CSV, planning JSON, markups) with
one provenance, the file names proposed from the input volume's name, and "Export all" into a folder (every target
checked before anything is written). The writers are the CLI's (`slicer/session.export_*`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List

from RootletSegLogic.errors import UserError
from RootletSegLogic.slicer import session as panel
from RootletSegLogic.slicer.loaded_result import run_model_record
from RootletSegLogic.slicer.panel_state import EXPORT_ALL_KINDS, LEVEL_EXPORT_KINDS


def choice_value(choice) -> str:
    """A parameter node's enum choice as its value (a plain string stays as it is)."""
    return getattr(choice, "value", choice)


def export_provenance(params) -> dict:
    """One provenance for every level export: the model record from the segmentation's sidecar (kept on the
    segmentation node when the result was loaded), the contrast and the level method."""
    from RootletSegLogic.provenance import level_provenance

    p = params
    model = run_model_record(p.outputSegmentation)
    inputs = {"volume": {"node": p.inputVolume.GetName() if p.inputVolume is not None else ""}}
    record = level_provenance(inputs, choice_value(p.levelMethod), model)
    record["contrast"] = choice_value(p.contrast)
    return record


def export_output(scene, params, level_result, kind: str, path, overwrite: bool = False) -> Path:
    """Write one export to `path` (the suffix of `kind` must already be on it: see `session.export_path`).
    Level exports are refused when there is no current level result."""
    p = params
    if kind == "labelmap":
        return panel.export_label_map(p.outputSegmentation, p.inputVolume, path, overwrite=overwrite)
    if kind == "segmentation":
        return panel.export_segmentation(p.outputSegmentation, path, overwrite=overwrite)
    if kind not in LEVEL_EXPORT_KINDS:
        raise ValueError(f"unknown export kind {kind!r}")
    if level_result is None:
        raise UserError("There is no current level result to export: update the levels first.")
    written = panel.export_level_outputs(level_result, kind, path, overwrite=overwrite,
                                         provenance=export_provenance(params))
    if kind == "markups":
        from RootletSegLogic.slicer.level_nodes import level_bound_markups

        level_bound_markups(scene, level_result)
    return written


def default_export_name(params, kind: str) -> str:
    """The file name of export `kind` made from the input volume's name (what the save dialog proposes)."""
    name = params.inputVolume.GetName() if params.inputVolume is not None else "rootlets"
    return panel.export_filename(name, kind)


def export_all_paths(params, has_level_result: bool, folder) -> Dict[str, Path]:
    """The files "Export all" writes into `folder`, named after the input volume."""
    kinds = EXPORT_ALL_KINDS if has_level_result else EXPORT_ALL_KINDS[:2]
    return {kind: Path(folder) / default_export_name(params, kind) for kind in kinds}


def existing_export_all_paths(params, has_level_result: bool, folder) -> List[Path]:
    """The files of "Export all" into `folder` that exist already (replacing them needs a confirmation)."""
    return [path for path in export_all_paths(params, has_level_result, folder).values() if path.exists()]


def export_all(scene, params, level_result, folder, overwrite: bool = False) -> Dict[str, Path]:
    """Label map, .seg.nrrd and (with a level result) TSV, CSV, planning JSON and markups into `folder`.
    Checks every target first: nothing is written when one exists and `overwrite` is False."""
    from RootletSegLogic.images.atomic import check_outputs

    if params.outputSegmentation is None:
        raise UserError("There are no level segments to export: run the segmentation first.")
    paths = export_all_paths(params, level_result is not None, folder)
    check_outputs(paths.values(), overwrite)
    return {kind: export_output(scene, params, level_result, kind, path, overwrite=overwrite)
            for kind, path in paths.items()}

"""The whole job in one command (`rootletseg run`): landmarks -> rootlets -> levels -> tables, planning JSON,
markups, figures, written as one all-or-nothing set.

1. Checks that need no voxels: output names (`naming`) and existence, the given landmark files exist, a given cord
   mask is on the image grid (headers), device and threads.
2. Decode the image and each given landmark file once; resolve both models (a missing, damaged or wrong landmark
   model fails here, before any inference) and load the landmark model when something is to be found. The models
   come from a `pipeline.models.LoadedModels`: the caller's (a batch worker keeps one for all its images, so each
   network is built once per worker), else one made for this image and freed as soon as it is used.
3. Landmarks (`segmentation.landmark_inference`): the cord when not given, the discs when neither --discs nor
   --disc-points is given. The PMJ is never found: it stays a user point; without it distances run along S and the
   outputs say so.
4. Rootlets (`predictor.Segmenter`, through `segmentation.workflow.segment_in_roi`): the network runs on the
   cord's box (given or found) dilated by `roi_margin_mm`, unless `crop_to_cord` is False; the label map is put back
   on exactly the input grid; the sidecar records the box and where the cord came from.
5. Levels in memory (`levels.files.compute_level_data`), with the disc points read from the disc label image made
   in step 3 by the reader `rootletseg levels --discs` uses, so the table equals that of `levels` on the files.
6. Figures (level chart, sagittal QC) drawn into a scratch folder, then everything is committed together.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Union

import SimpleITK as sitk

from RootletSegLogic import naming
from RootletSegLogic.errors import UserError
from RootletSegLogic.images.atomic import atomic_outputs, check_outputs
from RootletSegLogic.images.files import absolute_path
from RootletSegLogic.images.grid import check_same_grid
from RootletSegLogic.images.header import read_header
from RootletSegLogic.images.reading import read_image
from RootletSegLogic.levels.files import (
    LevelData,
    LevelInputs,
    compute_level_data,
    provenance_for,
    read_landmark_inputs,
    write_level_temporaries,
)
from RootletSegLogic.pipeline.landmarks import write_landmark_temporaries
from RootletSegLogic.pipeline.models import DEFAULT_MODEL, LoadedModels
from RootletSegLogic.progress import ProgressCallback, ProgressEvent, no_progress
from RootletSegLogic.provenance import FileRecords
from RootletSegLogic.segmentation.registry import DEFAULT_LANDMARK_MODEL

PathArg = Optional[Union[str, os.PathLike]]
NO_PMJ_NOTE = "No PMJ was given: level distances run along the superior-inferior axis, not from the PMJ."


@dataclass
class PipelineRun:
    """What one run made: {output name: absolute path}, the LevelResult, the found Landmarks (None when both cord
    and discs were given) and the warnings."""

    outputs: Dict[str, str]
    levels: object
    landmarks: Optional[object] = None
    warnings: List[str] = field(default_factory=list)


def planned_outputs(input_path: Path, out_dir: Path, find_cord: bool, find_discs: bool) -> Dict[str, Path]:
    """{output name: path} a run writes into `out_dir` (landmark files only for what is found)."""
    stem = naming.image_stem(input_path)
    segmentation, sidecar = naming.segment_outputs(out_dir / f"{stem}.nii.gz", None)
    outputs: Dict[str, Path] = {}
    if find_cord or find_discs:
        landmark = naming.landmark_paths(input_path, out_dir / stem)
        outputs.update({f"landmarks_{name}": path for name, path in landmark.items()
                        if name == "sidecar" or (name == "cord" and find_cord) or (name == "discs" and find_discs)})
    outputs.update({"segmentation": segmentation, "sidecar": sidecar})
    outputs.update({f"levels_{name}": path
                    for name, path in naming.level_paths_for_segmentation(segmentation, True).items()})
    for name, base in naming.run_figure_bases(out_dir, stem).items():
        png, svg = naming.figure_paths(base)
        outputs[f"figure_{name}"] = png
        outputs[f"figure_{name}_svg"] = svg
    return outputs


def run_pipeline(input_path: Union[str, os.PathLike], out_dir: PathArg = None, model=DEFAULT_MODEL,
                 landmark_model=DEFAULT_LANDMARK_MODEL, cord: PathArg = None, discs: PathArg = None,
                 disc_points: PathArg = None, pmj: PathArg = None, device: str = "auto",
                 threads: Optional[int] = None, overwrite: bool = False, method: str = "paper",
                 progress: Optional[ProgressCallback] = None, warn=None, title: Optional[str] = None,
                 backend: str = "auto", roi_margin_mm: Optional[float] = None,
                 crop_to_cord: bool = True, distance: str = "pmj",
                 models: Optional[LoadedModels] = None) -> PipelineRun:
    """Landmarks (what is not given), rootlets, levels and figures of one image file (see the module docstring).

    `out_dir` None: the input's folder. Outputs are named after the input's stem (`naming`); existing ones are an
    error unless `overwrite`, checked before any work. `method` and `distance` as `levels.method.compute_levels`
    ("sct" needs `pmj`: the PMJ is never found). `models`: networks already loaded (`LoadedModels`, reused and kept
    loaded); it then stands for `model`, `landmark_model`, `device`, `threads` and `backend`, which are not used.
    Returns a PipelineRun."""
    from RootletSegLogic.analysis.figures import level_chart
    from RootletSegLogic.analysis.qc_figure import sagittal_qc
    from RootletSegLogic.levels.discs import landmarks_from_label_image
    from RootletSegLogic.levels.method import DISTANCE_MODES, GAP_METHODS
    from RootletSegLogic.segmentation.landmark_inference import build_landmark_sidecar
    from RootletSegLogic.segmentation.roi import DEFAULT_ROI_MARGIN_MM, check_margin
    from RootletSegLogic.segmentation.sidecar import build_sidecar
    from RootletSegLogic.segmentation.workflow import segment_in_roi

    progress = progress or no_progress
    warnings: List[str] = []

    def warn_user(message: str) -> None:
        warnings.append(message)
        (warn or (lambda _m: None))(message)

    # 1. checks without voxels
    input_path = Path(input_path)
    image_header = read_header(input_path, "image")
    out_dir = absolute_path(out_dir) if out_dir is not None else absolute_path(input_path).parent
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"The output folder '{out_dir}' is a file: give a folder.")
    find_cord, find_discs = cord is None, discs is None and disc_points is None
    outputs = planned_outputs(input_path, out_dir, find_cord, find_discs)
    given = LevelInputs(outputs["segmentation"], *(Path(p) if p else None for p in (cord, discs, disc_points, pmj)))
    _check_given(given)
    inputs = [input_path] + [path for name, path in given.items() if name != "rootlets"]
    if out_dir.is_dir():
        check_outputs(list(outputs.values()), overwrite, inputs=inputs)
    if cord is not None:
        check_same_grid(read_header(Path(cord), "spinal cord mask"), image_header, what="spinal cord mask",
                        reference_what="input image")
    _check_levels_request(method, distance, pmj, GAP_METHODS, DISTANCE_MODES)  # known before the long work
    roi_margin_mm = check_margin(DEFAULT_ROI_MARGIN_MM if roi_margin_mm is None else roi_margin_mm)
    own_models = models is None  # ours: each network is freed once used (memory), as no other image needs it
    if own_models:
        models = LoadedModels(model, landmark_model, device, threads, backend)  # threads, device, backend checked

    # 2. decode once; resolve the models before any inference
    image = read_image(input_path)
    landmarks_given = read_landmark_inputs(given)
    if find_cord or find_discs:
        models.landmark_folder(progress, warn_user)
    rootlet_folder = models.rootlet_folder(progress, warn_user)
    records = FileRecords()

    # 3. landmarks
    found, landmark_sidecar = None, None
    if find_cord or find_discs:
        detector = models.landmark_detector(progress, warn_user)
        found = detector.detect(image, progress)
        for message in found.warnings:
            warn_user(message)
        landmark_outputs = {name: outputs[f"landmarks_{name}"] for name in ("cord", "discs", "sidecar")
                            if f"landmarks_{name}" in outputs}
        landmark_sidecar = build_landmark_sidecar(input_path, landmark_outputs, image, detector, found, records)
        if not find_cord:
            landmark_sidecar["landmarks"]["cord_note"] = "the cord was given (--cord); the found cord is not used"
        if not find_discs:
            landmark_sidecar["landmarks"]["discs_note"] = "the discs were given; the found discs are not used"
        del detector
        if own_models:
            models.release("landmark_detector")  # free the landmark network before the rootlet network loads
    cord_image = landmarks_given.cord if not find_cord else found.cord
    disc_list = landmarks_given.disc_points
    if find_discs:
        disc_list, _ = landmarks_from_label_image(found.discs, "found disc label image")
    if landmarks_given.pmj is None:
        warn_user(NO_PMJ_NOTE)

    # 4. rootlets
    segmenter = models.segmenter(progress, warn_user)
    records.know(segmenter.checkpoint_sha256)  # hashed when loaded: the sidecar need not read them again
    labels, roi = segment_in_roi(segmenter, image, cord_image, roi_margin_mm, crop_to_cord, progress)
    if cord_image is not None:
        roi["cord"] = str(absolute_path(cord)) if not find_cord else "found by the landmark model (landmarks_cord)"
    sidecar = build_sidecar(input_path, outputs["segmentation"], image, rootlet_folder, segmenter, labels, records,
                            roi=roi)
    del segmenter
    if own_models:
        models.release("segmenter")

    # 5. levels in memory
    result = compute_level_data(LevelData(labels, cord_image, disc_list, landmarks_given.pmj), method, progress,
                                distance)
    records.mark_written(outputs["segmentation"])
    for name in ("cord", "discs"):
        if f"landmarks_{name}" in outputs:
            records.mark_written(outputs[f"landmarks_{name}"])
    level_inputs = LevelInputs(outputs["segmentation"],
                               outputs.get("landmarks_cord", given.cord), outputs.get("landmarks_discs", given.discs),
                               given.disc_points, given.pmj)
    result.provenance = provenance_for(level_inputs, method, records=records, model=sidecar["model"],
                                       extra=_landmark_provenance(found, landmark_sidecar), distance=distance)
    for message in result.warnings:
        warn_user(message)

    # 6. figures into scratch, then one set
    progress(ProgressEvent("figures", 0, 2, "level chart, sagittal QC"))
    out_dir_created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(prefix=".rootletseg-run-", dir=out_dir) as scratch:
            stem = naming.image_stem(input_path)
            chart = level_chart(result, Path(scratch) / "level_chart", overwrite=True,
                                title=title or f"{stem}: spinal vs vertebral levels")
            qc = sagittal_qc(image, labels, cord_image, disc_list, result, out_base=Path(scratch) / "qc_sagittal",
                             overwrite=True, title=title or f"{stem}: rootlets, cord, discs and level bounds")
            progress(ProgressEvent("figures", 2, 2, "done"))
            names = list(outputs)
            with atomic_outputs([outputs[n] for n in names], overwrite, inputs=inputs) as temporaries:
                tmp = dict(zip(names, temporaries))
                if found is not None:
                    write_landmark_temporaries(found, landmark_sidecar, {}, overwrite, temporaries={
                        name[len("landmarks_"):]: path for name, path in tmp.items() if name.startswith("landmarks_")})
                sitk.WriteImage(labels, str(tmp["segmentation"]), True)
                Path(tmp["sidecar"]).write_text(json.dumps(sidecar, indent=2) + "\n", encoding="utf-8")
                write_level_temporaries(result, {n[len("levels_"):]: tmp[n] for n in names if n.startswith("levels_")},
                                        labels, cord_image)
                for (name, made) in (("level_chart", chart), ("qc_sagittal", qc)):
                    shutil.copyfile(made[0], tmp[f"figure_{name}"])
                    shutil.copyfile(made[1], tmp[f"figure_{name}_svg"])
    except BaseException:
        if out_dir_created:
            shutil.rmtree(out_dir, ignore_errors=True)
        raise
    progress(ProgressEvent("export", 1, 1, f"wrote {len(outputs)} files into {out_dir}"))
    written = {name: str(absolute_path(path)) for name, path in outputs.items()}
    return PipelineRun(written, result, found, warnings)


def _check_given(given: LevelInputs) -> None:
    """The landmark files the user gave exist; discs come as an image or as points, not both."""
    if given.discs and given.disc_points:
        raise UserError("Give the discs either as a label image or as a point file, not both.")
    for name, path in given.items():
        if name != "rootlets" and not path.exists():
            raise UserError(f"The {name.replace('_', ' ')} file '{path}' does not exist: check the path.")


def _check_levels_request(method: str, distance: str, pmj: PathArg, methods, distances) -> None:
    """The level method and distance mode are known, and SCT-compatible distances have their PMJ (never found
    automatically), before any inference: otherwise the levels would fail only after the networks ran."""
    if method not in methods:
        raise UserError(f"Unknown levels method '{method}': use {', '.join(repr(m) for m in methods)}.")
    if distance not in distances:
        raise UserError(f"Unknown distance mode '{distance}': use {', '.join(repr(d) for d in distances)}.")
    if distance == "sct" and pmj is None:
        raise UserError("SCT-compatible distances need a PMJ: give --pmj (it is never found automatically), or use "
                        "the default distances.")


def _landmark_provenance(found, landmark_sidecar: Optional[dict]) -> Optional[dict]:
    if found is None:
        return None
    return {"landmarks": {"model": landmark_sidecar["model"], "found": found.summary()}}

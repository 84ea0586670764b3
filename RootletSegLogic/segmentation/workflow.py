"""The segment workflow: image file in; label map, sidecar and (with level inputs) the level outputs out, as one
all-or-nothing set.

One pass over the data: every input file is decoded once and hashed once; the checks that must come before the
long inference (outputs writable, step / threads / device, the cord mask on the image grid -- from the headers
only) run first; the levels are computed from the label map in memory; nothing this workflow writes is read back.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Union

import SimpleITK as sitk

from RootletSegLogic import naming
from RootletSegLogic.errors import UserError
from RootletSegLogic.images.atomic import atomic_outputs, check_outputs
from RootletSegLogic.images.files import absolute_path
from RootletSegLogic.images.grid import check_same_grid
from RootletSegLogic.images.header import ImageHeader, read_header
from RootletSegLogic.images.reading import read_image
from RootletSegLogic.levels.files import (
    LevelInputs,
    LevelOutputs,
    check_level_request,
    compute_level_data,
    provenance_for,
    read_landmark_inputs,
    write_level_temporaries,
)
from RootletSegLogic.progress import ProgressCallback, ProgressEvent, no_progress
from RootletSegLogic.provenance import FileRecords
from RootletSegLogic.segmentation.backends import check_backend, choose_backend
from RootletSegLogic.segmentation.model_folder import Fold, ModelFolder
from RootletSegLogic.segmentation.predictor import (
    DEFAULT_STEP,
    Segmenter,
    check_step,
    check_threads,
    resolve_device,
)
from RootletSegLogic.segmentation.roi import (
    DEFAULT_ROI_MARGIN_MM,
    CordInput,
    check_margin,
    crop,
    paste_back,
    plan_roi,
    read_cord,
)
from RootletSegLogic.segmentation.sidecar import build_sidecar

DEFAULT_MODEL = "rootletseg"
WRITABLE_SUFFIXES = naming.WRITABLE_IMAGE_SUFFIXES

WarnCallback = Callable[[str], None]


# ------------------------------------------------------------------------------------------------ model lookup
def resolve_model(name_or_path: Union[str, os.PathLike, ModelFolder], progress: Optional[ProgressCallback] = None,
                  warn: Optional[WarnCallback] = None) -> ModelFolder:
    """A ModelFolder from a registry name (`rootletseg`, `m5`, `demo`), a model folder or a zip, via the registry
    (`RootletSegLogic.models.resolve_model`: download when missing, verify, cache); a ModelFolder is returned as is."""
    if isinstance(name_or_path, ModelFolder):
        return name_or_path
    from RootletSegLogic.segmentation.cache import resolve_model

    return resolve_model(name_or_path, progress=progress, download=True, warn=warn)


# ------------------------------------------------------------------------------------------------------ files
def default_output_path(input_path: Union[str, os.PathLike]) -> Path:
    """`<stem>_rootlets.nii.gz` beside the input (`naming.segmentation_path`)."""
    return naming.segmentation_path(input_path)


def sidecar_path_for(output_path: Union[str, os.PathLike]) -> Path:
    """The JSON sidecar of a label map: same folder, same stem, `.json` (`naming.sidecar_path`)."""
    return naming.sidecar_path(output_path)


def _check_output_path(output_path: Path) -> None:
    if not naming.is_writable_image_name(output_path):
        raise UserError(f"The output '{output_path.name}' has no supported image suffix: "
                        f"end it with {', '.join(WRITABLE_SUFFIXES)}.")


@dataclass
class LevelRequest:
    """Levels to compute from the new label map: the landmark files (`inputs.rootlets` is the label map's path,
    never read) and the outputs. `level_request_for` names the outputs after the label map."""

    inputs: LevelInputs
    outputs: LevelOutputs
    method: str = "paper"
    distance: str = "pmj"  # "pmj" (ours) or "sct" (as SCT's scripts measure): levels.method.compute_levels


def level_request_for(segmentation: Union[str, os.PathLike], cord=None, discs=None, disc_points=None, pmj=None,
                      method: str = "paper", distance: str = "pmj") -> Optional[LevelRequest]:
    """A LevelRequest with the outputs beside `segmentation` and named after it (`naming.level_paths_for_
    segmentation`), or None when no cord and no discs were given. UserError for a PMJ alone (it gives no levels)."""
    if not (cord or discs or disc_points):
        if pmj:
            raise UserError("--pmj alone gives no levels: add --cord and/or --discs.")
        return None
    if distance == "sct" and not cord:  # fail before the inference, not after it
        raise UserError("--distance sct measures along the cord from its top slice: add --cord (and a PMJ).")
    segmentation = Path(segmentation)
    inputs = LevelInputs(segmentation, *(Path(p) if p else None for p in (cord, discs, disc_points, pmj)))
    outputs = LevelOutputs(**naming.level_paths_for_segmentation(segmentation, with_label_image=bool(cord)))
    return LevelRequest(inputs, outputs, method, distance)


@dataclass
class SegmentRun:
    """What one segment run made: {output name: absolute path} as written, the label map (on the input grid) and
    the LevelResult (None without levels)."""

    outputs: Dict[str, str]
    labels: sitk.Image
    levels: Optional[object] = None
    warnings: List[str] = field(default_factory=list)


def _check_cord_grid(image_header: ImageHeader, cord_path: Path) -> None:
    """The label map lands exactly on the image grid, so a cord mask on another grid fails now, before any voxel
    is decoded (headers only)."""
    check_same_grid(read_header(cord_path, "spinal cord mask"), image_header,
                    what="spinal cord mask", reference_what="input image")


def segment_in_roi(segmenter: Segmenter, image: sitk.Image, cord: Optional[sitk.Image],
                   roi_margin_mm: float = DEFAULT_ROI_MARGIN_MM, crop_to_cord: bool = True,
                   progress: Optional[ProgressCallback] = None):
    """(label map on exactly `image`'s grid, ROI record for the sidecar): the network runs on the cord's box dilated
    by `roi_margin_mm` (mm) and grown onto the model's grid (`roi_grid`) when a cord mask is given and
    `crop_to_cord`, else on the whole volume."""
    progress = progress or no_progress
    box = plan_roi(image, cord, roi_margin_mm, crop_to_cord)
    if box is not None:
        box = segmenter.align_roi(image, box)
        box = None if box.covers_image else box
    if box is None:
        labels = segmenter.segment(image, progress, finish_export=False)
        reason = ("no cord given" if cord is None else "cropping turned off" if not crop_to_cord
                  else "the cord's box with its margin, grown onto the model's grid, is the whole image")
        record = {"cropped": False, "reason": reason}
        if cord is not None:
            record["margin_mm"] = roi_margin_mm
        return labels, record
    progress(ProgressEvent("preprocess", 0, 1, f"cropping to the cord's box + {box.margin_mm:g} mm: {box.size} of "
                                                f"{box.image_size} voxels"))
    labels = paste_back(segmenter.segment(crop(image, box), progress, finish_export=False,
                                          tile_starts=box.tile_starts), image, box)
    return labels, {"cropped": True, **box.record()}


def segment_and_levels(input_path: Union[str, os.PathLike], output_path: Union[str, os.PathLike, None] = None,
                       model: Union[str, os.PathLike, ModelFolder] = DEFAULT_MODEL, device: str = "auto",
                       tta: bool = False, step: float = DEFAULT_STEP, folds: Optional[Sequence[Fold]] = None,
                       overwrite: bool = False, progress: Optional[ProgressCallback] = None,
                       warn: Optional[WarnCallback] = None, threads: Optional[int] = None,
                       levels: Optional[LevelRequest] = None, backend: str = "auto",
                       roi_cord: Optional[CordInput] = None, roi_margin_mm: float = DEFAULT_ROI_MARGIN_MM,
                       crop_to_cord: bool = True) -> SegmentRun:
    """Segment an image file and, with `levels`, compute the levels from the new label map in memory; write the
    label map, its sidecar and the level outputs as one all-or-nothing set.

    Order: every check that needs no voxels (output names and existence, level inputs exist, step, threads,
    device, the cord mask's grid from the headers), then the image and the level inputs are decoded once each
    (a bad file fails before the long work), then the model, the inference, the levels and the writes. When the
    levels fail (UserError) the label map and sidecar are still written, as their own set, and the error says so.

    Speed: `backend` "auto" (OpenVINO on the CPU when installed, from two tiles on, else PyTorch), "torch" or
    "openvino" runs the network (`segmentation.backends`). Region of interest (`segmentation.roi`): with a cord mask -- `roi_cord` (a
    SimpleITK image or a file path, on the image grid or any grid overlapping it), else the levels' `--cord` -- the
    network runs only on the cord's bounding box dilated by `roi_margin_mm` (mm) and grown onto the model's
    resampling grid and tiles (`segmentation.roi_grid`), and the labels are put back on the full grid; `crop_to_cord=False` predicts the whole volume. The sidecar records the backend and the box.
    """
    progress = progress or no_progress
    warn = warn or (lambda _message: None)
    input_path = Path(input_path)
    image_header = read_header(input_path, "image")  # a missing or non-image input fails first, as before
    output_path, sidecar_path = naming.segment_outputs(input_path, output_path)
    _check_output_path(output_path)
    if absolute_path(input_path) in (absolute_path(output_path), absolute_path(sidecar_path)):
        raise UserError(f"The output '{output_path}' would replace the input image: choose another output name.")
    if levels is not None:
        check_level_request(levels.inputs, levels.outputs, overwrite, rootlets_pending=True)
    level_paths = levels.outputs.items() if levels is not None else []
    check_outputs([output_path, sidecar_path] + [path for _, path in level_paths], overwrite)
    check_step(step)
    check_threads(threads)
    roi_margin_mm = check_margin(roi_margin_mm)
    # an unavailable device or backend fails before any download or loading
    choose_backend(check_backend(backend), resolve_device(device).type)
    if levels is not None and levels.inputs.cord:
        _check_cord_grid(image_header, levels.inputs.cord)
    roi_cord_path = None
    if roi_cord is not None and not isinstance(roi_cord, sitk.Image):
        roi_cord_path = Path(roi_cord)
        read_header(roi_cord_path, "spinal cord mask")  # a missing or non-image cord fails before the long work

    image = read_image(input_path)
    landmarks = read_landmark_inputs(levels.inputs) if levels is not None else None
    cord_for_roi, cord_source = None, None
    same_as_levels_cord = (roi_cord_path is not None and landmarks is not None and landmarks.cord is not None
                           and absolute_path(roi_cord_path) == absolute_path(levels.inputs.cord))
    if roi_cord is not None and not same_as_levels_cord:  # the levels' cord is decoded once, and shared
        cord_for_roi = read_cord(roi_cord)
        cord_source = str(absolute_path(roi_cord_path)) if roi_cord_path else "given in memory"
    elif landmarks is not None and landmarks.cord is not None:
        cord_for_roi, cord_source = landmarks.cord, str(absolute_path(levels.inputs.cord))

    model_folder = resolve_model(model, progress=progress, warn=warn).select_folds(folds)
    segmenter = Segmenter(model_folder, device, tta, step, progress, threads, backend=backend, warn=warn)
    labels, roi = segment_in_roi(segmenter, image, cord_for_roi, roi_margin_mm, crop_to_cord, progress)
    if cord_source is not None:
        roi["cord"] = cord_source
    records = FileRecords()  # each input hashed once, shared by the sidecar and the level provenance
    records.know(segmenter.checkpoint_sha256)  # hashed when loaded: the sidecar need not read them again
    sidecar = build_sidecar(input_path, output_path, image, model_folder, segmenter, labels, records, roi=roi)

    result, level_error = None, None
    if levels is not None:
        landmarks.rootlets = labels
        try:
            result = compute_level_data(landmarks, levels.method, progress, distance=levels.distance)
        except UserError as error:
            level_error = error
        else:
            records.mark_written(output_path)  # the label map is this run's own: never read back to hash it
            result.provenance = provenance_for(levels.inputs, levels.method, records=records, model=sidecar["model"],
                                               distance=levels.distance)
            for warning in result.warnings:
                warn(warning)

    written = [("segmentation", output_path), ("sidecar", sidecar_path)]
    if result is not None:
        written += level_paths
    with atomic_outputs([path for _, path in written], overwrite) as temporaries:
        tmp = {name: path for (name, _), path in zip(written, temporaries)}
        sitk.WriteImage(labels, str(tmp["segmentation"]), True)
        Path(tmp["sidecar"]).write_text(json.dumps(sidecar, indent=2) + "\n", encoding="utf-8")
        if result is not None:
            write_level_temporaries(result, {name: tmp[name] for name, _ in level_paths}, labels, landmarks.cord)
    progress(ProgressEvent("export", 1, 1, f"wrote {output_path.name}"))
    outputs = {name: str(absolute_path(path)) for name, path in written}
    if level_error is not None:
        reason = str(level_error)
        raise UserError(f"The segmentation was written to '{outputs['segmentation']}', but not the levels: "
                        f"{reason[:1].lower()}{reason[1:]}") from None
    return SegmentRun(outputs, labels, result, list(result.warnings) if result is not None else [])


def segment_file(input_path: Union[str, os.PathLike], output_path: Union[str, os.PathLike, None] = None,
                 model: Union[str, os.PathLike, ModelFolder] = DEFAULT_MODEL, device: str = "auto", tta: bool = False,
                 step: float = DEFAULT_STEP, folds: Optional[Sequence[Fold]] = None, overwrite: bool = False,
                 progress: Optional[ProgressCallback] = None, warn: Optional[WarnCallback] = None,
                 threads: Optional[int] = None, levels: Optional[LevelRequest] = None, backend: str = "auto",
                 roi_cord: Optional[CordInput] = None, roi_margin_mm: float = DEFAULT_ROI_MARGIN_MM,
                 crop_to_cord: bool = True) -> Dict[str, str]:
    """Segment an image file; write the label map and its JSON sidecar (and, with `levels`, the level outputs)
    all-or-nothing.

    Output: `output_path`, default `<stem>_rootlets.nii.gz` beside the input, and `<output stem>.json` beside it.
    Existing outputs are an error unless `overwrite` (checked before the model is loaded). `model` is a registry
    name, a folder/zip path or a ModelFolder; `folds` None = every fold present. Returns the absolute output paths:
    {"segmentation": ..., "sidecar": ...} plus the LevelOutputs names (table, planning_json, ...) with `levels`.
    `backend`, `roi_cord`, `roi_margin_mm`, `crop_to_cord`: see `segment_and_levels`.
    """
    return segment_and_levels(input_path, output_path, model, device, tta, step, folds, overwrite, progress, warn,
                              threads, levels, backend, roi_cord, roi_margin_mm, crop_to_cord).outputs

"""The segment workflow: image file in, label map and sidecar out, all-or-nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Union

import SimpleITK as sitk

from RootletSegLogic.errors import UserError
from RootletSegLogic.images.atomic import atomic_outputs, check_outputs
from RootletSegLogic.images.files import absolute_path, image_stem
from RootletSegLogic.images.reading import read_image
from RootletSegLogic.progress import ProgressCallback, ProgressEvent, no_progress
from RootletSegLogic.segmentation.model_folder import Fold, ModelFolder
from RootletSegLogic.segmentation.predictor import (
    DEFAULT_STEP,
    Segmenter,
    check_step,
    check_threads,
    resolve_device,
)
from RootletSegLogic.segmentation.sidecar import build_sidecar

DEFAULT_MODEL = "rootletseg"
OUTPUT_SUFFIX = "_rootlets"
WRITABLE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha")

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
    """`<stem>_rootlets.nii.gz` beside the input (stem without image suffix and without `_0000`)."""
    input_path = Path(input_path)
    return input_path.parent / f"{image_stem(input_path)}{OUTPUT_SUFFIX}.nii.gz"


def sidecar_path_for(output_path: Union[str, os.PathLike]) -> Path:
    """The JSON sidecar of a label map: same folder, same stem, `.json`."""
    output_path = Path(output_path)
    return output_path.parent / f"{image_stem(output_path)}.json"


def _check_output_path(output_path: Path) -> None:
    if not output_path.name.lower().endswith(WRITABLE_SUFFIXES):
        raise UserError(f"The output '{output_path.name}' has no supported image suffix: "
                        f"end it with {', '.join(WRITABLE_SUFFIXES)}.")


def segment_file(input_path: Union[str, os.PathLike], output_path: Union[str, os.PathLike, None] = None,
                 model: Union[str, os.PathLike, ModelFolder] = DEFAULT_MODEL, device: str = "auto", tta: bool = False,
                 step: float = DEFAULT_STEP, folds: Optional[Sequence[Fold]] = None, overwrite: bool = False,
                 progress: Optional[ProgressCallback] = None, warn: Optional[WarnCallback] = None,
                 threads: Optional[int] = None) -> Dict[str, str]:
    """Segment an image file; write the label map and its JSON sidecar all-or-nothing.

    Output: `output_path`, default `<stem>_rootlets.nii.gz` beside the input, and `<output stem>.json` beside it.
    Existing outputs are an error unless `overwrite` (checked before the model is loaded). `model` is a registry
    name, a folder/zip path or a ModelFolder; `folds` None = every fold present. Returns the absolute output paths:
    {"segmentation": ..., "sidecar": ...}.
    """
    progress = progress or no_progress
    input_path = Path(input_path)
    image = read_image(input_path)
    output_path = Path(output_path) if output_path is not None else default_output_path(input_path)
    _check_output_path(output_path)
    sidecar_path = sidecar_path_for(output_path)
    if absolute_path(input_path) in (absolute_path(output_path), absolute_path(sidecar_path)):
        raise UserError(f"The output '{output_path}' would replace the input image: choose another output name.")
    check_outputs([output_path, sidecar_path], overwrite)  # fail before any loading
    check_step(step)
    check_threads(threads)
    resolve_device(device)  # an unavailable device fails before any download or loading
    model_folder = resolve_model(model, progress=progress, warn=warn).select_folds(folds)
    segmenter = Segmenter(model_folder, device, tta, step, progress, threads)
    labels = segmenter.segment(image, progress, finish_export=False)
    sidecar = build_sidecar(input_path, output_path, image, model_folder, segmenter, labels)
    with atomic_outputs([output_path, sidecar_path], overwrite) as (tmp_labels, tmp_sidecar):
        sitk.WriteImage(labels, str(tmp_labels), True)
        Path(tmp_sidecar).write_text(json.dumps(sidecar, indent=2) + "\n", encoding="utf-8")
    progress(ProgressEvent("export", 1, 1, f"wrote {output_path.name}"))
    return {"segmentation": str(absolute_path(output_path)),
            "sidecar": str(absolute_path(sidecar_path))}

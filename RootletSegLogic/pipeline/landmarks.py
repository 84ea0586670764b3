"""The landmarks workflow (`rootletseg landmarks`): image file in; cord mask, SCT disc labels and a JSON sidecar out,
as one all-or-nothing set -- the files SCT users already have, so `rootletseg levels` takes them as they are.

Order: output names and existence, device (headers only, no voxels), then the image is decoded once, the landmark
model resolved (downloaded and verified on first use: `segmentation.cache`) and loaded, the network run
(`segmentation.landmark_inference`), the postprocessing (`landmarks.postprocess`) and the writes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Union

import SimpleITK as sitk

from RootletSegLogic import naming
from RootletSegLogic.errors import UserError
from RootletSegLogic.images.atomic import atomic_outputs, check_outputs
from RootletSegLogic.images.files import absolute_path
from RootletSegLogic.images.header import read_header
from RootletSegLogic.images.reading import read_image
from RootletSegLogic.landmarks.postprocess import Landmarks
from RootletSegLogic.progress import ProgressCallback, ProgressEvent, no_progress
from RootletSegLogic.provenance import FileRecords
from RootletSegLogic.segmentation.registry import DEFAULT_LANDMARK_MODEL, lookup

ModelArgument = Union[str, os.PathLike, object]  # registry name, folder/zip path, or a ModelFolder


@dataclass
class LandmarkRun:
    """What one landmarks run made: {"cord", "discs", "sidecar": absolute path} and the Landmarks (in memory)."""

    outputs: Dict[str, str]
    landmarks: Landmarks
    warnings: List[str] = field(default_factory=list)


def resolve_landmark_model(model: ModelArgument, progress: Optional[ProgressCallback] = None, warn=None):
    """A ModelFolder for a landmark model: a registry name of kind "landmarks" (`totalspineseg`, `demo-spine`), a
    folder or zip path, or a ModelFolder. UserError for a rootlet model's name or a model without the step-1 labels."""
    from RootletSegLogic.segmentation.landmark_inference import check_landmark_model
    from RootletSegLogic.segmentation.workflow import resolve_model

    if isinstance(model, (str, os.PathLike)):
        spec = lookup(str(model)) if isinstance(model, str) else None
        if spec is not None and spec.kind != "landmarks":
            raise UserError(f"'{model}' is a rootlet model, not a landmark model: use --landmark-model totalspineseg "
                            "or demo-spine.")
    folder = resolve_model(model, progress=progress, warn=warn)
    check_landmark_model(folder)
    return folder


def find_landmarks(input_path: Union[str, os.PathLike], prefix: Optional[Union[str, os.PathLike]] = None,
                   model: ModelArgument = DEFAULT_LANDMARK_MODEL, device: str = "auto",
                   threads: Optional[int] = None, overwrite: bool = False,
                   progress: Optional[ProgressCallback] = None, warn=None) -> LandmarkRun:
    """Find the cord and the discs of an image file; write `<prefix>_cord.nii.gz`, `<prefix>_discs.nii.gz` and
    `<prefix>_landmarks.json` (`naming.landmark_paths`) all-or-nothing; existing files only with `overwrite`."""
    from RootletSegLogic.segmentation.landmark_inference import (
        LandmarkDetector,
        build_landmark_sidecar,
    )
    from RootletSegLogic.segmentation.predictor import check_threads, resolve_device

    progress = progress or no_progress
    warn = warn or (lambda _message: None)
    input_path = Path(input_path)
    read_header(input_path, "image")
    outputs = naming.landmark_paths(input_path, prefix)
    if absolute_path(input_path) in [absolute_path(p) for p in outputs.values()]:
        raise UserError(f"The output '{outputs['cord']}' would replace the input image: choose another prefix.")
    check_outputs(list(outputs.values()), overwrite, inputs=[input_path])
    check_threads(threads)
    resolve_device(device)

    image = read_image(input_path)
    folder = resolve_landmark_model(model, progress, warn)
    detector = LandmarkDetector(folder, device, progress=progress, threads=threads)
    found = detector.detect(image, progress)
    for warning in found.warnings:
        warn(warning)
    records = FileRecords()
    sidecar = build_landmark_sidecar(input_path, outputs, image, detector, found, records)
    write_landmark_temporaries(found, sidecar, outputs, overwrite, inputs=[input_path])
    progress(ProgressEvent("export", 1, 1, f"wrote {outputs['cord'].name}, {outputs['discs'].name}"))
    return LandmarkRun({name: str(absolute_path(p)) for name, p in outputs.items()}, found, list(found.warnings))


def write_landmark_temporaries(found: Landmarks, sidecar: dict, outputs: Dict[str, Path], overwrite: bool,
                               inputs=(), temporaries: Optional[Dict[str, Path]] = None) -> None:
    """Write cord, discs and sidecar (those named in the paths): into `temporaries` (paths of a caller's atomic
    set) or as their own set."""
    def write(paths: Dict[str, Path]) -> None:
        for name, image in (("cord", found.cord), ("discs", found.discs)):
            if name in paths:
                sitk.WriteImage(image, str(paths[name]), True)
        Path(paths["sidecar"]).write_text(json.dumps(sidecar, indent=2) + "\n", encoding="utf-8")

    if temporaries is not None:
        write(temporaries)
        return
    names = list(outputs)
    with atomic_outputs([outputs[n] for n in names], overwrite, inputs) as tmp:
        write(dict(zip(names, tmp)))

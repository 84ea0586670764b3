"""The JSON sidecar written beside a rootlet label map: input, output, model, settings, software."""

from __future__ import annotations

import datetime
import platform
from pathlib import Path
from typing import Optional

import numpy as np
import SimpleITK as sitk

from RootletSegLogic import __version__
from RootletSegLogic.images.files import absolute_path
from RootletSegLogic.images.orientation import axcodes_of, axcodes_to_sct
from RootletSegLogic.provenance import FileRecords, model_record
from RootletSegLogic.segmentation.model_folder import ModelFolder
from RootletSegLogic.segmentation.predictor import Segmenter


def _package_version(name: str) -> Optional[str]:
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:  # not installed as a distribution
        return None


def build_sidecar(input_path: Path, output_path: Path, image: sitk.Image, model: ModelFolder,
                  segmenter: Segmenter, labels: sitk.Image, records: Optional[FileRecords] = None,
                  roi: Optional[dict] = None) -> dict:
    """The provenance record written beside the label map. The model is described by `provenance.model_record`
    (the shape every output uses); the input's sha256 comes from `records`, so a command hashes each file once.
    `settings` carries the backend that ran the network; `roi` the region predicted (`workflow.segment_in_roi`:
    cropped or not, the box in input voxel indices, the margin in mm, the cord it came from, and under
    `model_grid` the box as cut before `roi_grid` grew it onto the model's grid)."""
    import torch

    records = records or FileRecords()
    present = sorted(int(v) for v in np.unique(sitk.GetArrayViewFromImage(labels)) if v != 0)
    return {
        "description": "Spinal nerve rootlet segmentation (RootletSeg, nnU-Net v2); label value = spinal level "
                       "(2 = C2 ... 8 = C8, 9 = T1), 0 = background.",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "input": {
            **records.record(input_path),
            "size": list(image.GetSize()),
            "spacing_mm": list(image.GetSpacing()),
            "orientation": axcodes_of(image),
        },
        "output": {"path": str(absolute_path(output_path)), "labels_present": present},
        "model": model_record(model, records),
        "settings": segmenter.settings,
        "roi": roi if roi is not None else {"cropped": False, "reason": "no cord given"},
        "orientation": {
            "model_image_orientation_sct": model.image_orientation_sct,
            "used": segmenter.orientation,
            "used_sct": axcodes_to_sct(segmenter.orientation),
            "input": axcodes_of(image),
        },
        "software": {
            "rootletseg": __version__,
            "nnunetv2": _package_version("nnunetv2"),
            "torch": torch.__version__,
            "openvino": _package_version("openvino") if segmenter.backend == "openvino" else None,
            "SimpleITK": sitk.Version_VersionString(),
            "python": platform.python_version(),
        },
    }

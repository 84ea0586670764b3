"""The JSON sidecar written beside a rootlet label map: input, output, model, settings, software."""

from __future__ import annotations

import datetime
import platform
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import SimpleITK as sitk

from RootletSegLogic import __version__
from RootletSegLogic.images.files import absolute_path, file_sha256
from RootletSegLogic.images.orientation import axcodes_of, axcodes_to_sct
from RootletSegLogic.segmentation.model_folder import ModelFolder
from RootletSegLogic.segmentation.predictor import Segmenter


def _package_version(name: str) -> Optional[str]:
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:  # not installed as a distribution
        return None


def _checkpoint_record(model: ModelFolder) -> Dict[str, dict]:
    record = {}
    for fold, path in model.checkpoints.items():
        record[str(fold)] = {"file": str(Path(path).relative_to(model.trainer_dir)), "sha256": file_sha256(path)}
    return record


def build_sidecar(input_path: Path, output_path: Path, image: sitk.Image, model: ModelFolder,
                  segmenter: Segmenter, labels: sitk.Image) -> dict:
    """The provenance record written beside the label map."""
    import torch

    meta = dict(model.metadata)
    present = sorted(int(v) for v in np.unique(sitk.GetArrayViewFromImage(labels)) if v != 0)
    return {
        "description": "Spinal nerve rootlet segmentation (RootletSeg, nnU-Net v2); label value = spinal level "
                       "(2 = C2 ... 8 = C8, 9 = T1), 0 = background.",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "input": {
            "path": str(absolute_path(input_path)),
            "sha256": file_sha256(input_path),
            "size": list(image.GetSize()),
            "spacing_mm": list(image.GetSpacing()),
            "orientation": axcodes_of(image),
        },
        "output": {"path": str(absolute_path(output_path)), "labels_present": present},
        "model": {
            "name": meta.get("name"),
            "title": meta.get("title"),
            "release": meta.get("release"),
            "url": meta.get("url"),
            "weights_sha256": meta.get("weights_sha256"),  # registry: the release zip's; else over the checkpoints
            "source": meta.get("source"),
            "trusted": meta.get("trusted"),
            "folder": str(model.trainer_dir),
            "trainer": model.trainer_name,
            "configuration": model.configuration,
            "folds": [str(f) for f in model.folds],
            "checkpoints": _checkpoint_record(model),
            "labels": model.labels,
        },
        "settings": segmenter.settings,
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
            "SimpleITK": sitk.Version_VersionString(),
            "python": platform.python_version(),
        },
    }

"""Landmark models (TotalSpineSeg step 1, demo-spine) run by the project's nnU-Net predictor, then postprocessed.

The network part is the rootlet model's: `predictor.Segmenter` (no resampling of ours, SCT's predictor settings,
the label map back on exactly the input grid); the step-1 label map is turned into a cord mask and SCT disc labels
by `landmarks.postprocess` (NumPy/SciPy only). A `LandmarkDetector` loads its model once for many images.
"""

from __future__ import annotations

from typing import Optional

import SimpleITK as sitk

from RootletSegLogic.errors import UserError
from RootletSegLogic.landmarks import scheme
from RootletSegLogic.landmarks.postprocess import Landmarks, landmarks_from_step1
from RootletSegLogic.progress import ProgressCallback, ProgressEvent, no_progress
from RootletSegLogic.segmentation.model_folder import ModelFolder
from RootletSegLogic.segmentation.predictor import DEFAULT_STEP, Segmenter


def check_landmark_model(model: ModelFolder) -> None:
    """UserError unless the model's dataset.json names TotalSpineSeg's step-1 classes (cord and canal, by value)."""
    labels = model.labels
    cord, canal = labels.get("cord"), labels.get("canal")
    cord_ok = cord == scheme.CORD or (isinstance(cord, list) and cord == [scheme.CORD])
    canal_ok = canal == scheme.CANAL or (isinstance(canal, list) and scheme.CANAL in canal)
    if not (cord_ok and canal_ok):
        raise UserError(f"The model in '{model.trainer_dir}' is not a spine landmark model: its dataset.json has no "
                        "TotalSpineSeg step-1 labels (cord = 9, canal = 8); use --landmark-model totalspineseg or "
                        "demo-spine.")


class LandmarkDetector:
    """A loaded landmark model: `detect(image)` gives the Landmarks of an image on its exact grid."""

    def __init__(self, model: ModelFolder, device: str = "auto", step: float = DEFAULT_STEP,
                 progress: Optional[ProgressCallback] = None, threads: Optional[int] = None,
                 trust_checkpoints: Optional[bool] = None):
        check_landmark_model(model)
        self.model = model
        self.segmenter = Segmenter(model, device, False, step, progress, threads, trust_checkpoints)

    @property
    def settings(self) -> dict:
        return self.segmenter.settings

    def detect(self, image: sitk.Image, progress: Optional[ProgressCallback] = None) -> Landmarks:
        progress = progress or no_progress
        spine = self.segmenter.segment(image, progress, finish_export=False)
        progress(ProgressEvent("landmarks", 0, 1, "cord and discs from the spine labels"))
        found = landmarks_from_step1(spine)
        progress(ProgressEvent("landmarks", 1, 1, f"{len(found.disc_points)} discs"))
        return found


def detect_landmarks(image: sitk.Image, model: ModelFolder, device: str = "auto", step: float = DEFAULT_STEP,
                     progress: Optional[ProgressCallback] = None, threads: Optional[int] = None) -> Landmarks:
    """Cord mask and SCT disc labels of one image, on its exact grid (load the model, segment, postprocess)."""
    return LandmarkDetector(model, device, step, progress, threads).detect(image, progress)


POSTPROCESSING = (
    "landmarks.postprocess: largest cord component; disc components named by counting from TotalSpineSeg's landmark "
    "discs (C2/C3, L5/S1, C7/T1, T12/L1); each disc put on the cord centerline point nearest to its posterior tip "
    "(one voxel); C1/C2 from the C1 vertebra when no disc lies above C2/C3"
)


def build_landmark_sidecar(input_path, outputs: dict, image: sitk.Image, detector: LandmarkDetector,
                           found: Landmarks, records=None) -> dict:
    """The provenance record written beside the cord and disc files: input (path, sha256, grid), outputs, the
    landmark model record, settings, software (as the rootlet sidecar), what was found, and the PMJ note."""
    from RootletSegLogic.images.files import absolute_path
    from RootletSegLogic.segmentation.sidecar import build_sidecar

    sidecar = build_sidecar(input_path, next(iter(outputs.values())), image, detector.model, detector.segmenter,
                            found.spine, records)
    sidecar["description"] = (
        "Spinal cord mask (0/1) and intervertebral disc labels (SCT convention: 2 = C1/C2, 3 = C2/C3, ..., one voxel "
        "per disc on the cord centerline) found by a spine landmark model (TotalSpineSeg step-1 label scheme).")
    sidecar["output"] = {name: str(absolute_path(path)) for name, path in outputs.items()}
    sidecar["postprocessing"] = POSTPROCESSING
    sidecar["landmarks"] = found.summary()
    sidecar["pmj_note"] = ("No PMJ is found automatically: without a PMJ point, level distances run along the "
                           "superior-inferior axis.")
    return sidecar

"""The networks of the `run` workflow, loaded once and reused for many images (`LoadedModels`).

Building a network (plans.json, every fold's checkpoint, OpenVINO's conversion or cache read) costs seconds to
tens of seconds; segmenting a phantom costs less. `rootletseg run` makes one LoadedModels for its one image; a batch
worker keeps one for all the images it is given (`cohort.task`), so each of its models is loaded once per worker.

Reuse must not change what an image's run says: a warning said while resolving or loading a model (a download
note, OpenVINO falling back to PyTorch) is kept and repeated to every later run that uses that model, so each
image's warnings are those a fresh run would give. Only the progress events of the loading itself are not repeated
(nothing is loaded again).

Not thread-safe: nnU-Net's predictor keeps per-call state, so one LoadedModels serves one image at a time (the
cohort hands each worker thread its own, `cohort.task`).
"""

from __future__ import annotations

import os
from typing import Callable, List, Optional, Union

from RootletSegLogic.progress import ProgressCallback, ProgressEvent, no_progress
from RootletSegLogic.segmentation.registry import DEFAULT_LANDMARK_MODEL

DEFAULT_MODEL = "rootletseg"
ModelArgument = Union[str, os.PathLike, object]  # registry name, folder/zip path, or a ModelFolder
Warn = Callable[[str], None]


class LoadedModels:
    """The rootlet model and the landmark model of `run_pipeline`: each resolved and built on first need, then
    reused. `device`, `threads` and `backend` are checked here (before any download or loading) and apply to both
    networks as in `run_pipeline`. `loads` counts the networks built, from the predictor's own "load" events."""

    def __init__(self, model: ModelArgument = DEFAULT_MODEL, landmark_model: ModelArgument = DEFAULT_LANDMARK_MODEL,
                 device: str = "auto", threads: Optional[int] = None, backend: str = "auto"):
        from RootletSegLogic.segmentation.backends import check_backend, choose_backend
        from RootletSegLogic.segmentation.predictor import check_threads, resolve_device

        check_threads(threads)
        choose_backend(check_backend(backend), resolve_device(device).type)  # fails before any download or loading
        self.model, self.landmark_model = model, landmark_model
        self.device, self.threads, self.backend = device, threads, backend
        self.loads = {"rootlets": 0, "landmarks": 0}
        self._folders: dict = {}
        self._runners: dict = {}
        self._said: dict = {}  # what -> warnings said while resolving / loading it, repeated to every later user
        self._listener: dict = {}  # what -> the warn callback of the run that asked for it last

    # ------------------------------------------------------------------------------------------- model folders
    def rootlet_folder(self, progress: Optional[ProgressCallback] = None, warn: Optional[Warn] = None):
        """The rootlet ModelFolder (registry name resolved, downloaded and verified on first use)."""
        from RootletSegLogic.segmentation.workflow import resolve_model

        return self._once("rootlet_folder", lambda say: resolve_model(self.model, progress=progress, warn=say),
                          warn)

    def landmark_folder(self, progress: Optional[ProgressCallback] = None, warn: Optional[Warn] = None):
        """The landmark ModelFolder; UserError for a rootlet model or a model without TotalSpineSeg's step-1 labels."""
        from RootletSegLogic.pipeline.landmarks import resolve_landmark_model

        return self._once("landmark_folder", lambda say: resolve_landmark_model(self.landmark_model, progress, say),
                          warn)

    # ------------------------------------------------------------------------------------------------ networks
    def segmenter(self, progress: Optional[ProgressCallback] = None, warn: Optional[Warn] = None):
        """The rootlet network (`predictor.Segmenter`), built on first call."""
        from RootletSegLogic.segmentation.predictor import Segmenter

        folder = self._folder("rootlet_folder", self.rootlet_folder, progress, warn)
        return self._once("segmenter", lambda say: Segmenter(
            folder, self.device, progress=self._counting("rootlets", progress), threads=self.threads,
            backend=self.backend, warn=say), warn)

    def landmark_detector(self, progress: Optional[ProgressCallback] = None, warn: Optional[Warn] = None):
        """The landmark network (`landmark_inference.LandmarkDetector`), built on first call."""
        from RootletSegLogic.segmentation.landmark_inference import LandmarkDetector

        folder = self._folder("landmark_folder", self.landmark_folder, progress, warn)
        return self._once("landmark_detector", lambda say: LandmarkDetector(
            folder, self.device, progress=self._counting("landmarks", progress), threads=self.threads), warn)

    def release(self, what: str) -> None:
        """Drop a built network ("segmenter" or "landmark_detector") to free its memory; a later call builds it
        again. A single run frees the landmark network before the rootlet network loads."""
        self._runners.pop(what, None)

    # --------------------------------------------------------------------------------------------------- inner
    def _folder(self, what: str, resolve, progress, warn):
        """The resolved folder without repeating its warnings (the run that asks for a network already asked for
        the folder, and heard them then)."""
        return self._folders[what] if what in self._folders else resolve(progress, warn)

    def _once(self, what: str, make, warn: Optional[Warn]):
        """`make(say)` the first time (its warnings kept under `what`); later calls repeat those warnings."""
        store = self._folders if what.endswith("_folder") else self._runners
        warn = warn or (lambda _message: None)
        self._listener[what] = warn  # a network can still warn later (OpenVINO set up at its first big volume)
        if what in store:
            for message in self._said.get(what, ()):
                warn(message)
            return store[what]
        said: List[str] = []

        def say(message: str) -> None:
            said.append(message)
            self._listener[what](message)  # the run using it now hears it, not the run that built it

        store[what] = make(say)  # a failure stores nothing: the next call tries again and says why again
        self._said[what] = said
        return store[what]

    def _counting(self, kind: str, progress: Optional[ProgressCallback]) -> ProgressCallback:
        """`progress`, counting each network build: the predictor says ("load", 0, folds) once when it starts one."""
        progress = progress or no_progress

        def emit(event: ProgressEvent) -> None:
            if event.stage == "load" and event.done == 0:
                self.loads[kind] += 1
            progress(event)

        return emit

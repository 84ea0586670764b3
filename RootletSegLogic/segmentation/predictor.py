"""Rootlet segmentation with nnU-Net v2, in process, with SCT's settings and exact orientation handling.

What happens to an image (`segment_image`):
1. It is permuted/flipped (no resampling) to the model's orientation: dataset.json["image_orientation"] (SCT "from"
   letters) when the model declares one, else SCT "LPI", i.e. "RAS" in this project's "to" letters. Oblique
   directions use the closest axis-aligned permutation, as SCT does.
2. Its voxels go to nnU-Net as a NumPy array in SimpleITK order (z, y, x) with the spacing reversed (mm), exactly as
   nnU-Net's own SimpleITK reader would hand them over. nnU-Net crops, normalises and resamples from plans.json;
   nothing is added here.
3. nnU-Net predicts with SCT's settings: sliding window with tile step 0.5, gaussian weighting, no mirroring unless
   test-time augmentation is asked for, an ensemble of every fold present, no postprocessing.
4. The label map (uint8; value = spinal level, 2 = C2 ... 9 = T1, 0 = background) is moved back onto the input grid:
   same size, spacing, origin and direction, bit for bit.

nnU-Net is driven without its trainer-class lookup (which imports timm and torchvision): the network is built from
plans.json with `get_network_from_plans` and each fold's `network_weights` are loaded from its checkpoint. A trainer
whose network differs from what its plans.json describes is therefore not supported (loading its weights fails with
a clear message).

The network call inside nnU-Net's sliding window runs on PyTorch or, on the CPU, on OpenVINO (`backend`, see
`segmentation.backends` / `openvino_backend`); everything around it stays nnU-Net's.

Anything nnU-Net prints goes to stderr, so that stdout can carry JSON progress lines only.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np
import SimpleITK as sitk

from RootletSegLogic.errors import Cancelled, UserError
from RootletSegLogic.images.files import absolute_path, file_sha256
from RootletSegLogic.images.orientation import Reorientation, sct_to_axcodes
from RootletSegLogic.progress import ProgressCallback, ProgressEvent, no_progress
from RootletSegLogic.segmentation.backends import (
    AUTO_OPENVINO_MIN_TILES,
    check_backend,
    choose_backend,
    sliding_window_tiles,
)
from RootletSegLogic.segmentation.checkpoints import (
    load_checkpoint,
    trust_from_environment,
)
from RootletSegLogic.segmentation.model_folder import ModelFolder
from RootletSegLogic.segmentation.nnunet_startup import finish, start_tile_weights
from RootletSegLogic.segmentation.roi_grid import align_box, planned_slicers
from RootletSegLogic.segmentation.stdout_guard import prints_to_stderr, with_real_stdout

DEVICES = ("auto", "cpu", "cuda", "mps")
DEFAULT_STEP = 0.5
DEFAULT_ORIENTATION_SCT = "LPI"  # SCT's default ("from" letters) == "RAS" here


def model_orientation(model: ModelFolder) -> str:
    """The orientation ("to" letters) the model's input is given in: dataset.json["image_orientation"] (SCT
    letters) when present, else SCT "LPI" == "RAS"."""
    return sct_to_axcodes(model.image_orientation_sct or DEFAULT_ORIENTATION_SCT)


def check_step(step: float) -> float:
    step = float(step)
    if not 0.0 < step <= 1.0:
        raise UserError(f"The tile step {step:g} is not valid: give a fraction of the patch size in (0, 1], e.g. 0.5.")
    return step


def check_threads(threads: Optional[int]) -> int:
    """CPU threads for PyTorch: `threads`, or every CPU when None."""
    if threads is None:
        return os.cpu_count() or 1
    if int(threads) < 1:
        raise UserError(f"The thread count {threads} is not valid: give 1 or more.")
    return int(threads)


def resolve_device(device: str = "auto"):
    """`torch.device` for "auto" (cuda, else mps, else cpu), "cpu", "cuda" or "mps"; UserError when unavailable."""
    import torch

    name = (device or "auto").lower()
    if name not in DEVICES:
        raise UserError(f"The device '{device}' is not known: use one of {', '.join(DEVICES)}.")
    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    if name == "auto":
        name = "cuda" if cuda else "mps" if mps else "cpu"
    elif name == "cuda" and not cuda:
        raise UserError("No CUDA GPU is usable by this PyTorch installation: use --device cpu (or auto).")
    elif name == "mps" and not mps:
        raise UserError("The Apple MPS device is not available here: use --device cpu (or auto).")
    return torch.device(name)


# ----------------------------------------------------------------------------------------- nnU-Net predictor
_PREDICTOR_CLASS = None
_MALLOC_TRIM = None  # glibc's malloc_trim once looked up, or False where there is none


def _return_freed_heap_to_the_system() -> None:
    """glibc's `malloc_trim(0)` between the sliding window and nnU-Net's export, where the peak is: the tiles'
    freed buffers otherwise stay in the process (demo model, 64x320x320 phantom, 2 threads: peak 1259-1327 MiB
    without, 1188-1193 MiB with). Nothing happens where there is no glibc."""
    global _MALLOC_TRIM
    if _MALLOC_TRIM is None:
        try:
            import ctypes

            _MALLOC_TRIM = ctypes.CDLL("libc.so.6").malloc_trim if sys.platform.startswith("linux") else False
        except (OSError, AttributeError):
            _MALLOC_TRIM = False
    if _MALLOC_TRIM:
        _MALLOC_TRIM(0)


def _predictor_class():
    """nnUNetPredictor subclass that reports each sliding-window tile (x folds) as a "predict" ProgressEvent."""
    global _PREDICTOR_CLASS
    if _PREDICTOR_CLASS is not None:
        return _PREDICTOR_CLASS
    from RootletSegLogic.segmentation.nnunet_startup import import_nnunet_predictor_module

    class ProgressPredictor(import_nnunet_predictor_module().nnUNetPredictor):
        progress: ProgressCallback = staticmethod(no_progress)
        tile_plan = None  # per axis, tile starts replacing nnU-Net's own steps (`roi_grid.planned_slicers`)
        _fold_index = -1
        _tiles_per_fold = 0
        _done = 0

        def predict_logits_from_preprocessed_data(self, data):
            self._fold_index = -1
            self.progress(ProgressEvent("preprocess", 1, 1, f"network input {tuple(data.shape[1:])} voxels"))
            return super().predict_logits_from_preprocessed_data(data)

        def predict_sliding_window_return_logits(self, input_image):
            self._fold_index += 1  # one call per fold of the ensemble
            logits = super().predict_sliding_window_return_logits(input_image)
            release = getattr(self.network, "release_memory", None)  # OpenVINO's buffers, not needed for export
            if release is not None:
                release()
            _return_freed_heap_to_the_system()
            return logits

        def _internal_get_sliding_window_slicers(self, image_size):
            slicers = planned_slicers(image_size, self.configuration_manager.patch_size, self.tile_step_size,
                                       self.tile_plan) or super()._internal_get_sliding_window_slicers(image_size)
            self._tiles_per_fold = len(slicers)
            self._done = max(self._fold_index, 0) * len(slicers)
            if self._fold_index <= 0:
                self._report()  # 0 of N once; later folds continue the count
            return slicers

        def _internal_maybe_mirror_and_predict(self, x):
            prediction = super()._internal_maybe_mirror_and_predict(x)
            self._done += 1
            self._report()
            return prediction

        def _report(self):
            folds = max(len(self.list_of_parameters or ()), 1)
            total = self._tiles_per_fold * folds
            tile = self._done - max(self._fold_index, 0) * self._tiles_per_fold
            message = f"tile {tile}/{self._tiles_per_fold}" + (
                f", fold {self._fold_index + 1}/{folds}" if folds > 1 else "")
            self.progress(ProgressEvent("predict", min(self._done, total), total, message))

    _PREDICTOR_CLASS = ProgressPredictor
    return _PREDICTOR_CLASS


class Segmenter:
    """A loaded model ready to segment images (load once, segment many).

    `model`: a validated ModelFolder (its `checkpoints` are the ensemble). `device`: "auto", "cpu", "cuda", "mps".
    `tta`: mirroring test-time augmentation (off by default, as SCT). `step`: sliding-window tile step as a fraction
    of the patch size (0.5, as SCT). `threads`: CPU threads for PyTorch (default: all CPUs; on a machine shared with
    other work, fewer threads can be much faster, as PyTorch's threads wait on each other).
    `trust_checkpoints`: load checkpoints with the full unpickler (can run code); None reads ROOTLETSEG_TRUST_CHECKPOINTS.
    Without it, checkpoints holding more than weights and plain values are refused (see `load_checkpoint`).
    `backend`: "auto" (OpenVINO on the CPU when installed, else PyTorch), "torch" or "openvino"
    (`segmentation.backends`); only the network call changes. With "auto" on the CPU, OpenVINO is set up at the
    first volume of `AUTO_OPENVINO_MIN_TILES` tiles or more (smaller ones run on PyTorch; `backend` tells what ran
    last). When OpenVINO cannot convert or compile the network, `warn` is told why and PyTorch runs it (`backend`
    then reads "torch"; `settings` keeps what was requested).
    """

    def __init__(self, model: ModelFolder, device: str = "auto", tta: bool = False, step: float = DEFAULT_STEP,
                 progress: Optional[ProgressCallback] = None, threads: Optional[int] = None,
                 trust_checkpoints: Optional[bool] = None, backend: str = "auto",
                 warn: Optional[Callable[[str], None]] = None):
        progress = progress or no_progress
        self.warn = warn or (lambda message: print(f"warning: {message}", file=sys.stderr))
        self.model = model
        self.trust_checkpoints = trust_from_environment() if trust_checkpoints is None else bool(trust_checkpoints)
        self.step = check_step(step)
        self.threads = check_threads(threads)
        self.tta = bool(tta)
        self.requested_device = device
        self.device = resolve_device(device)
        self.requested_backend = check_backend(backend)
        self.backend = choose_backend(self.requested_backend, self.device.type)
        self.openvino = None  # the OpenVINONetwork when OpenVINO runs the network
        self._deferred_openvino = None  # "auto" on the CPU: what `_use_openvino` needs, until a volume is big enough
        self._tile_weights = None  # the thread making nnU-Net's tile weights (`nnunet_startup.start_tile_weights`)
        self.checkpoint_sha256: Dict[Path, str] = {}  # absolute checkpoint path -> sha256 of the file (sidecar)
        self.orientation = model_orientation(model)
        with prints_to_stderr() as real_stdout:
            self._load(with_real_stdout(progress, real_stdout))

    def _load(self, progress: ProgressCallback) -> None:
        import torch
        from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
        from nnunetv2.utilities.label_handling.label_handling import (
            determine_num_input_channels,
        )
        from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

        model = self.model
        if self.device.type == "cpu":
            torch.set_num_threads(self.threads)
        folds = list(model.checkpoints.items())
        progress(ProgressEvent("load", 0, len(folds), "building the network"))
        try:
            plans_manager = PlansManager(model.plans_json)
            configuration = plans_manager.get_configuration(model.configuration)
            label_manager = plans_manager.get_label_manager(model.dataset_json)
            num_inputs = determine_num_input_channels(plans_manager, configuration, model.dataset_json)
        except (KeyError, TypeError, ValueError, AssertionError) as error:
            raise UserError(f"The model's plans.json/dataset.json in '{model.trainer_dir}' cannot be used by nnU-Net "
                            f"({type(error).__name__}: {error}): the model folder is damaged or not nnU-Net v2.") from None
        if num_inputs != 1:
            raise UserError(f"The model in '{model.trainer_dir}' expects {num_inputs} input images per case: "
                            "RootletSeg runs single-image models only.")
        num_outputs = label_manager.num_segmentation_heads
        predictor_class = _predictor_class()  # before any thread starts: its import briefly stands in for dynamo
        if self.device.type == "cpu":  # nnU-Net's tile weights, made while the network is built and loaded
            self._tile_weights = start_tile_weights(configuration.patch_size)
        try:
            network = get_network_from_plans(
                configuration.network_arch_class_name, configuration.network_arch_init_kwargs,
                configuration.network_arch_init_kwargs_req_import, num_inputs, num_outputs,
                allow_init=False, deep_supervision=False)
        except Cancelled:
            raise
        except Exception as error:  # a class or argument nnU-Net cannot build (the names were checked on load)
            raise UserError(f"The network described by the model's plans.json in '{model.trainer_dir}' cannot be "
                            f"built ({type(error).__name__}): the model folder is damaged or needs another "
                            "nnU-Net version.") from None
        parameters: List[dict] = []
        mirror_axes = (0, 1, 2)
        trainer_name = model.trainer_name
        for index, (fold, path) in enumerate(folds):
            checkpoint = load_checkpoint(path, self.trust_checkpoints)
            if not isinstance(checkpoint, dict) or "network_weights" not in checkpoint:
                raise UserError(f"The checkpoint '{path}' holds no 'network_weights': it is not an nnU-Net v2 checkpoint.")
            if index == 0:
                trainer_name = checkpoint.get("trainer_name", trainer_name)
                if "inference_allowed_mirroring_axes" in checkpoint:
                    mirror_axes = checkpoint["inference_allowed_mirroring_axes"]
            try:
                network.load_state_dict(checkpoint["network_weights"])
            except RuntimeError:
                raise UserError(f"The weights in '{path}' do not fit the network that plans.json describes "
                                f"(trainer {trainer_name}): the model folder is inconsistent or uses a custom network.") from None
            parameters.append(checkpoint["network_weights"])
            self.checkpoint_sha256[absolute_path(path)] = file_sha256(path)
            progress(ProgressEvent("load", index + 1, len(folds), f"fold {fold}"))
        network.load_state_dict(parameters[0])
        self.mirror_axes = tuple(int(a) for a in mirror_axes) if (self.tta and mirror_axes is not None) else None
        predictor = predictor_class(
            tile_step_size=self.step, use_gaussian=True, use_mirroring=self.tta,
            perform_everything_on_device=self.device.type == "cuda", device=self.device,
            verbose=False, verbose_preprocessing=False, allow_tqdm=False)
        predictor.manual_initialization(network, plans_manager, configuration, parameters, model.dataset_json,
                                        trainer_name, mirror_axes)
        self.predictor = predictor
        self._plans_manager, self._configuration = plans_manager, configuration
        if self.backend == "openvino" and self.requested_backend == "auto":
            self._deferred_openvino = (network, parameters, configuration, num_inputs, num_outputs)
            self.backend = "torch"  # until a volume of AUTO_OPENVINO_MIN_TILES tiles comes (see `segment`)
        elif self.backend == "openvino":
            self._use_openvino(network, parameters, configuration, num_inputs, num_outputs, progress)
        self.label_dtype = np.uint8 if max(label_manager.all_labels) < 256 else np.uint16

    def _use_openvino(self, network, parameters: List[dict], configuration, num_inputs: int, num_outputs: int,
                      progress: ProgressCallback) -> None:
        """Swap nnU-Net's network call for OpenVINO (converted once per model and patch size, then cached); on any
        failure warn and keep PyTorch."""
        from RootletSegLogic.segmentation.openvino_backend import OpenVINONetwork

        progress(ProgressEvent("load", len(parameters), len(parameters), "OpenVINO: converting or reading the cache"))
        architecture = {"class": configuration.network_arch_class_name,
                        "kwargs": configuration.network_arch_init_kwargs}
        try:
            self.openvino = OpenVINONetwork.create(
                network, parameters, architecture, num_outputs, configuration.patch_size, num_inputs,
                self.threads, weights_sha256=list(self.checkpoint_sha256.values()))
        except Cancelled:
            raise
        except Exception as error:  # conversion / compilation can fail in many ways: PyTorch still works
            detail = " ".join(str(error).split())[:200]
            self.warn(f"OpenVINO could not run this network ({type(error).__name__}: {detail}); "
                      "PyTorch runs it instead (use --backend torch to skip the attempt).")
            self.backend = "torch"
            network.load_state_dict(parameters[0])
            return
        self.predictor.network = self.openvino
        self.backend = "openvino"

    def tiles_per_fold(self, shape_zyx, spacing_zyx) -> int:
        """Sliding-window tiles per fold for an image of `shape_zyx` voxels at `spacing_zyx` mm in the model's
        orientation (`backends.sliding_window_tiles`)."""
        return sliding_window_tiles(shape_zyx, spacing_zyx, self._configuration,
                                    self._plans_manager.transpose_forward, self.step)

    def align_roi(self, image: sitk.Image, box):
        """`box` (a `roi.RoiBox` of `image`) grown onto this model's resampling grid and tiles
        (`roi_grid.align_box`), so that the crop gives the network what the whole volume gives it."""
        reorientation = Reorientation(image, self.orientation)
        return align_box(image, box, reorientation.order, reorientation.flips, self._plans_manager.transpose_forward,
                         self._configuration.spacing, self._configuration.patch_size, self.step)

    @property
    def settings(self) -> dict:
        """What was run, for the sidecar: device, backend, tta, step and the fixed SCT settings."""
        return {
            "backend": self.backend,
            "backend_requested": self.requested_backend,
            "openvino": self.openvino.record if self.openvino is not None else None,
            "device": self.device.type,
            "device_requested": self.requested_device,
            "threads": self.threads if self.device.type == "cpu" else None,
            "tta": self.tta,
            "mirror_axes": list(self.mirror_axes) if self.mirror_axes else None,
            "step": self.step,
            "gaussian": True,
            "postprocessing": None,
            "folds": [str(f) for f in self.model.folds],
        }

    def segment(self, image: sitk.Image, progress: Optional[ProgressCallback] = None,
                finish_export: bool = True, tile_starts: Optional[tuple] = None) -> sitk.Image:
        """The rootlet label map of `image` on exactly its grid (see the module docstring). `tile_starts`: per
        model axis, the tiles' first voxels in place of nnU-Net's own steps (a crop placed on the whole volume's
        tiles, `roi_grid`), or None; a plan that does not fit the network's input is not used."""
        progress = progress or no_progress
        if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
            raise UserError(f"The image has {image.GetDimension()} dimensions and "
                            f"{image.GetNumberOfComponentsPerPixel()} values per voxel: a 3D scalar volume is needed.")
        reorientation = Reorientation(image, self.orientation)
        oriented = reorientation.apply(image)
        array = sitk.GetArrayFromImage(oriented).astype(np.float32)[None]  # (c=1, z, y, x), as SimpleITKIO
        if not np.isfinite(array).all():
            raise UserError("The image contains NaN or infinite voxels: fix or mask them first.")
        spacing_zyx = [float(s) for s in oriented.GetSpacing()[::-1]]
        with prints_to_stderr() as real_stdout:
            emit = with_real_stdout(progress, real_stdout)
            if self._deferred_openvino is not None and self.tiles_per_fold(array.shape[1:], spacing_zyx) >= \
                    AUTO_OPENVINO_MIN_TILES:
                deferred, self._deferred_openvino = self._deferred_openvino, None
                self._use_openvino(*deferred, emit)
            emit(ProgressEvent("preprocess", 0, 1, f"image {tuple(array.shape[1:])} in {self.orientation}"))
            finish(self._tile_weights)
            self._tile_weights = None
            self.predictor.progress = emit
            self.predictor.tile_plan = tile_starts
            try:
                labels_zyx = self.predictor.predict_single_npy_array(array, {"spacing": spacing_zyx})
            finally:
                self.predictor.progress = no_progress
                self.predictor.tile_plan = None
            emit(ProgressEvent("export", 0, 1, "label map back onto the input grid"))
        labels = sitk.GetImageFromArray(np.ascontiguousarray(labels_zyx, dtype=self.label_dtype))
        labels.CopyInformation(oriented)
        labels = reorientation.restore(labels)  # exact input grid (CopyInformation of the input)
        if finish_export:
            progress(ProgressEvent("export", 1, 1, "done"))
        return labels


def segment_image(image: sitk.Image, model: ModelFolder, device: str = "auto", tta: bool = False,
                  step: float = DEFAULT_STEP, progress: Optional[ProgressCallback] = None,
                  threads: Optional[int] = None, trust_checkpoints: Optional[bool] = None,
                  backend: str = "auto", warn: Optional[Callable[[str], None]] = None) -> sitk.Image:
    """Rootlet label map (uint8, value = spinal level) of a 3D image, on exactly the input grid.

    `image` may have any orientation, oblique included; `model` is a validated ModelFolder (all of its folds are
    ensembled; restrict with `model.select_folds`). Stages reported: load, preprocess, predict (one event per
    sliding-window tile per fold), export.
    """
    return Segmenter(model, device, tta, step, progress, threads, trust_checkpoints, backend,
                     warn).segment(image, progress)

#!/usr/bin/env python
"""A reference runner doing exactly what SCT's rootlet segmentation does, from nnU-Net's public API only.

    python bench/sct_reference_runner.py IMAGE MODEL_TRAINER_DIR OUTPUT [--threads N] [--device cpu|cuda]

SCT's path (see docs of spinalcordtoolbox deepseg; facts in the project's DOMAIN notes):
1. Reorient the image to the model's `image_orientation` (dataset.json, SCT "from" letters) or SCT's "LPI", i.e.
   SimpleITK DICOMOrient "RAS" ("to" letters); no resampling.
2. Hand nnU-Net the voxels as (1, z, y, x) float32 with the spacing reversed (as SimpleITKIO would).
3. `nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=False, perform_everything_on_device=False)`
   (SCT keeps nnU-Net's logits off the device), every `fold_*` present ensembled, `predict_single_npy_array`.
4. The label map back to the input orientation and grid; written as uint8.

One difference from SCT, none in the computation: SCT calls `initialize_from_trained_model_folder`, which looks the
trainer class up by importing nnU-Net's training code (timm / torchvision, which do not work here); this runner
builds the same network from plans.json (`get_network_from_plans`) and loads the same weights with
`manual_initialization`, which is what that lookup ends in for nnUNetTrainer models.

Prints one JSON line: {"tiles": ..., "predict_s": ..., "folds": ...}. Nothing from RootletSeg is imported.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

SCT_LETTERS_TO_ITK = str.maketrans("RLAPSI", "LRPAIS")  # SCT names where axes come FROM; ITK where they point TO


def build_predictor(trainer_dir: Path, device: str = "cpu", on_device: bool = False):
    """(nnUNetPredictor set up as SCT sets it up, dataset.json) for a trained-model folder, every fold present."""
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    trainer_dir = Path(trainer_dir)
    dataset_json = json.loads((trainer_dir / "dataset.json").read_text())
    plans = json.loads((trainer_dir / "plans.json").read_text())
    plans_manager = PlansManager(plans)
    configuration = plans_manager.get_configuration("3d_fullres")
    label_manager = plans_manager.get_label_manager(dataset_json)
    num_inputs = determine_num_input_channels(plans_manager, configuration, dataset_json)
    parameters, trainer_name, mirror_axes = [], "nnUNetTrainer", (0, 1, 2)
    for fold_dir in sorted(trainer_dir.glob("fold_*")):
        checkpoint = torch.load(fold_dir / "checkpoint_final.pth", map_location="cpu", weights_only=False)
        parameters.append(checkpoint["network_weights"])
        trainer_name = checkpoint.get("trainer_name", trainer_name)
        mirror_axes = checkpoint.get("inference_allowed_mirroring_axes", mirror_axes)
    network = get_network_from_plans(
        configuration.network_arch_class_name, configuration.network_arch_init_kwargs,
        configuration.network_arch_init_kwargs_req_import, num_inputs, label_manager.num_segmentation_heads,
        allow_init=False, deep_supervision=False)
    network.load_state_dict(parameters[0])
    predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=False,
                                perform_everything_on_device=on_device, device=torch.device(device), verbose=False,
                                verbose_preprocessing=False, allow_tqdm=False)
    predictor.manual_initialization(network, plans_manager, configuration, parameters, dataset_json, trainer_name,
                                    mirror_axes)
    return predictor, dataset_json


def predict(predictor, dataset_json: dict, image: sitk.Image) -> sitk.Image:
    """SCT's steps 1, 2 and 4 around nnU-Net's `predict_single_npy_array`: the label map on the input grid."""
    sct_code = dataset_json.get("image_orientation", "LPI")
    model_code = sct_code.upper().translate(SCT_LETTERS_TO_ITK)
    input_code = sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(image.GetDirection())
    oriented = sitk.DICOMOrient(image, model_code)
    data = sitk.GetArrayFromImage(oriented)[None].astype(np.float32)
    labels_zyx = predictor.predict_single_npy_array(data, {"spacing": list(oriented.GetSpacing())[::-1]})
    labels = sitk.GetImageFromArray(np.asarray(labels_zyx).astype(np.uint8))
    labels.CopyInformation(oriented)
    labels = sitk.DICOMOrient(labels, input_code)
    labels.CopyInformation(image)
    return labels


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("image")
    parser.add_argument("trainer_dir", help="the nnUNetTrainer__nnUNetPlans__3d_fullres folder")
    parser.add_argument("output")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--on-device", action="store_true",
                        help="nnU-Net's perform_everything_on_device=True (SCT: off); only meaningful on a GPU")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    predictor, dataset_json = build_predictor(Path(args.trainer_dir), args.device, args.on_device)
    tiles = []
    original = predictor._internal_get_sliding_window_slicers

    def count_tiles(image_size):
        slicers = original(image_size)
        tiles.append(len(slicers))
        return slicers

    predictor._internal_get_sliding_window_slicers = count_tiles
    image = sitk.ReadImage(args.image, sitk.sitkFloat32)
    start = time.perf_counter()
    labels = predict(predictor, dataset_json, image)
    predict_s = time.perf_counter() - start
    sitk.WriteImage(labels, args.output, True)
    print(json.dumps({"tiles": sum(tiles), "predict_s": predict_s, "folds": len(predictor.list_of_parameters)}),
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

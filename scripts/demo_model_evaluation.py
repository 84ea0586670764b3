"""Evaluation of the demo model on held-out phantoms with a real `nnUNetPredictor` (tile step 0.5, Gaussian
weighting, no mirroring, as SCT runs it), on the input grid, the checkpoint read back from disk."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from demo_model_recipe import MODEL_ORIENTATION, build_network
from RootletSegLogic.images.orientation import Reorientation
from RootletSegLogic.synthetic.phantom import LEVELS, make_phantom

# held-out evaluation sets: (name, shape R-L/A-P/S-I voxels, spacing mm, orientation)
EVAL_GRIDS = (("48x48x128 1mm RAS", (48, 48, 128), (1.0, 1.0, 1.0), "RAS"),
              ("64x320x320 0.8mm LAS", (64, 320, 320), (0.8, 0.8, 0.8), "LAS"))
EVAL_CROP_MARGIN_MM = 15.0
HELD_OUT_SEEDS = (1000, 1001, 1002, 1003, 1004)


def make_predictor(trainer_dir: Path, threads: int):
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    torch.set_num_threads(threads)
    plans = json.loads((trainer_dir / "plans.json").read_text())
    dataset_json = json.loads((trainer_dir / "dataset.json").read_text())
    checkpoint = torch.load(trainer_dir / "fold_all" / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    plans_manager = PlansManager(plans)
    configuration_manager = plans_manager.get_configuration(checkpoint["init_args"]["configuration"])
    network = build_network(plans, deep_supervision=False)
    predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=False,
                                device=torch.device("cpu"), verbose=False, verbose_preprocessing=False,
                                allow_tqdm=False)
    predictor.manual_initialization(network, plans_manager, configuration_manager, [checkpoint["network_weights"]],
                                    dataset_json, checkpoint["trainer_name"],
                                    checkpoint["inference_allowed_mirroring_axes"])
    network.load_state_dict(checkpoint["network_weights"])
    return predictor


def predict(predictor, image: sitk.Image) -> sitk.Image:
    """Label map on the input grid: reorient to RAS, nnU-Net on (z, y, x), restore the orientation."""
    reorientation = Reorientation(image, MODEL_ORIENTATION)
    oriented = reorientation.apply(image)
    data = sitk.GetArrayFromImage(oriented)[None].astype(np.float32)
    seg = predictor.predict_single_npy_array(data, {"spacing": list(oriented.GetSpacing())[::-1]})
    out = sitk.GetImageFromArray(np.asarray(seg).astype(np.uint8))
    out.CopyInformation(oriented)
    return reorientation.restore(out)


def dice_per_level(prediction: np.ndarray, truth: np.ndarray) -> dict:
    result = {}
    for level in LEVELS:
        p, t = prediction == level, truth == level
        denominator = p.sum() + t.sum()
        result[level] = float(2 * (p & t).sum() / denominator) if denominator else 1.0
    return result


def crop_around_cord(phantom, margin_mm: float = EVAL_CROP_MARGIN_MM):
    """(image, rootlets) cropped on the phantom's own grid (any orientation): the cord's box + `margin_mm` across
    the cord, and the rootlets' S-I extent up to the PMJ, +- `margin_mm`, along the S-I axis."""
    image = phantom.image
    spacing = np.array(image.GetSpacing())
    direction = np.array(image.GetDirection()).reshape(3, 3)
    si_axis = int(np.argmax(np.abs(direction[2])))  # index axis closest to LPS S
    cord = sitk.GetArrayViewFromImage(phantom.cord)
    rootlets = sitk.GetArrayViewFromImage(phantom.rootlets)
    pmj = sitk.GetArrayViewFromImage(phantom.pmj)
    lower, upper = [], []
    for axis in range(3):  # ITK index axes; NumPy axes are reversed
        others = tuple(a for a in range(3) if a != 2 - axis)
        source = np.maximum(rootlets, pmj).max(axis=others) if axis == si_axis else cord.max(axis=others)
        hits = np.nonzero(source > 0)[0]
        margin = int(np.ceil(margin_mm / spacing[axis]))
        lower.append(max(int(hits[0]) - margin, 0))
        upper.append(min(int(hits[-1]) + margin + 1, image.GetSize()[axis]))
    region = tuple(slice(lo, hi) for lo, hi in zip(lower, upper))
    return image[region], phantom.rootlets[region]


def evaluate(trainer_dir: Path, seeds, threads: int) -> dict:
    """Per-level Dice on held-out phantoms: each grid of EVAL_GRIDS, whole and cropped around the cord."""
    predictor = make_predictor(trainer_dir, threads)
    names = ["C2", "C3", "C4", "C5", "C6", "C7", "C8", "T1"]
    results = {}
    for grid_name, shape, spacing, orientation in EVAL_GRIDS:
        for cropped in (False, True):
            set_name = grid_name + (f", cord crop +{EVAL_CROP_MARGIN_MM:g} mm" if cropped else "")
            print(f"== {set_name}", flush=True)
            table = {}
            for seed in seeds:
                phantom = make_phantom(seed=seed, shape=shape, spacing=spacing, orientation=orientation)
                image, truth = crop_around_cord(phantom) if cropped else (phantom.image, phantom.rootlets)
                t = time.monotonic()
                prediction = predict(predictor, image)
                seconds = time.monotonic() - t
                dice = dice_per_level(sitk.GetArrayFromImage(prediction), sitk.GetArrayFromImage(truth))
                table[seed] = dice
                row = " ".join(f"{v:.3f}" for v in dice.values())
                print(f"seed {seed} {tuple(image.GetSize())}: {row}   ({seconds:.1f} s)", flush=True)
            means = [np.mean([table[s][lv] for s in seeds]) for lv in LEVELS]
            mins = [np.min([table[s][lv] for s in seeds]) for lv in LEVELS]
            print("level : " + " ".join(f"{n:>5}" for n in names))
            print("mean  : " + " ".join(f"{m:.3f}" for m in means))
            print("min   : " + " ".join(f"{m:.3f}" for m in mins), flush=True)
            results[set_name] = {"per_seed": table, "mean": dict(zip(names, means)), "min": dict(zip(names, mins))}
    return results


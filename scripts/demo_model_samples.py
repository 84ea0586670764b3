"""Training samples of the demo model: a pool of phantoms at several spacings, and patches that imitate one
sliding-window tile of an unseen image (see scripts/train_demo_model.py)."""

from __future__ import annotations

import numpy as np

from demo_model_recipe import PATCH_ZYX, preprocess_case
from RootletSegLogic.synthetic.phantom import make_phantom

POOL_FOV_MM = (64.0, 112.0, 240.0)  # training phantoms' box along R-L, A-P, S-I (centred as make_phantom centres)


def pool_spacing(rng) -> tuple:
    """A training phantom's spacing (mm, R-L, A-P, S-I): 1 mm, isotropic 0.7-1.25 mm, or anisotropic."""
    kind = rng.integers(3)
    if kind == 0:
        return (1.0, 1.0, 1.0)
    if kind == 1:
        return (float(rng.uniform(0.7, 1.25)),) * 3
    in_plane = float(rng.uniform(0.7, 1.1))
    return (float(rng.uniform(0.8, 1.8)), in_plane, in_plane)


def pool_case(seed: int, plans: dict, dataset_json: dict, pool_fov_mm=POOL_FOV_MM) -> dict:
    """One training phantom on the pool box at its own spacing, preprocessed as inference would (1 mm, RAS, z-scored
    over the whole box), with the index range (z) that must lie in every patch: rootlets -3 .. PMJ region +12."""
    spacing = pool_spacing(np.random.default_rng(np.random.SeedSequence([seed, 77])))
    shape = tuple(int(round(f / s)) for f, s in zip(pool_fov_mm, spacing))
    phantom = make_phantom(seed=seed, shape=shape, spacing=spacing)
    data, seg = preprocess_case(phantom.image, phantom.rootlets, plans, dataset_json)
    seg = seg[0].astype(np.int8)
    rows = np.nonzero(seg.max(axis=(1, 2)) > 0)[0]
    columns_y = np.nonzero(seg.max(axis=(0, 2)) > 0)[0]
    columns_x = np.nonzero(seg.max(axis=(0, 1)) > 0)[0]
    return {"data": data[0].astype(np.float32), "seg": seg,
            "keep_z": (max(int(rows[0]) - 3, 0), min(int(rows[-1]) + 12, seg.shape[0] - 1)),
            "keep_y": (int(columns_y[0]), int(columns_y[-1])), "keep_x": (int(columns_x[0]), int(columns_x[-1]))}


def _random_box_axis(rng, size: int, keep: tuple, length: int) -> tuple:
    """[start, stop) of a random window of `length` voxels on an axis of `size`, holding `keep` (inclusive)."""
    length = int(min(max(length, keep[1] - keep[0] + 1), size))
    low = max(0, keep[1] + 1 - length)
    high = min(keep[0], size - length)
    start = int(rng.integers(low, high + 1)) if high >= low else max(0, min(keep[0], size - length))
    return start, start + length


def _patch_axis(rng, box_length: int, patch: int, keep_in_box: tuple | None) -> tuple:
    """(source start, source stop, destination start) of a patch on an axis of a box: nnU-Net's centred zero padding
    when the box is smaller than the patch, else a random tile position (holding `keep_in_box` when given)."""
    if box_length <= patch:
        pad_below = (patch - box_length) // 2
        return 0, box_length, pad_below
    low, high = 0, box_length - patch
    if keep_in_box is not None:
        low, high = max(low, keep_in_box[1] + 1 - patch), min(high, keep_in_box[0])
        if high < low:
            low = high = min(max(keep_in_box[0], 0), box_length - patch)
    start = int(rng.integers(low, high + 1))
    return start, start + patch, 0


def tile_sample(case: dict, rng, far_fraction: float = 0.0):
    """(image (z, y, x) float32, labels (z, y, x) int64) of one patch: a random field of view z-scored over itself,
    then a tile of it (see the module docstring). With probability `far_fraction` the field of view is as wide A-P
    as the pool phantom, so the tile often lies far in front of or behind the cord (a tile of a large sagittal scan)."""
    data, seg = case["data"], case["seg"]
    z_margin = rng.uniform(3, 40, size=2)
    keep_z = case["keep_z"]
    box_z = _random_box_axis(rng, data.shape[0], keep_z, int(keep_z[1] - keep_z[0] + z_margin.sum()))
    wide = far_fraction > 0 and rng.random() < far_fraction
    box_y = _random_box_axis(rng, data.shape[1], case["keep_y"],
                             int(rng.uniform(112, data.shape[1] + 1)) if wide else int(rng.uniform(32, 112)))
    box_x = _random_box_axis(rng, data.shape[2], case["keep_x"], int(rng.uniform(32, 64)))
    box = tuple(slice(*b) for b in (box_z, box_y, box_x))
    image = data[box]
    image = (image - image.mean()) / max(float(image.std()), 1e-8)
    labels = seg[box]
    keep_in_box = (keep_z[0] - box_z[0], keep_z[1] - box_z[0])
    out_image = np.zeros(PATCH_ZYX, dtype=np.float32)
    out_labels = np.zeros(PATCH_ZYX, dtype=np.int64)
    source, destination = [], []
    for axis in range(3):
        start, stop, dest = _patch_axis(rng, image.shape[axis], PATCH_ZYX[axis], keep_in_box if axis == 0 else None)
        source.append(slice(start, stop))
        destination.append(slice(dest, dest + stop - start))
    out_image[tuple(destination)] = image[tuple(source)]
    out_labels[tuple(destination)] = labels[tuple(source)]
    return out_image, out_labels



def augment_in_place(x: np.ndarray, y: np.ndarray, rng) -> None:
    """Augmentation that keeps anatomy, per sample of a batch x (b, 1, z, y, x) / y (b, z, y, x): left-right flip
    (x is the last axis, R-L), contrast and brightness, Gaussian noise (no S-I flip)."""
    for b in range(x.shape[0]):
        if rng.random() < 0.5:
            x[b] = x[b][..., ::-1]
            y[b] = y[b][..., ::-1]
        x[b] = x[b] * rng.uniform(0.8, 1.2) + rng.uniform(-0.2, 0.2)
        if rng.random() < 0.5:
            x[b] = x[b] + rng.normal(0, rng.uniform(0.0, 0.15), size=x[b].shape).astype(np.float32)


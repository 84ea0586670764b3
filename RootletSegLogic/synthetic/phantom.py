"""Synthetic cervical spine phantom with known truth: a T2w-like image, rootlets C2..T1, cord, discs and PMJ.

Everything is defined analytically in physical space (world RAS, mm) and then sampled onto a voxel grid, so any
grid (shape, spacing, orientation) shows the same physical anatomy. The truth (`Phantom.truth`) is computed from
the sampled label maps, so it is exact for the grid that was asked for.

Default grid (`DEFAULT_SHAPE`, `DEFAULT_SPACING`): 48 (x, R-L) x 48 (y, A-P) x 128 (z, S-I) voxels at 1 mm, in
RAS orientation ("to" letters), centred on the physical box centre `BOX_CENTER_RAS` = (0, 0, 64) mm. `shape` and
`spacing` always name the R-L, A-P and S-I axes (before any reorientation); a non-RAS `orientation` only permutes
and flips the axes afterwards (`reorient`: no resampling).

Anatomy (mm, world RAS; per-seed jitter on every position):
- Spinal cord: an elliptic cylinder (about 12 mm R-L x 8 mm A-P, wider at the cervical enlargement C5-C7) along a
  centerline with a gentle A-P curve; above the pontomedullary junction (PMJ) it widens anteriorly (brainstem).
- CSF: an elliptic canal (about 22 x 15 mm) around the cord, bright on T2w.
- Rootlets: for each spinal level C2..T1 (labels 2..9) and each side, a dorsal and a ventral bundle of 3 rootlets
  (tubes of radius `ROOTLET_RADIUS_MM`) leave the cord at the dorso-/ventro-lateral sulcus across the level's
  rostro-caudal extent and run laterally and caudally, converging at the intervertebral foramen. They are dark on
  T2w where they cross the CSF; only their part inside the canal and outside the cord is labelled.
- Spinal levels are 9-11 mm high with a 1.5-2.5 mm gap between consecutive levels; the PMJ lies 7-9 mm above C2.
- Vertebrae: vertebral bodies (intermediate-dark) and discs (brighter) anterior to the canal. Disc N (SCT value,
  2 = C1/C2 ... 9 = T1/T2) lies near the boundary between spinal levels N and N+1 (spinal C(n+1) at vertebra Cn),
  shifted caudally by a little more at each lower level (the paper's progressive rostro-caudal shift).
- Image: CSF 1.0, cord 0.45, rootlets 0.12, discs 0.65, vertebral bodies 0.35, other tissue about 0.25 with a smooth
  variation, partial-volume edges, a smooth multiplicative bias field, Gaussian noise (3 % of CSF), and a global
  intensity scale of 300-2000 that varies by seed.

The FOV (128 mm S-I) is shorter than a real neck: the PMJ-to-C2 distance is compressed accordingly.

This module samples and writes the phantom; the anatomy of a seed is `synthetic/anatomy.py`, the truth computed from
the sampled label maps (entry-zone level bounds, step-1 spine labels) is `synthetic/truth.py`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np
import SimpleITK as sitk

from RootletSegLogic.errors import UserError
from RootletSegLogic.images.atomic import atomic_outputs, output_folder
from RootletSegLogic.images.files import absolute_path
from RootletSegLogic.images.orientation import (
    direction_for_axcodes,
    reorient,
    validate_axcodes,
)
from RootletSegLogic.images.world import ras_to_lps
from RootletSegLogic.levels.types import DISC_NAMES, PMJ_VALUE, SPINAL_LEVEL_NAMES
from RootletSegLogic.synthetic.anatomy import (
    DISC_VALUES,
    LEVELS,
    ROOTLET_RADIUS_MM,
    PhantomAnatomy,
)
from RootletSegLogic.synthetic.truth import (
    ENTRY_ZONE_DILATION_VOXELS,
    entry_zone_bounds,
    spine_labels,
)

DEFAULT_SHAPE = (48, 48, 128)  # voxels along R-L, A-P, S-I
DEFAULT_SPACING = (1.0, 1.0, 1.0)  # mm along R-L, A-P, S-I
BOX_CENTER_RAS = (0.0, 0.0, 64.0)  # mm: every grid is centred here
OUTPUT_FILES = ("image", "rootlets", "cord", "discs", "pmj")
_MAX_VOXELS = 64_000_000


@dataclass
class Phantom:
    """A sampled phantom: sitk images on one grid, plus the truth (JSON-serialisable dict).

    `truth` keys: "seed", "grid" (shape/spacing along R-L, A-P, S-I; orientation; origin_lps; direction),
    "levels" ({"C2": {"label": 2, "rostral_S_mm", "caudal_S_mm", "n_voxels"}, ...}: S in world RAS mm of the
    highest/lowest voxel centres of the level's rootlet voxels inside the cord dilated by a 3-voxel ball),
    "discs" ({"2": {"name": "C1/C2", "position_ras": [x, y, z]}, ...}: voxel centres, RAS mm),
    "pmj_ras" ([x, y, z] RAS mm, voxel centre), "entry_zone" (the definition used).
    `spine` is the truth a spine (landmark) model learns, on the same grid: TotalSpineSeg's step-1 values
    (landmarks/scheme.py): cord 9, canal (CSF, outside the cord) 8, vertebral bodies 6 (the body above the C1/C2
    disc 7 = "C1"), discs 1 except the landmark discs C2/C3 (2) and C7/T1 (3). It is not written by write_phantom.
    """

    image: sitk.Image
    rootlets: sitk.Image
    cord: sitk.Image
    discs: sitk.Image
    pmj: sitk.Image
    truth: dict = field(default_factory=dict)
    seed: int = 0
    spine: Optional[sitk.Image] = None  # TotalSpineSeg step-1 labels (landmarks/scheme.py); not in OUTPUT_FILES


    def images(self) -> Dict[str, sitk.Image]:
        return {name: getattr(self, name) for name in OUTPUT_FILES}


# ---------------------------------------------------------------------------------------------- sampling
def _ellipse_sd(dx, dy, a, b):
    """Approximate signed distance (mm, negative inside) to an axis-aligned ellipse with half-axes a, b."""
    rho = np.sqrt((dx / a) ** 2 + (dy / b) ** 2)
    return (rho - 1.0) * np.minimum(a, b)


def _occupancy(sd, width):
    """Partial-volume fraction of a voxel whose centre is at signed distance sd (mm) from an edge."""
    return np.clip(0.5 - sd / width, 0.0, 1.0)


def _check_grid(shape, spacing):
    try:
        shape = tuple(int(v) for v in shape)
        spacing = tuple(float(v) for v in spacing)
    except (TypeError, ValueError):
        raise UserError("The phantom shape and spacing must be three numbers each (R-L, A-P, S-I).") from None
    if len(shape) != 3 or len(spacing) != 3:
        raise UserError("The phantom shape and spacing must be three numbers each (R-L, A-P, S-I).")
    if min(shape) < 8:
        raise UserError(f"The phantom shape {shape} is too small: give at least 8 voxels along each axis.")
    if not all(np.isfinite(spacing)) or min(spacing) <= 0.1 or max(spacing) > 4.0:
        raise UserError(f"The phantom spacing {spacing} is out of range: give 0.1 to 4 mm along each axis.")
    if int(np.prod(shape)) > _MAX_VOXELS:
        raise UserError(f"The phantom shape {shape} is too large: keep it under {_MAX_VOXELS:,} voxels.")
    return shape, spacing


def _ras_grid(shape, spacing):
    """Voxel-centre coordinates (RAS mm) along each axis of a RAS grid centred on BOX_CENTER_RAS."""
    return [BOX_CENTER_RAS[a] + (np.arange(shape[a]) - (shape[a] - 1) / 2.0) * spacing[a] for a in range(3)]


def _to_image(array_zyx: np.ndarray, shape, spacing, axes) -> sitk.Image:
    image = sitk.GetImageFromArray(array_zyx)
    image.SetSpacing(tuple(spacing))
    origin_ras = (axes[0][0], axes[1][0], axes[2][0])
    image.SetOrigin(tuple(float(v) for v in ras_to_lps(origin_ras)))
    image.SetDirection(direction_for_axcodes("RAS"))
    return image



def make_phantom(seed: int = 0, shape: Optional[Sequence[int]] = None, spacing: Optional[Sequence[float]] = None,
                 orientation: str = "RAS") -> Phantom:
    """Sample the phantom of `seed` onto a grid.

    shape (voxels) and spacing (mm) are along R-L, A-P, S-I (defaults DEFAULT_SHAPE, DEFAULT_SPACING); the grid is
    centred on BOX_CENTER_RAS. orientation ("to" letters, e.g. "RAS", "LPS", "PSR") permutes/flips the axes after
    sampling, without resampling. The same seed always gives bit-identical arrays.
    """
    shape, spacing = _check_grid(shape or DEFAULT_SHAPE, spacing or DEFAULT_SPACING)
    orientation = validate_axcodes(orientation)
    anatomy = PhantomAnatomy(seed)
    axes = _ras_grid(shape, spacing)
    nx, ny, nz = shape
    Z = axes[2][:, None, None]
    Y = axes[1][None, :, None]
    X = axes[0][None, None, :]
    width = float(np.mean(spacing))  # partial-volume ramp width (mm)

    # cord and canal (broadcast (z, 1, 1) section parameters against (1, y, x) coordinates)
    cx, cy, ca, cb = (np.broadcast_to(np.asarray(v, dtype=float), axes[2].shape)[:, None, None]
                      for v in anatomy.cord_section(axes[2]))
    cord_sd = _ellipse_sd(X - cx, Y - cy, ca, cb)
    kx, ky, ka, kb = (np.broadcast_to(np.asarray(v, dtype=float), axes[2].shape)[:, None, None]
                      for v in anatomy.canal_section(axes[2]))
    canal_sd = _ellipse_sd(X - kx, Y - ky, ka, kb)
    cord = cord_sd < 0
    canal = canal_sd < 0

    # rootlets: distance to each tube axis, within the tube's bounding box
    best = np.full((nz, ny, nx), np.inf)
    level_of = np.zeros((nz, ny, nx), dtype=np.uint8)
    margin = ROOTLET_RADIUS_MM + 2 * max(spacing)
    for level, p0, p1 in anatomy.segments:
        lo = np.minimum(p0, p1) - margin
        hi = np.maximum(p0, p1) + margin
        idx = []
        for a in range(3):
            sel = np.nonzero((axes[a] >= lo[a]) & (axes[a] <= hi[a]))[0]
            idx.append(slice(sel[0], sel[-1] + 1) if sel.size else slice(0, 0))
        sx, sy, sz = idx
        if min(s.stop - s.start for s in idx) <= 0:
            continue
        qx = axes[0][sx][None, None, :] - p0[0]
        qy = axes[1][sy][None, :, None] - p0[1]
        qz = axes[2][sz][:, None, None] - p0[2]
        d = p1 - p0
        t = np.clip((qx * d[0] + qy * d[1] + qz * d[2]) / float(d @ d), 0.0, 1.0)
        dist = np.sqrt((qx - t * d[0]) ** 2 + (qy - t * d[1]) ** 2 + (qz - t * d[2]) ** 2)
        region = (sz, sy, sx)
        closer = dist < best[region]
        best[region] = np.where(closer, dist, best[region])
        level_of[region] = np.where(closer, level, level_of[region])
    rootlet_sd = best - ROOTLET_RADIUS_MM
    rootlets = np.where((rootlet_sd < 0) & canal & ~cord, level_of, 0).astype(np.uint8)

    # vertebral bodies and discs, anterior to the canal
    disc_z = np.array([anatomy.disc_z[v] for v in DISC_VALUES])
    body_top = anatomy.disc_z[2] + 14.0
    body_center_y = ky + kb + 2.0 + 8.0
    body_radial = _ellipse_sd(X - kx, Y - body_center_y, 9.0, 8.0)
    dz_disc = np.min(np.abs(axes[2][:, None] - disc_z[None, :]), axis=1)[:, None, None]
    disc_sd = np.maximum(body_radial, dz_disc - 2.0)
    body_sd = np.maximum(body_radial, np.maximum(2.0 - dz_disc, (axes[2] - body_top)[:, None, None]))
    nearest_disc = np.argmin(np.abs(axes[2][:, None] - disc_z[None, :]), axis=1)  # per slice: index in DISC_VALUES

    # image
    xn = X / 24.0
    yn = Y / 24.0
    zn = (Z - 64.0) / 64.0
    tc = anatomy.tissue_coeffs
    tissue = 0.25 + tc[0] * xn + tc[1] * yn + tc[2] * zn + tc[3] * np.sin(3 * zn + 2 * yn)
    image = tissue + (0.35 - tissue) * _occupancy(body_sd, width)
    image = image + (0.65 - image) * _occupancy(disc_sd, width)
    canal_occ = _occupancy(canal_sd, width)
    image = image + (1.0 - image) * canal_occ
    rootlet_occ = _occupancy(rootlet_sd, width) * canal_occ * (1.0 - _occupancy(cord_sd, width))
    image = image + (0.12 - image) * rootlet_occ
    image = image + (0.45 - image) * _occupancy(cord_sd, width)
    bc = anatomy.bias_coeffs
    bias = 1.0 + bc[0] * xn + bc[1] * yn + bc[2] * zn
    noise_rng = np.random.default_rng(np.random.SeedSequence([int(seed), 7, *shape]))
    image = image * bias + anatomy.noise * noise_rng.standard_normal(image.shape)
    image = (np.maximum(image, 0.01) * anatomy.scale).astype(np.float32)

    # discs and PMJ: one voxel each, nearest to the analytic point
    def nearest_index(point):
        return tuple(int(np.clip(np.rint((point[a] - axes[a][0]) / spacing[a]), 0, shape[a] - 1)) for a in range(3))

    discs = np.zeros((nz, ny, nx), dtype=np.uint8)
    disc_positions = {}
    for value in DISC_VALUES:
        z = np.array(anatomy.disc_z[value])
        x, y, _, b = anatomy.cord_section(z)
        i, j, k = nearest_index((float(x), float(y + b + 1.0), float(z)))
        discs[k, j, i] = value
        disc_positions[str(value)] = {
            "name": DISC_NAMES[value], "position_ras": [float(axes[0][i]), float(axes[1][j]), float(axes[2][k])]
        }
    pmj = np.zeros((nz, ny, nx), dtype=np.uint8)
    z = np.array(anatomy.pmj_z)
    x, y, _, _ = anatomy.cord_section(z)
    i, j, k = nearest_index((float(x), float(y + anatomy.cord_b + 1.0), float(z)))
    pmj[k, j, i] = PMJ_VALUE
    pmj_ras = [float(axes[0][i]), float(axes[1][j]), float(axes[2][k])]

    cord_u8 = cord.astype(np.uint8)
    spine = spine_labels(cord, canal, disc_sd, body_sd, nearest_disc, axes[2] > anatomy.disc_z[2])
    bounds = entry_zone_bounds(rootlets, cord_u8, axes[2])
    levels = {}
    for value in LEVELS:
        if value in bounds:
            rostral, caudal, count = bounds[value]
            levels[SPINAL_LEVEL_NAMES[value]] = {
                "label": value, "rostral_S_mm": rostral, "caudal_S_mm": caudal, "n_voxels": count,
            }

    images = {
        "image": _to_image(image, shape, spacing, axes),
        "rootlets": _to_image(rootlets, shape, spacing, axes),
        "cord": _to_image(cord_u8, shape, spacing, axes),
        "discs": _to_image(discs, shape, spacing, axes),
        "pmj": _to_image(pmj, shape, spacing, axes),
        "spine": _to_image(spine, shape, spacing, axes),
    }
    if orientation != "RAS":
        images = {name: reorient(img, orientation) for name, img in images.items()}
    reference = images["image"]
    truth = {
        "seed": int(seed),
        "grid": {
            "shape_RL_AP_SI": list(shape),
            "spacing_RL_AP_SI_mm": list(spacing),
            "orientation": orientation,
            "size_ijk": list(reference.GetSize()),
            "spacing_ijk_mm": list(reference.GetSpacing()),
            "origin_lps_mm": list(reference.GetOrigin()),
            "direction": list(reference.GetDirection()),
        },
        "levels": levels,
        "discs": disc_positions,
        "pmj_ras": pmj_ras,
        "entry_zone": (
            f"rootlet voxels inside the cord mask dilated by a {ENTRY_ZONE_DILATION_VOXELS}-voxel ball "
            "{i^2+j^2+k^2 <= 9}; rostral/caudal = highest/lowest voxel-centre S (world RAS, mm)"
        ),
        "analytic": {
            "level_top_S_mm": {SPINAL_LEVEL_NAMES[v]: anatomy.level_top[v] for v in LEVELS},
            "level_bottom_S_mm": {SPINAL_LEVEL_NAMES[v]: anatomy.level_bottom[v] for v in LEVELS},
            "disc_S_mm": {DISC_NAMES[v]: anatomy.disc_z[v] for v in DISC_VALUES},
            "pmj_S_mm": anatomy.pmj_z,
        },
    }
    return Phantom(seed=int(seed), truth=truth, **images)



def write_phantom(phantom: Phantom, out_dir: os.PathLike | str, overwrite: bool = False) -> Dict[str, Path]:
    """Write image/rootlets/cord/discs/pmj .nii.gz and truth.json into `out_dir`, all or nothing.

    Creates `out_dir` if missing; refuses (UserError) to overwrite existing files unless `overwrite`.
    Returns {name: absolute path} with names image, rootlets, cord, discs, pmj, truth.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"The phantom output '{out_dir}' is a file: give a folder.")
    paths = {name: absolute_path(out_dir / f"{name}.nii.gz") for name in OUTPUT_FILES}
    paths["truth"] = absolute_path(out_dir / "truth.json")
    # a folder created here is removed again when the set is not written (refused, full disk, cancelled)
    with output_folder(out_dir), atomic_outputs(list(paths.values()), overwrite) as temporaries:
        tmp = dict(zip(paths, temporaries))
        for name, image in phantom.images().items():
            sitk.WriteImage(image, str(tmp[name]), True)
        Path(tmp["truth"]).write_text(json.dumps(phantom.truth, indent=2), encoding="utf-8")
    return paths

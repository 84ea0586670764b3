"""How good found landmarks are against a phantom's truth: cord Dice and disc position errors (mm).

Used by scripts/train_demo_spine.py (its printed scores) and by the tests on held-out phantom seeds.
Disc errors against the phantom's analytic truth (`truth["analytic"]["disc_S_mm"]`, the disc's mid-plane, not
its voxel-rounded label): `S` = |found S - true S| (RAS mm); `3d` = distance from the found disc point to the true
disc's place on the true cord centerline, sqrt(S error^2 + in-plane distance to the centre of the true cord mask in
the found point's axial slice), i.e. to where a perfect detector following this project's convention (discs on the
cord centerline) would put it.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from RootletSegLogic.images.orientation import Reorientation
from RootletSegLogic.images.world import lps_to_ras


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    total = int(a.sum() + b.sum())
    return 2.0 * int((a & b).sum()) / total if total else 1.0


def cord_center_ras(cord: sitk.Image, s_mm: float) -> np.ndarray:
    """RAS mm centre of the cord mask's voxels in the axial slice nearest to S = s_mm (cord in any orientation)."""
    reorientation = Reorientation(cord, "RAS")
    oriented = reorientation.apply(cord)
    array = sitk.GetArrayViewFromImage(oriented)
    s_of_slice = np.array([lps_to_ras(oriented.TransformIndexToPhysicalPoint((0, 0, k)))[2]
                           for k in range(array.shape[0])])
    k = int(np.argmin(np.abs(s_of_slice - s_mm)))
    j, i = np.nonzero(array[k])
    return lps_to_ras(oriented.TransformContinuousIndexToPhysicalPoint((float(i.mean()), float(j.mean()), float(k))))


def score_landmarks(found, phantom) -> dict:
    """{cord_dice, discs_expected, discs_found, names_right, max_disc_error_S_mm, max_disc_error_3d_mm, per_disc}.

    `found`: a landmarks.postprocess.Landmarks on the phantom's grid; `phantom`: synthetic.phantom.Phantom.
    names_right: every true disc was found under its own SCT value (value = name) and no other value was made.
    """
    cord_dice = dice(sitk.GetArrayViewFromImage(found.cord), sitk.GetArrayViewFromImage(phantom.cord))
    analytic = phantom.truth["analytic"]["disc_S_mm"]
    truth = {int(v): float(analytic[d["name"]]) for v, d in phantom.truth["discs"].items()}
    points = {p.value: np.array(p.position_ras) for p in found.disc_points}
    per_disc = {}
    for value, true_s in truth.items():
        if value not in points:
            continue
        error_s = float(points[value][2] - true_s)
        in_plane = points[value][:2] - cord_center_ras(phantom.cord, float(points[value][2]))[:2]
        per_disc[value] = {"S_mm": abs(error_s), "3d_mm": float(np.sqrt(error_s ** 2 + in_plane @ in_plane))}
    errors_s = [d["S_mm"] for d in per_disc.values()] or [float("inf")]
    errors_3d = [d["3d_mm"] for d in per_disc.values()] or [float("inf")]
    return {
        "cord_dice": cord_dice,
        "discs_expected": len(truth),
        "discs_found": len(per_disc),
        "names_right": set(points) == set(truth),
        "max_disc_error_S_mm": max(errors_s),
        "max_disc_error_3d_mm": max(errors_3d),
        "per_disc": per_disc,
    }

"""Agreement of paired measurements, array in, numbers out: Bland–Altman in the paper's non-parametric form
(median bias, 2.5th / 97.5th percentile limits), Spearman's rank correlation, the least-squares line, and body-height
normalisation. `bland_altman.py` applies them per level and over subjects. Every value in mm except rho, p, n and
the slope.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional, Tuple

import numpy as np


def differences_and_means(vertebral_mm, spinal_mm) -> Tuple[np.ndarray, np.ndarray]:
    """Arrays (mm) of vertebral − spinal midpoint and of their average, element-wise."""
    vertebral = np.asarray(vertebral_mm, dtype=float)
    spinal = np.asarray(spinal_mm, dtype=float)
    return vertebral - spinal, (vertebral + spinal) / 2.0


@dataclass
class BlandAltman:
    """Agreement summary of paired measurements (all in mm except rho/p/n)."""

    n: int
    bias_mm: float  # median difference
    loa_lower_mm: float  # 2.5th percentile of differences
    loa_upper_mm: float  # 97.5th percentile of differences
    spearman_rho: float  # spinal vs vertebral midpoints (the paper's); NaN when undefined
    spearman_p: float
    fit_slope: float  # vertebral = slope * spinal + intercept (least squares); NaN under 2 distinct points
    fit_intercept_mm: float
    spearman_rho_difference_vs_mean: float  # differences vs means (not in the paper); NaN when undefined
    spearman_p_difference_vs_mean: float
    mean_difference_mm: float
    sd_difference_mm: float  # sample SD (ddof=1); NaN for n < 2
    differences_mm: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    means_mm: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))


def spearman(x, y) -> Tuple[float, float]:
    """Spearman's rho and two-sided p of two equal-length arrays; (NaN, NaN) with < 3 points or a constant input."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan, math.nan
    from scipy.stats import spearmanr

    result = spearmanr(x, y)
    return float(result[0]), float(result[1])


def linear_fit(x, y) -> Tuple[float, float]:
    """(slope, intercept) of the least-squares line y = slope * x + intercept; (NaN, NaN) when x has fewer than
    2 distinct values or spreads too little to fit (e.g. subnormal differences).

    The normal equations on centred values: np.polyfit raised LinAlgError ("SVD did not converge") on x values
    that differ only by subnormal amounts, where its column scaling divides by zero."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.size < 2 or np.ptp(x) == 0:
        return math.nan, math.nan
    x_centred = x - x.mean()
    spread = float(np.dot(x_centred, x_centred))
    if not math.isfinite(spread) or spread < np.finfo(float).tiny:
        return math.nan, math.nan
    slope = float(np.dot(x_centred, y - y.mean())) / spread
    return slope, float(y.mean() - slope * x.mean())


def bland_altman(vertebral_mm, spinal_mm) -> BlandAltman:
    """Bland–Altman of paired midpoints (mm), the paper's non-parametric form (median bias, 2.5/97.5 percentiles)."""
    vertebral = np.asarray(vertebral_mm, dtype=float)
    spinal = np.asarray(spinal_mm, dtype=float)
    differences, means = differences_and_means(vertebral, spinal)
    keep = np.isfinite(differences) & np.isfinite(means)
    differences, means, vertebral, spinal = differences[keep], means[keep], vertebral[keep], spinal[keep]
    n = int(differences.size)
    if n == 0:
        nan = math.nan
        return BlandAltman(0, nan, nan, nan, nan, nan, nan, nan, nan, nan, nan, nan, differences, means)
    rho, p = spearman(spinal, vertebral)
    rho_dm, p_dm = spearman(differences, means)
    slope, intercept = linear_fit(spinal, vertebral)
    return BlandAltman(
        n=n,
        bias_mm=float(np.median(differences)),
        loa_lower_mm=float(np.percentile(differences, 2.5)),
        loa_upper_mm=float(np.percentile(differences, 97.5)),
        spearman_rho=rho,
        spearman_p=p,
        fit_slope=slope,
        fit_intercept_mm=intercept,
        spearman_rho_difference_vs_mean=rho_dm,
        spearman_p_difference_vs_mean=p_dm,
        mean_difference_mm=float(np.mean(differences)),
        sd_difference_mm=float(np.std(differences, ddof=1)) if n > 1 else math.nan,
        differences_mm=differences,
        means_mm=means,
    )


def normalise_by_height(midpoints_mm, heights_cm, reference_height_cm: Optional[float] = None) -> np.ndarray:
    """Midpoints (mm) scaled to a common body height: midpoint / height × reference height.

    `reference_height_cm` defaults to the median of `heights_cm` (the paper's choice). Heights must be > 0.
    """
    midpoints = np.asarray(midpoints_mm, dtype=float)
    heights = np.asarray(heights_cm, dtype=float)
    if np.any(~np.isfinite(heights)) or np.any(heights <= 0):
        raise ValueError("heights must be finite and > 0")
    reference = float(np.median(heights)) if reference_height_cm is None else float(reference_height_cm)
    return midpoints / heights * reference

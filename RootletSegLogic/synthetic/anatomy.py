"""The phantom's analytic anatomy of one seed, in world RAS mm: spinal level extents, PMJ, cord and canal sections
along a curved centerline, disc heights and rootlet tubes, and the appearance parameters (scale, noise, bias).

Nothing here knows a voxel grid: `synthetic/phantom.py` samples this anatomy onto one. The random draws are made in
a fixed order from the seed, so the same seed always gives the same anatomy (and bit-identical phantoms).
"""

from __future__ import annotations

from typing import Dict

import numpy as np

LEVELS = tuple(range(2, 10))  # rootlet label values: 2 = C2 ... 9 = T1
DISC_VALUES = tuple(range(2, 10))  # SCT disc labels: 2 = C1/C2 ... 9 = T1/T2
ROOTLET_RADIUS_MM = 1.4


class PhantomAnatomy:
    """The analytic anatomy of one seed, in world RAS mm."""

    def __init__(self, seed: int):
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 20250318]))
        self.rng = rng
        # spinal levels, top (S) to bottom
        base_heights = np.array([9.5, 10.5, 10.5, 10.5, 10.5, 10.0, 10.0, 9.5])
        self.heights = base_heights + rng.uniform(-1.0, 1.0, size=8)
        self.gaps = rng.uniform(1.5, 2.5, size=7)
        top = 107.0 + rng.uniform(-2.5, 2.5)
        self.level_top: Dict[int, float] = {}
        self.level_bottom: Dict[int, float] = {}
        z = top
        for index, level in enumerate(LEVELS):
            self.level_top[level] = z
            self.level_bottom[level] = z - self.heights[index]
            z = self.level_bottom[level] - (self.gaps[index] if index < 7 else 0.0)
        self.pmj_z = self.level_top[2] + rng.uniform(7.0, 9.0)
        # cord centerline: gentle A-P curve, slight R-L tilt
        self.curve_amp = rng.uniform(1.0, 2.5)
        self.curve_phase = rng.uniform(0, 2 * np.pi)
        self.y_base = -4.0 + rng.uniform(-1.0, 1.0)
        self.x_tilt = rng.uniform(-0.008, 0.008)
        self.cord_a = 6.0 + rng.uniform(-0.3, 0.3)  # R-L half-axis
        self.cord_b = 4.0 + rng.uniform(-0.2, 0.2)  # A-P half-axis
        self.canal_a = 11.0 + rng.uniform(-0.5, 0.5)
        self.canal_b = 7.5 + rng.uniform(-0.4, 0.4)
        # discs: near the boundary between spinal levels N and N+1, progressively caudal
        shift_per_level = rng.uniform(0.6, 1.2)
        self.disc_z: Dict[int, float] = {}
        for value in DISC_VALUES:
            if value < 9:
                boundary = 0.5 * (self.level_bottom[value] + self.level_top[value + 1])
            else:
                boundary = self.level_bottom[9] - 1.0
            self.disc_z[value] = boundary - shift_per_level * (value - 2) + rng.uniform(-0.8, 0.8)
        # rootlets: per level, side, dorsal/ventral: 3 tubes converging at the foramen
        self.segments = []  # (level, p0 (3,), p1 (3,))
        for level in LEVELS:
            drop = rng.uniform(3.0, 5.0)
            for side in (+1, -1):
                for ventral in (False, True):
                    angle = np.deg2rad(rng.uniform(35, 50))
                    z_end = self.level_bottom[level] - drop + rng.uniform(-0.5, 0.5)
                    zs = np.linspace(self.level_top[level] - ROOTLET_RADIUS_MM,
                                     self.level_bottom[level] + ROOTLET_RADIUS_MM, 3)
                    for i, z0 in enumerate(zs):
                        xc, yc, a, b = self.cord_section(np.array(z0))
                        sin = np.sin(angle) * (1 if ventral else -1)
                        p0 = np.array([xc + side * 0.85 * a * np.cos(angle), yc + 0.85 * b * sin, z0])
                        xe, ye, _, _ = self.cord_section(np.array(z_end))
                        p1 = np.array([xe + side * (self.canal_a + 2.0),
                                       ye + (1.5 if ventral else -1.5) + rng.uniform(-0.4, 0.4),
                                       z_end + 0.7 * (1 - i)])
                        self.segments.append((level, p0, p1))
        # appearance
        self.scale = float(np.exp(rng.uniform(np.log(300.0), np.log(2000.0))))
        self.noise = 0.03
        self.bias_coeffs = rng.uniform(-0.08, 0.08, size=3)
        self.tissue_coeffs = rng.uniform(-0.04, 0.04, size=4)

    def brainstem(self, z: np.ndarray) -> np.ndarray:
        """Smooth 0 -> 1 step across the PMJ (1 = brainstem above it)."""
        return 1.0 / (1.0 + np.exp(-(z - self.pmj_z) / 1.2))

    def centerline(self, z: np.ndarray):
        x = self.x_tilt * (z - 64.0)
        y = self.y_base + self.curve_amp * np.sin(2 * np.pi * z / 260.0 + self.curve_phase)
        return x, y

    def cord_section(self, z: np.ndarray):
        """Cord centre (x, y) and half-axes (a R-L, b A-P) at S = z (mm); enlargement around C5-C7."""
        x, y = self.centerline(z)
        enlargement_z = 0.5 * (self.level_top[5] + self.level_bottom[7])
        a = self.cord_a + 0.8 * np.exp(-(((z - enlargement_z) / 18.0) ** 2))
        step = self.brainstem(z)
        b = self.cord_b + 2.5 * step
        return x, y + 2.5 * step, a, b

    def canal_section(self, z: np.ndarray):
        x, y = self.centerline(z)
        step = self.brainstem(z)
        return x, y + 2.0 * step, self.canal_a + 1.0 * step, self.canal_b + 3.0 * step

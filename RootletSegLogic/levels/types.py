"""Data types for spinal and vertebral levels, shared by levels, statistics, figures, export and the Slicer module.

Units and frames: every position is in mm. `*_S_mm` is the world RAS S (superior) coordinate. `*_ras` points are
world RAS (Slicer), `*_lps` world LPS (ITK/DICOM). `*_pmj_mm` is the arc length along the cord centerline
measured downward from the pontomedullary junction (PMJ): larger = more caudal. Without a PMJ, `distance_reference`
is "S-axis", the `*_pmj_mm` fields are None and the `*_distance_mm` fields are `reference_S_mm - S` (mm below the
reference S plane: the most superior of the cord top, the rostral bounds and the discs), so never negative.
`*_distance_mm` always holds the distance in the result's reference (equal to `*_pmj_mm` when there is a PMJ).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

Point3 = Tuple[float, float, float]

SPINAL_LEVEL_NAMES = {2: "C2", 3: "C3", 4: "C4", 5: "C5", 6: "C6", 7: "C7", 8: "C8", 9: "T1"}
"""Rootlet label value -> spinal level name (dorsal and ventral rootlets of a level share one value)."""

VERTEBRAL_LEVEL_NAMES = {1: "C1", 2: "C2", 3: "C3", 4: "C4", 5: "C5", 6: "C6", 7: "C7", 8: "T1", 9: "T2", 10: "T3"}
"""SCT vertebral level value -> name. Vertebra N lies between disc labels N and N+1."""

PMG_VALUE = 49
"""SCT label value of the pontomedullary groove."""
PMJ_VALUE = 50
"""SCT label value of the pontomedullary junction, the origin of distances along the cord."""

DISC_NAMES = {
    1: "C1 top", 2: "C1/C2", 3: "C2/C3", 4: "C3/C4", 5: "C4/C5", 6: "C5/C6", 7: "C6/C7", 8: "C7/T1",
    9: "T1/T2", 10: "T2/T3", 11: "T3/T4", 49: "PMG", 50: "PMJ",
}
"""SCT disc-label value -> disc name (49 pontomedullary groove, 50 pontomedullary junction)."""

METHODS = ("paper", "gapless", "gapless-caudal", "rootlets-only")

PAPER_PAIRINGS = {
    "not_shifted": (("C2", "C2"), ("C3", "C3"), ("C4", "C4"), ("C5", "C5"), ("C6", "C6"), ("C7", "C7"), ("T1", "C8")),
    "shifted": (("C1", "C2"), ("C2", "C3"), ("C3", "C4"), ("C4", "C5"), ("C5", "C6"), ("C6", "C7"), ("C7", "C8"),
                ("T1", "T1")),
}
"""pairing -> ((vertebral level, spinal level), ...) rostral to caudal, as the paper pairs them for Bland-Altman:
"not shifted" vertebral Cn with spinal Cn (vertebral T1 with spinal C8), "shifted" vertebral Cn with spinal C(n+1)
(vertebral T1 with spinal T1). Vertebral C1 exists only when the top of C1 (disc label 1) is marked."""


@dataclass
class DiscPoint:
    """One intervertebral disc marker: SCT disc value (2 = C1/C2, 3 = C2/C3, ...) and its position, RAS mm."""

    value: int
    position_ras: Point3

    @property
    def name(self) -> str:
        return DISC_NAMES.get(self.value, f"disc {self.value}")


@dataclass
class LevelRow:
    """One spinal or vertebral level.

    Spinal (paper method): rostral/caudal bounds are the highest/lowest voxel centres of the level's rootlets
    inside the 3-voxel-dilated cord. Vertebral level N: bounds are discs N and N+1 projected onto the centerline.
    """

    level_type: str  # "spinal" | "vertebral"
    level: str  # "C2" .. "T1"
    label_value: int  # spinal: rootlet label 2..9; vertebral: SCT vertebral level value (2 = C2 .. 8 = T1)
    rostral_S_mm: float
    caudal_S_mm: float
    height_mm: float  # caudal - rostral distance along the reference (PMJ arc when present, else S axis); >= 0
    rostral_pmj_mm: Optional[float] = None
    caudal_pmj_mm: Optional[float] = None
    midpoint_pmj_mm: Optional[float] = None
    rostral_ras: Optional[Point3] = None  # bound on the cord centerline (or on the S plane without a cord), RAS mm
    caudal_ras: Optional[Point3] = None
    midpoint_ras: Optional[Point3] = None
    n_voxels: int = 0  # spinal: rootlet voxels used; vertebral: 0
    method: str = "paper"  # spinal: "paper" | "gapless" | "gapless-caudal" | "rootlets-only"; vertebral: "discs"
    rostral_distance_mm: Optional[float] = None  # distance in LevelResult.distance_reference (PMJ arc or S axis)
    caudal_distance_mm: Optional[float] = None
    midpoint_distance_mm: Optional[float] = None


@dataclass
class Overlap:
    """Part of a spinal level's height lying within a vertebral level."""

    spinal_level: str
    vertebral_level: str
    fraction: float  # of the spinal level's height, 0..1


@dataclass
class Pairing:
    """A vertebral level paired with a spinal level, as the paper pairs them for Bland-Altman.

    pairing "not_shifted": vertebral Cn with spinal Cn, vertebral T1 with spinal C8;
    pairing "shifted": vertebral Cn with spinal C(n+1), vertebral T1 with spinal T1.
    difference_mm = vertebral midpoint - spinal midpoint; mean_mm = their average (same distance reference).
    """

    pairing: str
    vertebral_level: str
    spinal_level: str
    vertebral_midpoint_mm: float
    spinal_midpoint_mm: float
    difference_mm: float
    mean_mm: float


@dataclass
class Centerline:
    """Cord centerline, one point per axial slice that holds cord, ordered rostral to caudal.

    points_ras: (N, 3) RAS mm; distance_mm: (N,) in the result's distance reference: arc length from the PMJ
    (the PMJ is the first point when it lies above the cord), or without a PMJ `reference_S_mm - S`; mm,
    increasing caudally.
    """

    points_ras: list
    distance_mm: list


@dataclass
class LevelResult:
    """Everything `rootletseg levels` computes for one subject."""

    rows: List[LevelRow]
    overlaps: List[Overlap] = field(default_factory=list)
    pairings: List[Pairing] = field(default_factory=list)
    method: str = "paper"
    distance_reference: str = "pmj"  # "pmj" | "S-axis"
    pmj_ras: Optional[Point3] = None
    centerline: Optional[Centerline] = None
    warnings: List[str] = field(default_factory=list)
    provenance: dict = field(default_factory=dict)  # input sha256s, model, software version, method
    reference_S_mm: Optional[float] = None  # S of the reference plane for "S-axis" distances (None with a PMJ)

    def spinal(self) -> List[LevelRow]:
        return [row for row in self.rows if row.level_type == "spinal"]

    def vertebral(self) -> List[LevelRow]:
        return [row for row in self.rows if row.level_type == "vertebral"]


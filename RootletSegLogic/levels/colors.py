"""One colour table for spinal and vertebral levels, shared by figures, markups and the Slicer module.

Colours are RGB in 0..1, keyed by the rootlet label value (2 = C2 ... 8 = C8, 9 = T1). A vertebral level takes the
colour of the spinal level with the same name (vertebra C3 -> colour of spinal C3, vertebra T1 -> colour of T1), so
"which spinal segment sits at which vertebra" reads by colour. The eight colours are well separated hues
(Okabe-Ito-like, colour-blind friendly ordering) and none is grey, so they stay visible over an MRI.
"""

from __future__ import annotations

from typing import Tuple

from RootletSegLogic.levels.types import SPINAL_LEVEL_NAMES

RGB = Tuple[float, float, float]

LEVEL_COLORS: dict = {
    2: (0.902, 0.624, 0.000),  # C2 orange
    3: (0.337, 0.706, 0.914),  # C3 sky blue
    4: (0.000, 0.620, 0.451),  # C4 bluish green
    5: (0.941, 0.894, 0.259),  # C5 yellow
    6: (0.000, 0.447, 0.698),  # C6 blue
    7: (0.835, 0.369, 0.000),  # C7 vermillion
    8: (0.800, 0.475, 0.655),  # C8 reddish purple
    9: (0.588, 0.294, 0.000),  # T1 brown
}
"""Rootlet label value (2..9) -> RGB 0..1."""

OTHER_COLOR: RGB = (0.6, 0.6, 0.6)
"""Colour for anything outside C2..T1 (e.g. vertebra C1 or T2)."""

_NAME_TO_VALUE = {name: value for value, name in SPINAL_LEVEL_NAMES.items()}


def level_color(level) -> RGB:
    """Colour of a level given as label value (int 2..9) or name ("C2".."T1"); grey for anything else."""
    if isinstance(level, str):
        level = _NAME_TO_VALUE.get(level.strip().upper())
    return LEVEL_COLORS.get(level, OTHER_COLOR)


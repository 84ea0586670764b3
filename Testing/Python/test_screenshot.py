"""The committed screenshot (docs/images/rootletseg_screenshot.png, made by scripts/render_screenshot.py from a real
MRML scene, off screen): it exists, has the size the extension index shows, and is not blank: the level segments'
colours are there, as shaded surfaces (thousands of pixels each, not only the legend). No display is needed: the PNG
is read, not rendered, here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from RootletSegLogic.levels.colors import LEVEL_COLORS

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "docs" / "images" / "rootletseg_screenshot.png"


def test_the_screenshot_shows_the_coloured_level_surfaces():
    assert SCREENSHOT.is_file(), "run scripts/render_screenshot.py and commit the PNG"
    image = sitk.ReadImage(str(SCREENSHOT))
    assert image.GetSize() == (800, 600)
    rgb = sitk.GetArrayFromImage(image).astype(float)[..., :3]
    assert rgb.std() > 20  # not a flat picture
    chroma = rgb / (rgb.sum(axis=-1, keepdims=True) + 1e-6)  # shading changes brightness, not the hue
    present = []
    for value, color in sorted(LEVEL_COLORS.items()):
        target = np.asarray(color[:3], float) / sum(color[:3])
        close = (np.abs(chroma - target).max(axis=-1) < 0.03) & (rgb.max(axis=-1) > 60)
        if close.sum() > 1500:
            present.append(value)
    assert len(present) >= 6, f"only the colours of levels {present} are on the screenshot"

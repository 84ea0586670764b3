"""The body of the Slicer module's self-test (`RootletSegTest`): the phantom through the panel's Apply-with-detection
path (demo-spine, then the demo model, on CPU), its results loaded and the levels computed.
"""

from __future__ import annotations

from typing import Optional

from RootletSegLogic.errors import UserError
from RootletSegLogic.slicer import session as panel
from RootletSegLogic.slicer.panel_session import PanelSession


def demo_self_test(scene, params, python: Optional[str] = None, timeout_s: float = 900) -> str:
    """The module's self-test: load the phantom, find its cord and discs with demo-spine and segment it with the demo
    model on CPU through the panel's Apply-with-detection path, load the results and compute the levels. Returns
    the status and level summary; skipped without torch/nnunetv2."""
    import unittest

    from RootletSegLogic.slicer.dependencies import missing_packages

    missing = missing_packages()
    if missing:
        raise unittest.SkipTest(f"{', '.join(missing)} not installed: press Apply once in the module to install them.")
    params.inputVolume = panel.load_phantom(scene)
    run = PanelSession(scene, params, python=python)
    run.start_detection("demo-spine", "cpu", then_segment=("demo", "cpu", False))  # Apply with detection
    statuses = []
    while run.runner is not None:
        try:
            events = run.runner.wait(timeout=timeout_s)
        except TimeoutError:
            run.runner.cancel()
            run.scene_closing()
            raise UserError(f"The demo run did not finish within {timeout_s:g} s: see the log.") from None
        statuses.append(run.finish([event for event in events if event.get("type") == "finished"][-1]))
    return statuses[-1] + "\n" + run.update_levels()

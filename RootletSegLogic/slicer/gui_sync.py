"""Keeping the panel's widgets and its parameter node in step without echoes: the `GuiGuard` set while parameter
values are written into widgets, and the cord segment selector's two directions (parameter node -> selector, and a
user's change -> parameter node).
"""

from __future__ import annotations

import contextlib


class GuiGuard:
    """Set while parameter values are written into widgets: widget signals fired by those writes (for example
    `qMRMLSegmentSelectorWidget.setCurrentNode` emitting currentNodeChanged with its first segment) must not be
    written back into the parameter node."""

    def __init__(self):
        self._depth = 0

    @property
    def active(self) -> bool:
        return self._depth > 0

    @contextlib.contextmanager
    def writing_gui(self):
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1


def show_cord_in_selector(params, selector, guard: GuiGuard) -> None:
    """Parameter node -> segment selector (node, then segment), with signals from the selector ignored."""
    with guard.writing_gui():
        if selector.currentNode() is not params.cordSegmentation:
            selector.setCurrentNode(params.cordSegmentation)
        if params.cordSegmentId and selector.currentSegmentID() != params.cordSegmentId:
            selector.setCurrentSegmentID(params.cordSegmentId)


def cord_from_selector(params, selector, guard: GuiGuard) -> bool:
    """Segment selector -> parameter node, for a change the user made; False (nothing written) while the GUI is being
    written from the parameter node."""
    if guard.active:
        return False
    params.cordSegmentation = selector.currentNode()
    params.cordSegmentId = selector.currentSegmentID() or ""
    return True

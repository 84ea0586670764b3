"""What the panel's widgets show for the current parameters and run: which widgets are enabled, Apply's tooltip, the
model path; the export buttons by kind. `PanelSession.widget_states()` returns this, and RootletSeg.py only copies it
into its widgets (Testing/Python/test_ui_file.py checks the widget names against Resources/UI/RootletSeg.ui).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

from RootletSegLogic.slicer import session as panel

LEVEL_EXPORT_KINDS = ("table_tsv", "table_csv", "planning_json", "markups")
EXPORT_ALL_KINDS = ("labelmap", "segmentation", "table_tsv", "table_csv", "planning_json", "markups")
EXPORT_BUTTONS = {"labelmap": "exportLabelmapButton", "segmentation": "exportSegmentationButton",
                  "table_tsv": "exportTableTsvButton", "table_csv": "exportTableCsvButton",
                  "planning_json": "exportPlanningJsonButton", "markups": "exportMarkupsButton"}
"""Export kind -> its button in Resources/UI/RootletSeg.ui (Testing/Python/test_ui_file.py checks the names)."""
RUN_LOCKED_WIDGETS = ("inputVolumeSelector", "modelComboBox", "deviceComboBox", "ttaCheckBox",
                      "outputSegmentationSelector", "detectLandmarksCheckBox")
"""Widgets disabled while a segmentation runs."""


@dataclass
class PanelState:
    """What the panel's widgets show for the current parameters and run (the panel only copies it into widgets)."""

    running: bool
    apply_problem: Optional[str]  # why Apply cannot run (its tooltip), None when it can
    apply_tooltip: str
    model_path_enabled: bool
    export_enabled: Dict[str, bool]
    chart_enabled: bool
    export_all_enabled: bool



def panel_state(params, running: bool, has_level_result: bool) -> PanelState:
    """The panel's state for parameter node `params`, whether a run is going and whether there is a level result."""
    p = params
    problem = None if running else panel.apply_problem(p.inputVolume is not None, p.model, p.modelPath)
    has_segments = p.outputSegmentation is not None
    return PanelState(
        running=running, apply_problem=problem,
        apply_tooltip=problem or ("Stop the segmentation" if running else "Segment the rootlets"),
        model_path_enabled=p.model == panel.ModelChoice.local,
        export_enabled={kind: has_level_result if kind in LEVEL_EXPORT_KINDS else has_segments
                        for kind in EXPORT_ALL_KINDS},
        chart_enabled=has_level_result, export_all_enabled=has_segments and not running)


def widget_states(params, state: PanelState) -> Dict[str, Dict[str, object]]:
    """{widget name in the .ui: {Qt property: value}}: what the panel copies into its widgets for `state` (Apply's
    text, translated, stays in the panel)."""
    states = {name: {"enabled": not state.running} for name in RUN_LOCKED_WIDGETS}
    states.update({name: {"enabled": state.export_enabled[kind]} for kind, name in EXPORT_BUTTONS.items()})
    states["applyButton"] = {"enabled": state.apply_problem is None, "toolTip": state.apply_tooltip}
    states["modelPathLineEdit"] = {"enabled": state.model_path_enabled, "currentPath": params.modelPath or ""}
    states["modelFolderButton"] = {"enabled": state.model_path_enabled}
    states["showChartButton"] = {"enabled": state.chart_enabled}
    states["exportAllButton"] = {"enabled": state.export_all_enabled}
    states["detectLandmarksButton"] = {"enabled": not state.running and params.inputVolume is not None}
    return states

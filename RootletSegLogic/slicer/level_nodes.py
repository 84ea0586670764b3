"""Levels in the scene: disc markers as a markups point list (read, write, guided placement order), and a level result
shown as a table node, a plot chart and a point list of level bounds. No Qt.

Markups positions are read and written in world RAS (the markups node's parent transform applied). `slicer` and `vtk`
are imported inside the functions (see `mrml.py`).

The public API:

    disc_points_from_markups(markups_node)                -> list[DiscPoint]  (PMJ included as value 50)
    pmj_from_markups(markups_node)                        -> RAS point or None
    markups_from_disc_points(scene_or_node, discs, pmj)   -> markups node
    next_disc_name(markups_node)                          -> "C2/C3" .. "T1/T2", or "" when all are placed
    disc_value_from_label(label)                          -> SCT disc value or None
    update_level_table_node(table_node, result)           -> table node (same columns as `rootletseg levels`)
    update_level_chart(scene, result)                     -> plot chart node
    level_bound_markups(scene, result)                    -> markups node
"""

from __future__ import annotations

import math
from typing import Dict, Iterable, List, Optional

import numpy as np

from RootletSegLogic.errors import UserError
from RootletSegLogic.levels.discs import disc_value
from RootletSegLogic.levels.types import (
    DISC_NAMES,
    PMJ_VALUE,
    DiscPoint,
    LevelResult,
    Point3,
)
from RootletSegLogic.slicer.volumes import import_slicer

# ------------------------------------------------------------------------------------------------ constants
ROLE_ATTRIBUTE = "RootletSeg.Role"
"""Node attribute naming what a helper node is for, so updates reuse it instead of adding new nodes."""

DISC_MARKUPS_NAME = "Discs"
GUIDED_DISC_VALUES = (3, 4, 5, 6, 7, 8, 9)  # C2/C3 .. T1/T2, the order of guided placement


# ------------------------------------------------------------------------------------------------------- discs
def disc_value_from_label(label: str) -> Optional[int]:
    """SCT disc value of a control point label, read as `rootletseg levels --disc-points` reads a markups file
    (`discs.disc_value`: "C2/C3", "c2-c3", "C2C3", "PMJ", "disc 3", "3", ...). None when the label names no
    disc of the SCT convention."""
    try:
        value = disc_value(label or "")
    except UserError:
        return None
    return value if value in DISC_NAMES else None


def _defined_points(markups_node):
    """(index, label, world RAS) of every control point with a defined position."""
    slicer = import_slicer()
    points = []
    for index in range(markups_node.GetNumberOfControlPoints()):
        if markups_node.GetNthControlPointPositionStatus(index) != slicer.vtkMRMLMarkupsNode.PositionDefined:
            continue
        position = [0.0, 0.0, 0.0]
        markups_node.GetNthControlPointPositionWorld(index, position)
        points.append((index, markups_node.GetNthControlPointLabel(index), tuple(float(v) for v in position)))
    return points


def disc_points_from_markups(markups_node) -> List[DiscPoint]:
    """Disc markers of a point list as DiscPoints (SCT values; PMJ is value 50, PMG 49), sorted by value.

    Labels are disc names ("C2/C3" .. "T1/T2", "PMJ"; also "disc 3" or "3"). Positions are world RAS mm (the node's
    parent transform applied). Points not yet placed are skipped. Raises UserError for a label that names no disc
    or a disc placed twice.
    """
    discs: Dict[int, DiscPoint] = {}
    for _, label, position in _defined_points(markups_node):
        value = disc_value_from_label(label)
        if value is None:
            raise UserError(
                f"The point '{label}' in '{markups_node.GetName()}' is not a disc name: rename it to one of C2/C3, "
                f"C3/C4, ... T1/T2 or PMJ."
            )
        if value in discs:
            raise UserError(
                f"The disc {DISC_NAMES[value]} is placed twice in '{markups_node.GetName()}': delete one of the points."
            )
        discs[value] = DiscPoint(value=value, position_ras=position)
    return [discs[value] for value in sorted(discs)]


def pmj_from_markups(markups_node) -> Optional[Point3]:
    """World RAS position of the point labelled "PMJ" (or "50"), or None."""
    for disc in disc_points_from_markups(markups_node):
        if disc.value == PMJ_VALUE:
            return disc.position_ras
    return None


def markups_from_disc_points(scene_or_node, discs: Iterable[DiscPoint], pmj: Optional[Point3] = None):
    """Write disc markers into a point list: given a scene, a new "Discs" point list is added; given a markups node,
    its control points are replaced. Labels are disc names ("C2/C3", ..., "PMJ"), positions world RAS mm (placed
    correctly under the node's parent transform). `pmj` (RAS) adds a "PMJ" point. Returns the node."""
    import vtk  # noqa: PLC0415

    if scene_or_node.IsA("vtkMRMLScene"):
        node = scene_or_node.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", DISC_MARKUPS_NAME)
        node.CreateDefaultDisplayNodes()
    else:
        node = scene_or_node
    points = {disc.value: tuple(disc.position_ras) for disc in discs}
    if pmj is not None:
        points[PMJ_VALUE] = tuple(pmj)
    was_modifying = node.StartModify()
    try:
        node.RemoveAllControlPoints()
        for value in sorted(points):
            position = vtk.vtkVector3d(*[float(v) for v in points[value]])
            node.AddControlPointWorld(position, DISC_NAMES.get(value, f"disc {value}"))
    finally:
        node.EndModify(was_modifying)
    return node


def next_disc_name(markups_node) -> str:
    """Name of the next disc to place in guided order C2/C3, C3/C4, ..., T1/T2, skipping discs already placed
    (whatever their label spelling); "" when all of them are placed."""
    placed = set()
    for _, label, _ in _defined_points(markups_node) if markups_node is not None else []:
        value = disc_value_from_label(label)
        if value is not None:
            placed.add(value)
    for value in GUIDED_DISC_VALUES:
        if value not in placed:
            return DISC_NAMES[value]
    return ""


# ------------------------------------------------------------------------------------------------ table, chart
def _level_rows(result: LevelResult) -> List[dict]:
    from RootletSegLogic.levels.tables import level_table_rows

    return level_table_rows(result)


def _column_kind(values: list) -> str:
    present = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if present and all(isinstance(v, (bool, np.bool_)) for v in present):
        return "string"
    if present and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in present):
        return "int" if len(present) == len(values) else "double"
    if all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in present):
        return "double"
    return "string"


def update_level_table_node(table_node, result: LevelResult):
    """Fill a vtkMRMLTableNode with the level table: the same columns and numbers as `rootletseg levels` writes
    (rows from `level_table_rows(result)`). Whole-number columns are integer columns, numeric columns double
    columns (missing = NaN), others text; columns ending in "_mm" get the unit "mm". The node is replaced in place
    (its ID and views stay) and locked against editing, since it is computed."""
    import vtk  # noqa: PLC0415

    rows = _level_rows(result)
    names: List[str] = []
    for row in rows:
        for key in row:
            if key not in names:
                names.append(key)
    table = vtk.vtkTable()
    kinds = {}
    for name in names:
        values = [row.get(name) for row in rows]
        kind = _column_kind(values)
        kinds[name] = kind
        if kind == "int":
            column = vtk.vtkIntArray()
            for v in values:
                column.InsertNextValue(int(v))
        elif kind == "double":
            column = vtk.vtkDoubleArray()
            for v in values:
                column.InsertNextValue(float("nan") if v is None else float(v))
        else:
            column = vtk.vtkStringArray()
            for v in values:
                column.InsertNextValue("" if v is None else str(v))
        column.SetName(name)
        table.AddColumn(column)

    was_modifying = table_node.StartModify()
    try:
        table_node.SetLocked(False)
        table_node.SetAndObserveTable(table)
        table_node.SetUseColumnTitleAsColumnHeader(True)  # the name variant is deprecated in Slicer 5.10
        for name in names:
            table_node.SetColumnTitle(name, name)
            if name.endswith("_mm"):
                table_node.SetColumnUnitLabel(name, "mm")
        table_node.SetAttribute(ROLE_ATTRIBUTE, "LevelTable")
        table_node.SetLocked(True)
    finally:
        table_node.EndModify(was_modifying)
    return table_node


def _role_node(scene, class_name: str, role: str, name: str):
    """The node of `class_name` tagged with `role` in `scene`, or a new one."""
    nodes = scene.GetNodesByClass(class_name)
    nodes.UnRegister(None)
    for index in range(nodes.GetNumberOfItems()):
        node = nodes.GetItemAsObject(index)
        if node.GetAttribute(ROLE_ATTRIBUTE) == role:
            return node
    node = scene.AddNewNodeByClass(class_name, name)
    node.SetAttribute(ROLE_ATTRIBUTE, role)
    return node


_CHART_LEVELS = ["C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8", "T1", "T2", "T3"]


def _chart_mode(result: LevelResult) -> str:
    """Which y values the chart shows: "distance" (the result's own distance reference, `*_distance_mm`), "pmj"
    (`*_pmj_mm`, for results without distance fields) or "S" (RAS S coordinate)."""
    if result.rows and all(row.rostral_distance_mm is not None for row in result.rows):
        return "distance"
    if result.rows and all(row.rostral_pmj_mm is not None for row in result.rows):
        return "pmj"
    return "S"


def _chart_values(row, mode: str) -> List[float]:
    if mode == "distance":
        rostral, caudal, mid = row.rostral_distance_mm, row.caudal_distance_mm, row.midpoint_distance_mm
    elif mode == "pmj":
        rostral, caudal, mid = row.rostral_pmj_mm, row.caudal_pmj_mm, row.midpoint_pmj_mm
    else:
        rostral, caudal, mid = row.rostral_S_mm, row.caudal_S_mm, None
    if mid is None and rostral is not None and caudal is not None:
        mid = (rostral + caudal) / 2
    return [float("nan") if v is None else float(v) for v in (rostral, mid, caudal)]


def update_level_chart(scene, result: LevelResult):
    """A plot chart node "RootletSeg levels": spinal and vertebral rostral bound, midpoint and caudal bound (y, mm)
    per level (x: level index, 1 = C1 .. 9 = T1, labelled by level name). y is the distance in the result's
    reference (`*_distance_mm`: below the PMJ along the cord, or below the reference S plane without a PMJ), as in
    the level table; for results without those fields the PMJ distance, else the RAS S coordinate. Reuses the chart,
    its table and series on later calls. Returns the chart node."""
    import vtk  # noqa: PLC0415

    slicer = import_slicer()
    rows = {(row.level_type, row.level): row for row in result.rows}
    mode = _chart_mode(result)
    table = vtk.vtkTable()
    columns = {}
    for name, kind in (("level_index", vtk.vtkDoubleArray), ("level", vtk.vtkStringArray)):
        columns[name] = kind()
        columns[name].SetName(name)
    for level_type in ("spinal", "vertebral"):
        for part in ("rostral", "midpoint", "caudal"):
            columns[f"{level_type}_{part}_mm"] = vtk.vtkDoubleArray()
            columns[f"{level_type}_{part}_mm"].SetName(f"{level_type}_{part}_mm")
    for index, level in enumerate(_CHART_LEVELS, start=1):
        if ("spinal", level) not in rows and ("vertebral", level) not in rows:
            continue
        columns["level_index"].InsertNextValue(float(index))
        columns["level"].InsertNextValue(level)
        for level_type in ("spinal", "vertebral"):
            row = rows.get((level_type, level))
            values = _chart_values(row, mode) if row is not None else [float("nan")] * 3
            for part, value in zip(("rostral", "midpoint", "caudal"), values):
                columns[f"{level_type}_{part}_mm"].InsertNextValue(value)
    for column in columns.values():
        table.AddColumn(column)

    table_node = _role_node(scene, "vtkMRMLTableNode", "LevelChartTable", "RootletSeg level chart data")
    table_node.SetAndObserveTable(table)
    chart = _role_node(scene, "vtkMRMLPlotChartNode", "LevelChart", "RootletSeg levels")
    chart.SetTitle("Spinal and vertebral levels")
    chart.SetXAxisTitle("level (1 = C1 ... 9 = T1)")
    if mode == "S":
        y_title = "S coordinate, RAS (mm)"
    elif mode == "pmj" or result.distance_reference == "pmj":
        y_title = "distance below the PMJ along the cord (mm)"
    else:
        y_title = "distance below the reference S plane (mm)"
    chart.SetYAxisTitle(y_title)
    chart.SetLegendVisibility(True)

    styles = {
        "rostral": slicer.vtkMRMLPlotSeriesNode.MarkerStyleDiamond,
        "midpoint": slicer.vtkMRMLPlotSeriesNode.MarkerStyleCircle,
        "caudal": slicer.vtkMRMLPlotSeriesNode.MarkerStyleSquare,
    }
    colors = {"spinal": (0.0, 0.447, 0.698), "vertebral": (0.835, 0.369, 0.0)}
    for level_type in ("spinal", "vertebral"):
        for part in ("rostral", "midpoint", "caudal"):
            role = f"LevelChartSeries.{level_type}.{part}"
            series = _role_node(scene, "vtkMRMLPlotSeriesNode", role, f"{level_type} {part}")
            series.SetAndObserveTableNodeID(table_node.GetID())
            series.SetXColumnName("level_index")
            series.SetYColumnName(f"{level_type}_{part}_mm")
            series.SetLabelColumnName("level")
            series.SetPlotType(slicer.vtkMRMLPlotSeriesNode.PlotTypeScatter)
            solid = part == "midpoint"
            series.SetLineStyle(
                slicer.vtkMRMLPlotSeriesNode.LineStyleSolid if solid else slicer.vtkMRMLPlotSeriesNode.LineStyleNone
            )
            series.SetMarkerStyle(styles[part])
            series.SetColor(*colors[level_type])
            if not chart.HasPlotSeriesNodeID(series.GetID()):
                chart.AddAndObservePlotSeriesNodeID(series.GetID())
    return chart


def level_bound_markups(scene, result: LevelResult):
    """A locked point list "RootletSeg level bounds" with the level bounds as named points, world RAS mm: the same
    points, labels and descriptions as the exported level markups file (`level_markups`): spinal
    "C3 rostral", "C3 midpoint", "C3 caudal", vertebral "C3 vertebra rostral", ... Levels without positions are
    skipped. Reuses the node on later calls. Returns the node."""
    import vtk  # noqa: PLC0415

    from RootletSegLogic.levels.planning import level_markups

    markups = level_markups(result, coordinate_system="RAS")["markups"][0]
    node = _role_node(scene, "vtkMRMLMarkupsFiducialNode", "LevelBounds", "RootletSeg level bounds")
    if node.GetDisplayNode() is None:
        node.CreateDefaultDisplayNodes()
    was_modifying = node.StartModify()
    try:
        node.SetLocked(False)
        node.RemoveAllControlPoints()
        for point in markups["controlPoints"]:
            index = node.AddControlPointWorld(vtk.vtkVector3d(*[float(v) for v in point["position"]]), point["label"])
            node.SetNthControlPointDescription(index, point.get("description", ""))
        node.SetLocked(True)
    finally:
        node.EndModify(was_modifying)
    return node


__all__ = [
    "disc_value_from_label",
    "disc_points_from_markups",
    "pmj_from_markups",
    "markups_from_disc_points",
    "next_disc_name",
    "update_level_table_node",
    "update_level_chart",
    "level_bound_markups",
]

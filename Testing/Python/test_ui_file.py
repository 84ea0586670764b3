"""Static checks of the Slicer module's Qt layer: RootletSeg/RootletSeg.py and Resources/UI/RootletSeg.ui.

Desktop Slicer cannot run here, and RootletSeg.py cannot be imported without Slicer's Qt (`qt`, `ctk`,
`slicer.ScriptedLoadableModule`). What is checked statically, reading the files with `ast` and an XML parser:
- every widget the module reaches as `self.ui.<name>` exists in the .ui file, with the class the code expects;
- every widget bound through the dynamic property `SlicerParameterName` names a field of the parameterNodeWrapper
  class (read from RootletSeg.py with `ast`), and the field type is one the bound widget class can represent;
- every MRML widget gets the scene (`mrmlSceneChanged` -> `setMRMLScene`), node combo boxes declare nodeTypes;
- RootletSeg.py compiles, imports at top level only modules Slicer provides or the light core modules, and every
  name it uses from RootletSegLogic exists there.
Not checked here (needs desktop Slicer): that the panel renders, signals fire, dialogs and timers behave.
"""

from __future__ import annotations

import ast
import importlib
import py_compile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from RootletSegLogic.slicer import session

REPO = Path(__file__).resolve().parents[2]
MODULE = REPO / "RootletSeg" / "RootletSeg.py"
UI = REPO / "Resources" / "UI" / "RootletSeg.ui"

# class each widget must have, by the way RootletSeg.py uses it
EXPECTED_CLASSES = {
    "applyButton": "QPushButton",
    "inputVolumeSelector": "qMRMLNodeComboBox",
    "contrastComboBox": "QComboBox",
    "modelComboBox": "QComboBox",
    "modelPathLineEdit": "ctkPathLineEdit",
    "deviceComboBox": "QComboBox",
    "ttaCheckBox": "QCheckBox",
    "outputSegmentationSelector": "qMRMLNodeComboBox",
    "progressBar": "QProgressBar",
    "statusLabel": "QLabel",
    "cordSegmentSelector": "qMRMLSegmentSelectorWidget",
    "loadCordButton": "QPushButton",
    "detectLandmarksButton": "QPushButton",
    "detectLandmarksCheckBox": "QCheckBox",
    "discsSelector": "qMRMLNodeComboBox",
    "placeDiscButton": "QPushButton",
    "placePmjButton": "QPushButton",
    "importDiscsButton": "QPushButton",
    "levelMethodComboBox": "QComboBox",
    "autoUpdateLevelsCheckBox": "QCheckBox",
    "updateLevelsButton": "QPushButton",
    "showChartButton": "QPushButton",
    "levelTableView": "qMRMLTableView",
    "levelsStatusLabel": "QLabel",
    "exportLabelmapButton": "QPushButton",
    "exportSegmentationButton": "QPushButton",
    "exportTableTsvButton": "QPushButton",
    "exportTableCsvButton": "QPushButton",
    "exportPlanningJsonButton": "QPushButton",
    "exportMarkupsButton": "QPushButton",
    "exportAllButton": "QPushButton",
    "modelFolderButton": "QToolButton",
    "show3DCheckBox": "QCheckBox",
    "logTextEdit": "QPlainTextEdit",
}

# Slicer's parameterNodeWrapper GUI connectors (Base/Python/slicer/parameterNodeWrapper/guiConnectors.py, 5.10):
# widget class -> kinds of field type it can represent
CONNECTOR_KINDS = {
    "qMRMLNodeComboBox": {"node"},
    "QComboBox": {"enum", "choice"},
    "QCheckBox": {"bool"},
    "QLineEdit": {"str"},
    "ctkPathLineEdit": {"path"},
}

ALLOWED_TOP_LEVEL_IMPORTS = {
    # standard library
    "importlib", "logging", "os", "sys", "tempfile", "pathlib", "typing", "enum", "json", "time",
    # provided by Slicer's Python
    "ctk", "qt", "vtk", "slicer", "slicer.i18n", "slicer.parameterNodeWrapper", "slicer.ScriptedLoadableModule",
    "slicer.util",
    # the light core modules (no torch / nnU-Net / matplotlib at import)
    "RootletSegLogic", "RootletSegLogic.errors", "RootletSegLogic.slicer", "RootletSegLogic.slicer.session",
}
MAX_MODULE_LINES = 350  # issue 7: RootletSeg.py is widget wiring only
HEAVY_MODULES = ("torch", "nnunetv2", "matplotlib", "scipy")


@pytest.fixture(scope="module")
def tree() -> ast.Module:
    return ast.parse(MODULE.read_text(encoding="utf-8"), filename=str(MODULE))


@pytest.fixture(scope="module")
def ui_root() -> ET.Element:
    return ET.parse(UI).getroot()


def _widgets(root: ET.Element) -> dict:
    return {w.get("name"): w for w in root.iter("widget")}


def _dynamic_property(widget: ET.Element, name: str):
    for prop in widget.findall("property"):
        if prop.get("name") == name:
            text = prop.find("string")
            return None if text is None else text.text
    return None


def _ui_names_used(tree: ast.Module) -> set:
    names = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
                and node.value.attr == "ui" and isinstance(node.value.value, ast.Name) and node.value.value.id == "self"):
            names.add(node.attr)
    return names


def _wrapper_fields(tree: ast.Module) -> dict:
    """{field: annotation source} of the class decorated with @parameterNodeWrapper."""
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and any(
                (isinstance(d, ast.Name) and d.id == "parameterNodeWrapper") for d in node.decorator_list):
            return {stmt.target.id: ast.unparse(stmt.annotation) for stmt in node.body
                    if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)}
    raise AssertionError("no @parameterNodeWrapper class in RootletSeg.py")


def _kind(annotation: str) -> str:

    if annotation.startswith("vtkMRML"):
        return "node"
    if annotation == "bool":
        return "bool"
    if annotation == "str":
        return "str"
    if annotation in ("Path", "pathlib.Path"):
        return "path"
    if annotation.startswith("Annotated[") and "Choice" in annotation:
        return "choice"
    if hasattr(session, annotation):
        return "enum"
    return "unknown"


def test_module_compiles():
    py_compile.compile(str(MODULE), doraise=True)


def test_module_is_thin():
    assert len(MODULE.read_text(encoding="utf-8").splitlines()) <= MAX_MODULE_LINES


def test_every_ui_widget_used_exists_with_the_expected_class(tree, ui_root):
    widgets = _widgets(ui_root)
    used = _ui_names_used(tree)
    assert used, "RootletSeg.py reaches no self.ui widget?"
    missing = sorted(used - set(widgets))
    assert not missing, f"widgets used in RootletSeg.py but absent from the .ui file: {missing}"
    unknown = sorted(used - set(EXPECTED_CLASSES))
    assert not unknown, f"add the expected class of {unknown} to EXPECTED_CLASSES"
    for name in used:
        assert widgets[name].get("class") == EXPECTED_CLASSES[name], name


def test_widgets_named_by_the_session_exist_with_the_properties_it_sets(ui_root):
    """RootletSeg.py reaches some widgets by the names PanelSession gives (export buttons, widget states): those names
    must exist in the .ui, with the class expected, and every property the session sets must belong to that class."""
    from types import SimpleNamespace

    from RootletSegLogic.slicer.panel_session import PanelSession
    from RootletSegLogic.slicer.panel_state import EXPORT_BUTTONS, RUN_LOCKED_WIDGETS

    widgets = _widgets(ui_root)
    params = SimpleNamespace(inputVolume=None, model=session.ModelChoice.local, modelPath="", device=session.Device.auto,
                             outputSegmentation=None)
    states = PanelSession(scene=None, params=params).widget_states()
    assert set(EXPORT_BUTTONS.values()) | set(RUN_LOCKED_WIDGETS) <= set(states)
    properties = {"QWidget": {"enabled", "toolTip"}, "ctkPathLineEdit": {"enabled", "toolTip", "currentPath"}}
    for name, values in states.items():
        assert name in widgets, f"PanelSession names {name!r}, which is not in the .ui file"
        assert widgets[name].get("class") == EXPECTED_CLASSES[name], name
        assert set(values) <= properties.get(widgets[name].get("class"), properties["QWidget"]), (name, values)


def test_every_binding_names_a_parameter_of_a_representable_type(tree, ui_root):
    fields = _wrapper_fields(tree)
    bound = {}
    for name, widget in _widgets(ui_root).items():
        parameter = _dynamic_property(widget, "SlicerParameterName")
        if parameter is not None:
            assert parameter not in bound, f"{parameter} is bound twice"
            bound[parameter] = widget
    assert bound, "no SlicerParameterName binding in the .ui file"
    for parameter, widget in bound.items():
        assert parameter in fields, f"{widget.get('name')} binds unknown parameter {parameter!r}"
        kind = _kind(fields[parameter])
        assert kind in CONNECTOR_KINDS.get(widget.get("class"), set()), (
            f"{widget.get('name')} ({widget.get('class')}) cannot represent {parameter}: {fields[parameter]}")
    # the parameters that are not bound are synchronised by hand in RootletSeg.py
    # landmarkModel has no widget: "totalspineseg" unless a script sets it (the self-test uses demo-spine)
    assert set(fields) - set(bound) == {"modelPath", "cordSegmentation", "cordSegmentId", "levelTable", "landmarkModel"}


def test_enum_parameters_exist_in_the_core(tree):

    for field, annotation in _wrapper_fields(tree).items():
        if _kind(annotation) == "enum":
            enum_type = getattr(session, annotation)
            assert len(list(enum_type)) >= 2 and all(callable(getattr(m, "label")) for m in enum_type), field


def test_mrml_widgets_get_the_scene(ui_root):
    widgets = _widgets(ui_root)
    top = ui_root.find("widget")
    assert top.get("class") == "qMRMLWidget" and top.get("name") == "RootletSeg"
    connected = set()
    for connection in ui_root.iter("connection"):
        if (connection.findtext("sender") == "RootletSeg"
                and connection.findtext("signal") == "mrmlSceneChanged(vtkMRMLScene*)"
                and connection.findtext("slot") == "setMRMLScene(vtkMRMLScene*)"):
            connected.add(connection.findtext("receiver"))
    mrml_widgets = {name for name, w in widgets.items() if w.get("class", "").startswith("qMRML") and w is not top}
    assert mrml_widgets and mrml_widgets <= connected
    for name, widget in widgets.items():
        if widget.get("class") == "qMRMLNodeComboBox":
            types = [s.text for p in widget.findall("property") if p.get("name") == "nodeTypes" for s in p.iter("string")]
            assert types and all(t.startswith("vtkMRML") for t in types), name
    declared = {c.findtext("class") for c in ui_root.iter("customwidget")}
    used_custom = {w.get("class") for w in widgets.values() if not w.get("class").startswith("Q")}
    assert used_custom <= declared


def test_panel_sections(ui_root):
    sections = [w.find("property/string").text for w in ui_root.iter("widget") if w.get("class") == "ctkCollapsibleButton"]
    assert sections == ["Inputs", "Segmentation", "Levels", "Export"]


def test_top_level_imports_are_allowed(tree):
    imported = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module)
    assert imported <= ALLOWED_TOP_LEVEL_IMPORTS, sorted(imported - ALLOWED_TOP_LEVEL_IMPORTS)
    # nothing heavy anywhere in the file, not even inside functions (they run in the child process)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            assert not any(n.split(".")[0] in HEAVY_MODULES for n in names), names


def test_names_used_from_the_core_exist(tree):
    """`child_command.x`, `session.x`, `volumes.x`, `segments.x`, `level_nodes.x`, `dependencies.x` in RootletSeg.py
    exist in the core."""
    modules = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module == "RootletSegLogic.slicer":
            for alias in node.names:
                modules[alias.asname or alias.name] = importlib.import_module(f"RootletSegLogic.slicer.{alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("RootletSegLogic."):
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name), f"{node.module}.{alias.name}"
    assert set(modules) >= {"child_command", "session", "panel_session", "dependencies"}
    checked = 0
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules:
            assert hasattr(modules[node.value.id], node.attr), f"{node.value.id}.{node.attr} does not exist"
            checked += 1
    assert checked > 10


def test_module_classes_follow_the_scripted_module_convention(tree):
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    for name, base in (("RootletSeg", "ScriptedLoadableModule"), ("RootletSegWidget", "ScriptedLoadableModuleWidget"),
                       ("RootletSegModuleLogic", "ScriptedLoadableModuleLogic"),
                       ("RootletSegTest", "ScriptedLoadableModuleTest")):
        assert name in classes, name
        assert base in [ast.unparse(b) for b in classes[name].bases], name
    # a class named RootletSegLogic would shadow the core package inside the module
    assert "RootletSegLogic" not in classes
    source = MODULE.read_text(encoding="utf-8")
    assert '"Segmentation"' in source and "Krejci" in source and "MIT" in source

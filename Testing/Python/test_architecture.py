"""The house rules of RootletSegLogic/, read from the source with `ast` (docs/architecture.md):

- torch and nnunetv2 are imported only in `segmentation/` (the one place that runs a network);
- slicer and vtk are imported only in `slicer/` (the MRML adapters and the panel's session);
- Qt (qt, ctk, PyQt5, PySide2/6) is imported nowhere in the package: the Slicer module's widget code is
  RootletSeg/RootletSeg.py;
- dependencies point one way: faces (cli/, slicer/, cohort/) -> workflows -> core, so no core folder imports a face (the
  package's `__main__`, the CLI's door for `python -m RootletSegLogic`, aside), and
  there is no import cycle between modules, counting imports inside functions too (a lazy import only hides a
  cycle, it does not remove it).
Every rule is checked on the real tree, and each checker is also shown to catch a violation on a made-up tree.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Set, Tuple

import pytest

PACKAGE = "RootletSegLogic"
PACKAGE_DIR = Path(__file__).resolve().parents[2] / PACKAGE

ONLY_IN = {"torch": "segmentation", "nnunetv2": "segmentation", "slicer": "slicer", "vtk": "slicer",
           "vtkmodules": "slicer"}
NOWHERE = ("qt", "ctk", "PyQt5", "PyQt6", "PySide2", "PySide6")
FACES = ("cli", "slicer", "cohort")
FACE_TO_FACE = {("cli", "cohort")}  # `rootletseg batch` starts the cohort runner


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, root: Path) -> List[Tuple[str, int]]:
    """Absolute names of every module `path` imports (top level and inside functions), with line numbers."""
    own = module_name(path, root)
    package = own if path.name == "__init__.py" else own.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            found.append((prefix, node.lineno))
            # `from pkg import module` imports the module too
            found += [(f"{prefix}.{alias.name}", node.lineno) for alias in node.names]
    return found


def package_graph(root: Path) -> Dict[str, Set[str]]:
    """Module -> the package's own modules it imports."""
    files = {module_name(p, root): p for p in root.rglob("*.py") if "__pycache__" not in p.parts}
    graph = {}
    for name, path in files.items():
        targets = {target for target, _ in imports_of(path, root) if target in files and target != name}
        graph[name] = targets
    return graph


def rule_violations(root: Path) -> List[str]:
    problems = []
    for path in sorted(root.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        own = module_name(path, root)
        folder = own.split(".")[1] if own.count(".") >= 1 else ""
        for target, line in imports_of(path, root):
            top = target.split(".")[0]
            where = f"{path.relative_to(root.parent)}:{line}"
            if top in NOWHERE:
                problems.append(f"{where} imports Qt ({top}): Qt belongs in RootletSeg/RootletSeg.py only")
            if top in ONLY_IN and folder != ONLY_IN[top]:
                problems.append(f"{where} imports {top}: only {root.name}/{ONLY_IN[top]}/ may")
            parts = target.split(".")
            if (top == root.name and len(parts) > 1 and parts[1] in FACES and folder != parts[1]
                    and own != f"{root.name}.__main__" and (folder, parts[1]) not in FACE_TO_FACE):  # `python -m RootletSegLogic` is the CLI face's door
                problems.append(f"{where} imports the face {'.'.join(parts[:2])}: faces call the core, never the reverse")
    return list(dict.fromkeys(problems))  # `from ..cli import main` names the face twice: say it once


def cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, result = {}, {}, [], set(), []
    counter = [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return result


# ---------------------------------------------------------------------------------------------- the real tree
def test_the_package_is_made_of_subpackages_by_concern():
    subpackages = {p.parent.name for p in PACKAGE_DIR.glob("*/__init__.py")}
    assert {"images", "segmentation", "levels", "analysis", "synthetic", "cli", "slicer"} <= subpackages
    top_level = sorted(p.name for p in PACKAGE_DIR.glob("*.py"))
    assert len(top_level) <= 8, f"the package root should hold only shared basics, not {top_level}"


def test_import_rules_hold():
    assert rule_violations(PACKAGE_DIR) == []


def test_no_import_cycles():
    assert cycles(package_graph(PACKAGE_DIR)) == []


def test_no_module_shadows_the_standard_library_or_a_common_package():
    import sys

    shadowed = {"imageio", "statistics", "io", "types", "logging", "json", "queue", "platform", "tqdm", "nibabel"}
    names = {p.stem for p in PACKAGE_DIR.glob("*.py")}
    top = names & (set(sys.stdlib_module_names) | shadowed)
    assert not top, f"top-level modules shadowing others: {sorted(top)}"


# ------------------------------------------------------------------------------ the checkers catch violations
def _tree(tmp_path: Path, files: Dict[str, str]) -> Path:
    root = tmp_path / PACKAGE
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for folder in {root, *[(root / r).parent for r in files]}:
        (folder / "__init__.py").touch()
    return root


def test_rule_checker_catches_torch_qt_slicer_and_a_core_importing_a_face(tmp_path):
    root = _tree(tmp_path, {
        "levels/method.py": "def f():\n    import torch\n",
        "images/reading.py": "import qt\n",
        "analysis/figures.py": "from vtkmodules.vtkCommonCore import vtkObject\n",
        "levels/files.py": "from ..cli import main\n",
        "segmentation/predictor.py": "import torch\nimport nnunetv2\n",
        "slicer/volumes.py": "import slicer\nimport vtk\n",
        "analysis/report.py": "from RootletSegLogic.cohort import bids\n",
        "cli/batch.py": "from RootletSegLogic.cohort import runners\n",
    })
    problems = rule_violations(root)
    assert len(problems) == 5, problems
    assert any("analysis/report.py:1 imports the face RootletSegLogic.cohort" in p for p in problems)
    assert any("levels/method.py:2 imports torch" in p for p in problems)
    assert any("images/reading.py:1 imports Qt" in p for p in problems)
    assert any("analysis/figures.py:1 imports vtkmodules" in p for p in problems)
    assert any("imports the face RootletSegLogic.cli" in p for p in problems)


@pytest.mark.parametrize("lazy", [False, True])
def test_cycle_checker_catches_a_cycle_through_a_lazy_import(tmp_path, lazy):
    back = "def g():\n    from RootletSegLogic.images import grid\n" if lazy else "from . import grid\n"
    root = _tree(tmp_path, {
        "images/grid.py": "from RootletSegLogic.images.orientation import axcodes_of\n",
        "images/orientation.py": back,
        "images/world.py": "from .orientation import direction_matrix\n",
    })
    assert cycles(package_graph(root)) == [["RootletSegLogic.images.grid", "RootletSegLogic.images.orientation"]]

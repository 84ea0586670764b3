"""The extension packaging: CMakeLists.txt (top level and RootletSeg/), RootletSeg.json, icon.

Desktop Slicer and a Slicer build tree are not available here, so CMake is not run: the files are read as text.
Checked: the whole RootletSegLogic/ tree is globbed in RootletSeg/CMakeLists.txt (Python files and package data:
the demo model, the terminology), and a real CMake run against a stub Slicer copies every file of the package, the UI and icon are listed, the
top-level file carries the extension metadata of Slicer's template, and RootletSeg.json is a valid
ExtensionsIndex entry (schema v1.0.1 keys) consistent with it.
"""

from __future__ import annotations

import fnmatch
import json
import re
import struct
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TOP = REPO / "CMakeLists.txt"
MODULE_CMAKE = REPO / "RootletSeg" / "CMakeLists.txt"
INDEX_JSON = REPO / "RootletSeg.json"


def _strip_comments(text: str) -> str:
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())


@pytest.fixture(scope="module")
def module_cmake() -> str:
    return _strip_comments(MODULE_CMAKE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def top_cmake() -> str:
    return TOP.read_text(encoding="utf-8")


def _set_values(text: str, variable: str) -> list:
    match = re.search(r"set\(\s*" + re.escape(variable) + r"\s+(.*?)\)", text, re.S)
    assert match, f"set({variable} ...) not found"
    return match.group(1).split()


def _globs(text: str) -> list:
    """Patterns of file(GLOB[_RECURSE] ... RELATIVE ${PROJECT_SOURCE_DIR} ...) calls, relative to the repository."""
    patterns = []
    for match in re.finditer(r"file\(\s*(GLOB(?:_RECURSE)?)\s+\w+(.*?)\)", text, re.S):
        recursive = match.group(1) == "GLOB_RECURSE"
        for token in match.group(2).split():
            if token.startswith("${PROJECT_SOURCE_DIR}/"):
                patterns.append((token[len("${PROJECT_SOURCE_DIR}/"):], recursive))
    return patterns


def _glob_matches(pattern: str, recursive: bool) -> list:
    folder, _, name_pattern = pattern.rpartition("/")
    base = REPO / folder
    if not base.is_dir():
        return []
    files = base.rglob("*") if recursive else base.glob("*")
    return sorted(str(f.relative_to(REPO)) for f in files if f.is_file() and fnmatch.fnmatch(f.name, name_pattern)
                  and "__pycache__" not in f.parts)


def test_the_whole_package_tree_is_globbed(module_cmake):
    """Python files as scripts, every other file of the package as data: both recursive from the package root, so
    every file of RootletSegLogic/ (today's and tomorrow's) is packaged; the real CMake run below proves it."""
    assert dict(_globs(module_cmake)) == {"RootletSegLogic/*.py": True, "RootletSegLogic/*": True}
    scripts = _glob_matches("RootletSegLogic/*.py", True)
    every_python_file = sorted(str(p.relative_to(REPO)) for p in (REPO / "RootletSegLogic").rglob("*.py")
                               if "__pycache__" not in p.parts)
    assert scripts == every_python_file and len(scripts) > 30
    assert 'list(FILTER ROOTLETSEG_PACKAGE_DATA_FILES EXCLUDE REGEX "(__pycache__|\\\\.py$|\\\\.pyc$)")' in module_cmake


def test_module_script_and_resources_are_listed(module_cmake):
    assert _set_values(module_cmake, "MODULE_PYTHON_SCRIPTS") == ["${MODULE_NAME}.py"]
    assert (REPO / "RootletSeg" / "RootletSeg.py").is_file()
    resources = _set_values(module_cmake, "ROOTLETSEG_CORE_RESOURCES")
    for path in ("Resources/UI/${MODULE_NAME}.ui", "Resources/Icons/${MODULE_NAME}.png"):
        assert path in resources
        assert (REPO / path.replace("${MODULE_NAME}", "RootletSeg")).is_file()
    assert "${ROOTLETSEG_PACKAGE_DATA_FILES}" in resources
    assert "slicerMacroBuildScriptedModule(" in module_cmake
    assert re.search(r"ctkMacroCompilePythonScript\(.*SOURCE_DIR \$\{PROJECT_SOURCE_DIR\}.*NO_INSTALL_SUBDIR",
                     module_cmake, re.S)
    assert "slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)" in module_cmake


def test_core_finds_its_data_where_the_package_puts_it():
    """The installed layout mirrors the repository root, which is what the core's paths assume."""
    from RootletSegLogic.segmentation.registry import EMBEDDED_DEMO_PATH
    from RootletSegLogic.levels.terminology import TERMINOLOGY_DIR

    assert EMBEDDED_DEMO_PATH == REPO / "RootletSegLogic" / "synthetic" / "models" / "demo"
    assert TERMINOLOGY_DIR == REPO / "RootletSegLogic" / "levels" / "data"
    assert (EMBEDDED_DEMO_PATH / "nnUNetTrainer__nnUNetPlans__3d_fullres" / "plans.json").is_file()
    assert any(TERMINOLOGY_DIR.glob("*.json"))


def test_top_level_metadata(top_cmake):
    assert re.search(r"cmake_minimum_required\(VERSION 3\.20\.6", top_cmake)
    assert "project(RootletSeg)" in top_cmake
    for variable in ("EXTENSION_HOMEPAGE", "EXTENSION_CATEGORY", "EXTENSION_CONTRIBUTORS", "EXTENSION_DESCRIPTION",
                     "EXTENSION_ICONURL", "EXTENSION_DEPENDS"):
        assert re.search(r"set\(" + variable + r" \"[^\"]+\"\)", top_cmake), variable
    # the screenshot (scripts/render_screenshot.py) by the raw URL pattern of the icon, naming a committed file
    icon = re.search(r'set\(EXTENSION_ICONURL "([^"]+)"\)', top_cmake).group(1)
    raw = icon.removesuffix("Resources/Icons/RootletSeg.png")
    screenshots = re.search(r'set\(EXTENSION_SCREENSHOTURLS "([^"]+)"\)', top_cmake).group(1).split()
    assert screenshots == [raw + "docs/images/rootletseg_screenshot.png"]
    assert all((REPO / url.removeprefix(raw)).is_file() for url in screenshots)
    assert 'set(EXTENSION_CATEGORY "Segmentation")' in top_cmake
    assert 'set(EXTENSION_DEPENDS "PyTorch")' in top_cmake
    for line in ("find_package(Slicer REQUIRED)", "include(${Slicer_USE_FILE})", "add_subdirectory(RootletSeg)",
                 "include(${Slicer_EXTENSION_GENERATE_CONFIG})", "include(${Slicer_EXTENSION_CPACK})"):
        assert line in top_cmake
    assert top_cmake.index("include(${Slicer_USE_FILE})") < top_cmake.index("add_subdirectory(RootletSeg)")


def test_contributors_and_citation_agree_with_the_module(top_cmake):
    """EXTENSION_CONTRIBUTORS lists the module's contributors ("Name (Organisation)", comma-separated, as Slicer's
    template does) and the description and the module's help text cite the published paper."""
    import ast

    source = (REPO / "RootletSeg" / "RootletSeg.py").read_text(encoding="utf-8")
    contributors = next(ast.literal_eval(node.value) for node in ast.parse(source).body if isinstance(node, ast.Assign)
                        and any(getattr(t, "id", "") == "CONTRIBUTORS" for t in node.targets))
    assert contributors and all(re.fullmatch(r"[^(),]+ \([^()]+\)", name) for name in contributors)
    cmake = re.search(r'set\(EXTENSION_CONTRIBUTORS "([^"]+)"\)', top_cmake).group(1)
    assert cmake == ", ".join(contributors)
    description = re.search(r'set\(EXTENSION_DESCRIPTION "([^"]+)"\)', top_cmake).group(1)
    for text in (description, source):
        assert "10.1038/s41598-026-49164-0" in text and "Scientific Reports (2026)" in text
        assert all(name in text for name in ("Krejci", "Valosek", "Cohen-Adad", "Eippert", "Callot"))


def test_extensions_index_entry(top_cmake):
    entry = json.loads(INDEX_JSON.read_text(encoding="utf-8"))
    # keys of Slicer's Schemas/slicer-extension-catalog-entry-schema-v1.0.1.json (additionalProperties: false)
    allowed = {"$schema", "category", "scm_url", "scm_revision", "scm_type", "build_dependencies",
               "build_subdirectory", "enabled", "tier"}
    assert set(entry) <= allowed
    assert {"$schema", "category", "scm_url"} <= set(entry)
    assert entry["$schema"].endswith("slicer-extension-catalog-entry-schema-v1.0.1.json#")
    assert entry["category"] == "Segmentation"
    assert entry["build_dependencies"] == _set_values(top_cmake, "EXTENSION_DEPENDS")[0].strip('"').split()
    homepage = re.search(r'set\(EXTENSION_HOMEPAGE "([^"]+)"\)', top_cmake).group(1)
    assert entry["scm_url"].removesuffix(".git") == homepage
    assert 1 <= entry["tier"] <= 5 and isinstance(entry["build_subdirectory"], str)


def test_icon_is_a_128_pixel_png():
    data = (REPO / "Resources" / "Icons" / "RootletSeg.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (128, 128)


# ------------------------------------------------------------------------------------------------ real CMake run

STUB_CONFIG = r"""
# Stand-in for a Slicer build tree: just enough of SlicerConfig.cmake for RootletSeg's CMake code to configure.
set(Slicer_USE_FILE ${CMAKE_CURRENT_LIST_DIR}/UseSlicer.cmake)
set(Slicer_EXTENSION_GENERATE_CONFIG ${CMAKE_CURRENT_LIST_DIR}/empty.cmake)
set(Slicer_EXTENSION_CPACK ${CMAKE_CURRENT_LIST_DIR}/empty.cmake)
set(Slicer_QTSCRIPTEDMODULES_LIB_DIR lib/Slicer-5.10/qt-scripted-modules)
set(Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR lib/Slicer-5.10/qt-scripted-modules)
set(Slicer_FOUND TRUE)
"""

STUB_USE = r"""
# Record what would be copied where, with the path rules of CTK's ctkMacroCompilePythonScript: a relative SCRIPTS or
# RESOURCES entry is read from SOURCE_DIR (default: the calling folder) and written to DESTINATION_DIR/<entry>.
set(ROOTLETSEG_MANIFEST ${CMAKE_BINARY_DIR}/manifest.txt)
file(WRITE ${ROOTLETSEG_MANIFEST} "")
macro(ctkMacroCompilePythonScript)
  cmake_parse_arguments(STUB "NO_INSTALL_SUBDIR" "TARGET_NAME;SOURCE_DIR;DESTINATION_DIR;INSTALL_DIR" "SCRIPTS;RESOURCES" ${ARGN})
  if(NOT STUB_SOURCE_DIR)
    set(STUB_SOURCE_DIR ${CMAKE_CURRENT_SOURCE_DIR})
  endif()
  foreach(_f IN LISTS STUB_SCRIPTS STUB_RESOURCES)
    if(NOT EXISTS ${STUB_SOURCE_DIR}/${_f})
      message(FATAL_ERROR "stub: ${STUB_SOURCE_DIR}/${_f} does not exist")
    endif()
    file(RELATIVE_PATH _rel ${CMAKE_BINARY_DIR}/${Slicer_QTSCRIPTEDMODULES_LIB_DIR} ${STUB_DESTINATION_DIR}/${_f})
    file(APPEND ${ROOTLETSEG_MANIFEST} "${_rel}\n")
  endforeach()
endmacro()
macro(slicerMacroBuildScriptedModule)
  cmake_parse_arguments(MOD "WITH_GENERIC_TESTS;WITH_SUBDIR" "NAME" "SCRIPTS;RESOURCES" ${ARGN})
  ctkMacroCompilePythonScript(TARGET_NAME ${MOD_NAME} SCRIPTS "${MOD_SCRIPTS}" RESOURCES "${MOD_RESOURCES}"
    DESTINATION_DIR ${CMAKE_BINARY_DIR}/${Slicer_QTSCRIPTEDMODULES_LIB_DIR}
    INSTALL_DIR ${Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR} NO_INSTALL_SUBDIR)
endmacro()
function(slicer_add_python_unittest)
endfunction()
"""


@pytest.mark.skipif(__import__("shutil").which("cmake") is None, reason="cmake is not installed")
def test_cmake_configures_with_a_stub_slicer_and_installs_the_mirrored_layout(tmp_path):
    """Runs CMake on the real CMakeLists.txt files against a stub Slicer (no Slicer build here): configuration
    succeeds and the module folder gets RootletSeg.py beside RootletSegLogic/ and Resources/, as the code expects."""
    import subprocess

    stub = tmp_path / "stub"
    stub.mkdir()
    (stub / "SlicerConfig.cmake").write_text(STUB_CONFIG)
    (stub / "UseSlicer.cmake").write_text(STUB_USE)
    (stub / "empty.cmake").write_text("")
    build = tmp_path / "build"
    done = subprocess.run(["cmake", "-S", str(REPO), "-B", str(build), f"-DSlicer_DIR={stub}"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    manifest = set((build / "manifest.txt").read_text().split())
    expected = {"RootletSeg.py", "Resources/UI/RootletSeg.ui", "Resources/Icons/RootletSeg.png"}
    expected |= {str(p.relative_to(REPO)) for p in (REPO / "RootletSegLogic").rglob("*")
                 if p.is_file() and "__pycache__" not in p.parts}
    demo = REPO / "RootletSegLogic" / "synthetic" / "models" / "demo"
    if demo.is_dir():
        expected |= {str(p.relative_to(REPO)) for p in demo.rglob("*") if p.is_file()}
    assert manifest == expected

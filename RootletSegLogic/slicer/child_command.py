"""The command line of a `rootletseg` child process and what it needs to run: the interpreter (PythonSlicer inside
Slicer), the environment (the package importable, unbuffered UTF-8 output) and the argument lists of
`python -m RootletSegLogic ...` (`segment_command` for the Slicer panel's Apply).

`slicer/child_process.ChildProcess` runs such a command; nothing here starts a process.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence

PACKAGE_NAME = "RootletSegLogic"

# ------------------------------------------------------------------------------------------------ interpreter


def package_parent() -> Path:
    """Folder holding the `RootletSegLogic` package (the repository root, or Slicer's qt-scripted-modules folder)."""
    return Path(__file__).resolve().parents[2]


def running_inside_slicer() -> bool:
    """True inside the Slicer application, whose `sys.executable` is the Slicer program rather than a Python."""
    name = Path(sys.executable).name.lower()
    return not name.startswith("python")


def python_executable(inside_slicer: Optional[bool] = None) -> str:
    """Interpreter that can run `python -m RootletSegLogic` with the packages of the current environment.

    In plain Python this is `sys.executable`. Inside Slicer, `sys.executable` is the application itself, and Slicer's
    Python interpreter is the `PythonSlicer` launcher, which Slicer puts on PATH and installs beside its executable.
    Raises RuntimeError when it cannot be found.
    """
    if inside_slicer is None:
        inside_slicer = running_inside_slicer()
    if not inside_slicer:
        return sys.executable
    exe_name = "PythonSlicer.exe" if os.name == "nt" else "PythonSlicer"
    found = shutil.which("PythonSlicer")
    if found:
        return found
    beside = Path(sys.executable).resolve().parent / exe_name
    if beside.is_file():
        return str(beside)
    raise RuntimeError(
        f"Slicer's Python interpreter ({exe_name}) was not found on PATH nor beside {sys.executable}: "
        "reinstall Slicer or run the `rootletseg` command in a terminal."
    )


def child_environment(base: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """Environment for the child: the package importable (PYTHONPATH), unbuffered UTF-8 output."""
    env = dict(os.environ if base is None else base)
    parent = str(package_parent())
    existing = env.get("PYTHONPATH", "")
    parts = [p for p in existing.split(os.pathsep) if p]
    if parent not in parts:
        parts.insert(0, parent)
    env["PYTHONPATH"] = os.pathsep.join(parts)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    return env


# ------------------------------------------------------------------------------------------------ commands

def rootletseg_command(args: Sequence[str], python: Optional[str] = None) -> List[str]:
    """`[python, "-m", "RootletSegLogic", *args]`: the `rootletseg` command run with a chosen interpreter."""
    return [python or python_executable(), "-m", PACKAGE_NAME, *[str(a) for a in args]]


def segment_command(
    input_path: os.PathLike | str,
    output_path: os.PathLike | str,
    model: str,
    device: str = "auto",
    tta: bool = False,
    overwrite: bool = True,
    python: Optional[str] = None,
    extra_args: Iterable[str] = (),
) -> List[str]:
    """Command line of `rootletseg segment IMAGE -o OUT --model M --device D [--tta] --progress json`.

    `model` is a registry name (rootletseg, m5, demo) or the path of a model folder or zip; `device` a value of the
    CLI's `--device` option. `overwrite` is for outputs in a private temporary folder (the Slicer module's case).
    """
    if not str(model).strip():
        raise ValueError("model must be a registry name or a path")
    args = ["segment", str(input_path), "-o", str(output_path), "--model", str(model), "--device", device]
    if tta:
        args.append("--tta")
    if overwrite:
        args.append("--overwrite")
    args += ["--progress", "json", *extra_args]
    return rootletseg_command(args, python)

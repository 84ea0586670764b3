"""Which Python packages segmentation needs, which are missing, and how the Slicer module installs them.

Plain Python (no Qt, no Slicer): the Slicer module asks `install_plan()` what to do, shows `plan.message` in ONE
confirmation dialog, and only then runs the steps. torch comes through the PyTorch extension (`PyTorchUtils`), which
picks the build matching the GPU driver; nnunetv2 comes through pip *constrained to the installed torch*, so that pip
cannot replace that torch build by another one (a multi-GB CPU/CUDA swap).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional

TORCH_REQUIREMENT = ">=2.1.2,!=2.9.*"  # what nnunetv2 2.5 .. 2.8 accept
NNUNET_REQUIREMENT = "nnunetv2>=2.5,<2.9"  # same range as pyproject.toml
REQUIRED_MODULES = ("torch", "nnunetv2")


def module_available(name: str) -> bool:
    """True if `import name` would find the module (without importing it)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def missing_packages(available: Callable[[str], bool] = module_available) -> List[str]:
    """The packages of REQUIRED_MODULES that are not installed, in install order (torch first)."""
    return [name for name in REQUIRED_MODULES if not available(name)]


def installed_version(distribution: str) -> Optional[str]:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


@dataclass
class InstallStep:
    package: str
    how: str  # "pytorchutils" | "pip"
    requirement: str


@dataclass
class InstallPlan:
    steps: List[InstallStep] = field(default_factory=list)
    blocked: Optional[str] = None  # set when the plan cannot run (e.g. the PyTorch extension is missing)

    @property
    def needed(self) -> bool:
        return bool(self.steps) or self.blocked is not None

    @property
    def message(self) -> str:
        """The text of the single confirmation dialog (or of the error when blocked)."""
        if self.blocked:
            return self.blocked
        lines = ["RootletSeg needs Python packages that are not installed yet:", ""]
        for step in self.steps:
            if step.how == "pytorchutils":
                lines.append(f"  - torch{step.requirement}, through the PyTorch extension (the build matching your GPU)")
            else:
                lines.append(f"  - {step.requirement} and its dependencies, with pip (keeping the installed torch)")
        lines += ["", "This downloads several hundred MB to a few GB and can take minutes. Install now?"]
        return "\n".join(lines)


def install_plan(missing: List[str], pytorch_extension_available: bool) -> InstallPlan:
    """What to install for `missing` (from `missing_packages`), given whether the PyTorch extension is installed."""
    plan = InstallPlan()
    if "torch" in missing:
        if not pytorch_extension_available:
            plan.blocked = (
                "RootletSeg needs PyTorch, which is installed through the 'PyTorch' extension: install that extension "
                "with the Extensions Manager, restart Slicer, and press Apply again."
            )
            return plan
        plan.steps.append(InstallStep("torch", "pytorchutils", TORCH_REQUIREMENT))
    if "nnunetv2" in missing:
        plan.steps.append(InstallStep("nnunetv2", "pip", NNUNET_REQUIREMENT))
    return plan


def torch_constraint_file(folder: os.PathLike | str, torch_version: Optional[str] = None) -> Path:
    """Write a pip constraints file pinning torch to the installed version (`torch==2.5.1+cu121`)."""
    version = torch_version or installed_version("torch")
    if not version:
        raise RuntimeError("torch is not installed: install it (PyTorch extension) before nnunetv2")
    path = Path(folder) / "rootletseg-torch-constraint.txt"
    path.write_text(f"torch=={version}\n", encoding="utf-8")
    return path


def nnunet_pip_arguments(constraint_file: os.PathLike | str) -> List[str]:
    """Arguments for `slicer.util.pip_install([...])` installing nnunetv2 without touching torch."""
    return [NNUNET_REQUIREMENT, "--constraint", str(constraint_file)]

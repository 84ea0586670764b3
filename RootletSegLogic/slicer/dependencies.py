"""Which Python packages segmentation needs, which are missing, and how the Slicer module installs them.

Plain Python (no Qt, no Slicer): the Slicer module asks `install_plan()` what to do, shows `plan.message` in ONE
confirmation dialog, and only then runs the steps. torch comes through the PyTorch extension (`PyTorchUtils`), which
picks the build matching the GPU driver. nnunetv2 is installed the way the NNUNet extension (SlicerNNUnet,
`InstallLogic`) does it, reusing that extension's install logic when it is installed: `pip install nnunetv2 --no-deps`,
then its dependencies one by one except SimpleITK (Slicer's own build has Slicer's IO), torch (the PyTorch
extension's build) and requests (replacing it needs a restart), with a macOS pin of imagecodecs (newer releases lack
Intel macOS wheels; SlicerNNUnet pull request 25). The installed torch is checked against nnunetv2's range BEFORE
pip runs. OpenVINO (the faster CPU backend of `segment --backend auto`) is installed with nnunetv2, by pip, with the
same constraints; it is optional: without it PyTorch runs the network, so its absence alone never asks to install.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

TORCH_REQUIREMENT = ">=2.1.2,!=2.9.*"  # what nnunetv2 2.5 .. 2.8 accept
NNUNET_REQUIREMENT = "nnunetv2>=2.5,<2.9"  # same range as pyproject.toml
REQUIRED_MODULES = ("torch", "nnunetv2")
OPENVINO_REQUIREMENT = "openvino>=2024.4"  # same as pyproject.toml; optional (segmentation.backends falls back)
SKIPPED_PACKAGES = ("simpleitk", "torch", "requests")  # never installed or replaced by pip here
MACOS_PINS = ("imagecodecs<2026.5",)  # newer imagecodecs has no Intel macOS wheel (SlicerNNUnet PR 25)
SHOWN_VERSIONS = ("torch", "nnunetv2", "SimpleITK", "numpy")


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


def installed_versions(names=SHOWN_VERSIONS, version: Callable[[str], Optional[str]] = None) -> Dict[str, str]:
    """{distribution: installed version or "not installed"} for the panel's dependency line and the dialog."""
    version = version or installed_version
    return {name: version(name) or "not installed" for name in names}


def torch_problem(torch_version: Optional[str], requirement: str = TORCH_REQUIREMENT) -> Optional[str]:
    """One sentence when the installed torch does not fit nnunetv2's range (checked before pip runs), else None."""
    if not torch_version:
        return None
    from packaging.specifiers import SpecifierSet
    from packaging.version import InvalidVersion, Version

    try:
        fits = Version(torch_version.split("+")[0]) in SpecifierSet(requirement)
    except InvalidVersion:
        return None
    if fits:
        return None
    return (f"PyTorch {torch_version} is installed but nnU-Net needs torch{requirement}: open the PyTorch Utils module, "
            f"uninstall PyTorch, restart Slicer and press Apply again (a fitting build is then installed).")


def selective_requirements(requires: List[str], platform: str = sys.platform) -> List[str]:
    """nnunetv2's own requirements (`importlib.metadata.requires("nnunetv2")`) to install one by one: those for
    this platform, without SKIPPED_PACKAGES and extras, plus the macOS pins."""
    from packaging.requirements import Requirement

    kept = []
    for text in requires or []:
        requirement = Requirement(text)
        if requirement.name.lower().replace("_", "-") in SKIPPED_PACKAGES:
            continue
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": "", "sys_platform": platform}):
            continue
        kept.append(f"{requirement.name}{requirement.specifier}")
    if platform == "darwin":
        kept += list(MACOS_PINS)
    return kept


@dataclass
class InstallStep:
    package: str
    how: str  # "pytorchutils" | "nnunet-extension" | "pip"
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
            elif step.how == "nnunet-extension":
                lines.append(f"  - {step.requirement}, through the NNUNet extension's installer")
            elif step.package == "openvino":
                lines.append(f"  - {step.requirement}, with pip (a faster CPU backend for the network; optional)")
            else:
                lines.append(f"  - {step.requirement} and its dependencies, with pip "
                             f"(Slicer's SimpleITK, torch and requests are kept)")
        versions = ", ".join(f"{name} {version}" for name, version in installed_versions().items())
        lines += ["", f"Installed now: {versions}."]
        lines += ["", "This downloads several hundred MB to a few GB and can take minutes. Install now?"]
        return "\n".join(lines)


def install_plan(
    missing: List[str],
    pytorch_extension_available: bool,
    torch_version: Optional[str] = None,
    nnunet_extension_available: bool = False,
    openvino_missing: Optional[bool] = None,
) -> InstallPlan:
    """What to install for `missing` (from `missing_packages`): torch through the PyTorch extension, nnunetv2 through
    the NNUNet extension's install logic when it is installed, else selectively with pip; with nnunetv2, OpenVINO by
    pip when it is missing too (`openvino_missing`, None = look). Blocked (with what to do) when torch is needed
    without the PyTorch extension, or when the installed torch (`torch_version`) does not fit."""
    plan = InstallPlan()
    problem = torch_problem(torch_version) if "torch" not in missing else None
    if problem:
        plan.blocked = problem
        return plan
    if "torch" in missing:
        if not pytorch_extension_available:
            plan.blocked = (
                "RootletSeg needs PyTorch, which is installed through the 'PyTorch' extension: install that extension "
                "with the Extensions Manager, restart Slicer, and press Apply again."
            )
            return plan
        plan.steps.append(InstallStep("torch", "pytorchutils", TORCH_REQUIREMENT))
    if "nnunetv2" in missing:
        how = "nnunet-extension" if nnunet_extension_available else "pip"
        plan.steps.append(InstallStep("nnunetv2", how, NNUNET_REQUIREMENT))
        if openvino_missing if openvino_missing is not None else not module_available("openvino"):
            plan.steps.append(InstallStep("openvino", "pip", OPENVINO_REQUIREMENT))
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


def keep_constraint_file(folder: os.PathLike | str, version: Callable[[str], Optional[str]] = None) -> Path:
    """A pip constraints file pinning the installed torch, SimpleITK and requests, so no dependency replaces them."""
    version = version or installed_version
    lines = [f"{name}=={version(name)}" for name in ("torch", "SimpleITK", "requests") if version(name)]
    path = Path(folder) / "rootletseg-keep-constraints.txt"
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def selective_install(pip_install: Callable, folder: os.PathLike | str, requires: Callable = None,
                      platform: str = sys.platform) -> List[str]:
    """Install nnunetv2 as SlicerNNUnet does: the package without dependencies, then its dependencies except
    SimpleITK/torch/requests (kept by a constraints file), with the macOS pins. `pip_install` is
    `slicer.util.pip_install` (called with one argument list). Returns the requirements installed."""
    requires = requires or importlib.metadata.requires
    pip_install([NNUNET_REQUIREMENT, "--no-deps"])
    importlib.invalidate_caches()
    wanted = selective_requirements(requires("nnunetv2"), platform)
    if wanted:
        pip_install(wanted + ["--constraint", str(keep_constraint_file(folder))])
    return wanted


def _install_torch_with_pytorch_extension(requirement: str):
    import PyTorchUtils  # the PyTorch extension's module (desktop Slicer only)

    return PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False, torchVersionRequirement=requirement)


def _install_with_nnunet_extension(requirement: str):
    from SlicerNNUNetLib import InstallLogic  # the NNUNet extension's installer (desktop Slicer only)

    return InstallLogic(doAskConfirmation=False).setupPythonRequirements(requirement)


def run_plan(plan: InstallPlan, pip_install: Callable, install_torch: Callable = None,
             nnunet_extension_install: Callable = None) -> None:
    """Run the steps of a confirmed plan: `install_torch(requirement)` (PyTorch extension; falsy result = failed),
    `nnunet_extension_install(requirement)` (NNUNet extension; falsy = failed), else `selective_install` with
    `pip_install` (slicer.util.pip_install). Raises UserError with what to do when a step or the result fails."""
    import tempfile

    from RootletSegLogic.errors import UserError

    install_torch = install_torch or _install_torch_with_pytorch_extension
    nnunet_extension_install = nnunet_extension_install or _install_with_nnunet_extension
    for step in plan.steps:
        if step.how == "pytorchutils":
            if not install_torch(step.requirement):
                raise UserError("PyTorch was not installed: install it in the PyTorch Utils module, then retry.")
        elif step.how == "nnunet-extension":
            if not nnunet_extension_install(step.requirement):
                raise UserError("The NNUNet extension could not install nnunetv2: see the Python console.")
        elif step.package == "openvino":
            with tempfile.TemporaryDirectory(prefix="rootletseg_pip_") as folder:
                pip_install([step.requirement, "--constraint", str(keep_constraint_file(folder))])
        else:
            with tempfile.TemporaryDirectory(prefix="rootletseg_pip_") as folder:
                selective_install(pip_install, folder)
    importlib.invalidate_caches()
    still = missing_packages()
    if still:
        raise UserError(f"Installing {', '.join(still)} did not succeed: see the Python console, then restart Slicer.")


def ensure_installed(slicer_modules, confirm: Callable[[str], bool], show_error: Callable[[str], None],
                     pip_install: Callable, missing: Optional[List[str]] = None, **installers) -> bool:
    """What Apply does first: True when torch and nnunetv2 are importable, installing the missing ones after ONE
    `confirm(plan.message)`. The extensions used are those present in `slicer_modules` (`slicer.modules`:
    "pytorchutils", "slicernnunet"). A blocked plan is shown with `show_error` and gives False, as does a refusal;
    a failed install raises UserError. `installers` go to `run_plan` (tests)."""
    missing = missing_packages() if missing is None else missing
    if not missing:
        return True
    plan = install_plan(missing, hasattr(slicer_modules, "pytorchutils"), installed_version("torch"),
                        hasattr(slicer_modules, "slicernnunet"))
    if plan.blocked:
        show_error(plan.blocked)
        return False
    if not confirm(plan.message):
        return False
    run_plan(plan, pip_install, **installers)
    return True

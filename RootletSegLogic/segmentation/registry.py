"""The model registry (known models, aliases, release URLs) and the per-user cache locations."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from RootletSegLogic.errors import UserError
from RootletSegLogic.levels.types import SPINAL_LEVEL_NAMES

RECORD_NAME = "rootletseg_model.json"
TRUST_WARNING = (
    "{what} is not a verified RootletSeg registry model: its checkpoints are Python pickles and can run arbitrary "
    "code if loaded in full (RootletSeg loads them weights-only and refuses any that need more): use only models from "
    "a source you trust."
)


def _labels(first: int, last: int) -> Dict[int, str]:
    return {value: SPINAL_LEVEL_NAMES[value] for value in range(first, last + 1)}


@dataclass(frozen=True)
class ModelSpec:
    """A known model. `sha256`/`size_bytes` describe the release zip (None until published / known)."""

    name: str
    aliases: Tuple[str, ...]
    title: str
    release: str
    url: Optional[str]  # None for the embedded demo model
    sha256: Optional[str]
    size_bytes: Optional[int]
    labels: Dict[int, str]  # output label value -> spinal level name
    contrasts: Tuple[str, ...]
    description: str
    embedded_path: Optional[Path] = None  # set for the demo model only

    @property
    def embedded(self) -> bool:
        return self.embedded_path is not None

    @property
    def labels_summary(self) -> str:
        """E.g. '2..9 (C2-T1)'."""
        values = sorted(self.labels)
        return f"{values[0]}..{values[-1]} ({self.labels[values[0]]}-{self.labels[values[-1]]})" if values else ""


EMBEDDED_DEMO_PATH = Path(__file__).resolve().parent.parent / "synthetic" / "models" / "demo"

REGISTRY: Dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="rootletseg",
            aliases=("multicon", "r20250318"),
            title="RootletSeg multi-contrast (C2-T1, dorsal + ventral rootlets)",
            release="r20250318",
            url="https://github.com/ivadomed/model-spinal-rootlets/releases/download/r20250318/"
            "model-spinal-rootlets-multicon-r20250318.zip",
            sha256=None,
            size_bytes=None,
            labels=_labels(2, 9),
            contrasts=("T2w", "T1w-INV1", "T1w-INV2", "UNIT1"),
            description="Official RootletSeg nnU-Net v2 model (3T T2w TSE and 7T MP2RAGE), dorsal and ventral "
            "rootlets of levels C2 to T1; what SCT >= 7.0 runs as task 'rootlets'.",
        ),
        ModelSpec(
            name="m5",
            aliases=("r20240730",),
            title="Rootlets M5 (T2w, C2-C8, dorsal rootlets only)",
            release="r20240730",
            url="https://github.com/ivadomed/model-spinal-rootlets/releases/download/r20240730/"
            "model-spinal-rootlets_M5_r20240129-2.zip",
            sha256=None,
            size_bytes=None,
            labels=_labels(2, 8),
            contrasts=("T2w",),
            description="Earlier T2w model segmenting dorsal rootlets of levels C2 to C8.",
        ),
        ModelSpec(
            name="demo",
            aliases=(),
            title="Demo model (synthetic phantoms, C2-T1)",
            release="embedded",
            url=None,
            sha256=None,
            size_bytes=None,
            labels=_labels(2, 9),
            contrasts=("synthetic phantom",),
            description="Small nnU-Net v2 model trained on synthetic phantoms, shipped with RootletSeg for demos "
            "and tests; not meant for real MRI.",
            embedded_path=EMBEDDED_DEMO_PATH,
        ),
    )
}


# --------------------------------------------------------------------------------------------------------- cache


def cache_root() -> Path:
    """The per-user RootletSeg cache folder (not created here)."""
    home = os.environ.get("ROOTLETSEG_HOME")
    if home:
        return Path(home).expanduser()
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "rootletseg"
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "rootletseg"
    return Path.home() / ".cache" / "rootletseg"


def models_root() -> Path:
    return cache_root() / "models"


def installed_path(name: str) -> Path:
    """Where registry model `name` is (or would be) installed."""
    return models_root() / name


def imported_root() -> Path:
    return models_root() / "imported"


def local_root() -> Path:
    return models_root() / "local"


def known_names() -> List[str]:
    return sorted(REGISTRY)


def lookup(name: str) -> Optional[ModelSpec]:
    """The registry entry for a name or alias (case-insensitive), else None."""
    key = name.strip().lower()
    for spec in REGISTRY.values():
        if key == spec.name or key in spec.aliases:
            return spec
    return None


def unknown_name_error(name: str) -> UserError:
    names = ", ".join(
        spec.name + (f" ({', '.join(spec.aliases)})" if spec.aliases else "") for spec in REGISTRY.values()
    )
    return UserError(
        f"Unknown model '{name}': give one of {names}, an imported model name, or the path of an nnU-Net v2 "
        "model folder or zip."
    )


def spec_or_error(name: str) -> ModelSpec:
    spec = lookup(name)
    if spec is None:
        raise unknown_name_error(name)
    return spec

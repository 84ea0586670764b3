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
    labels: Dict[int, str]  # output label value -> spinal level name (landmark models: class name)
    contrasts: Tuple[str, ...]
    description: str
    embedded_path: Optional[Path] = None  # set for the embedded demo models only
    kind: str = "rootlets"  # "rootlets" (label = spinal level) or "landmarks" (TotalSpineSeg step-1 scheme)

    @property
    def embedded(self) -> bool:
        return self.embedded_path is not None

    @property
    def labels_summary(self) -> str:
        """E.g. '2..9 (C2-T1)'."""
        values = sorted(self.labels)
        return f"{values[0]}..{values[-1]} ({self.labels[values[0]]}-{self.labels[values[-1]]})" if values else ""


EMBEDDED_DEMO_PATH = Path(__file__).resolve().parent.parent / "synthetic" / "models" / "demo"
EMBEDDED_DEMO_SPINE_PATH = EMBEDDED_DEMO_PATH.parent / "demo-spine"
KINDS = ("rootlets", "landmarks")
# TotalSpineSeg's step-1 classes (landmarks/scheme.py; its dataset_step1.json), value -> name
STEP1_CLASS_NAMES = {1: "disc", 2: "disc C2/C3", 3: "disc C7/T1", 4: "disc T12/L1", 5: "disc L5/S1",
                     6: "vertebra", 7: "vertebra C1", 8: "canal", 9: "cord"}

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
        ModelSpec(
            name="totalspineseg",
            aliases=("tss", "totalspineseg-step1", "r20260730"),
            title="TotalSpineSeg step 1 (cord, canal, discs, vertebrae)",
            release="r20260730",
            # the URL the `totalspineseg` PyPI package's metadata gives for Dataset101_TotalSpineSeg_step1
            url="https://github.com/neuropoly/totalspineseg/releases/download/r20260730/"
            "Dataset101_TotalSpineSeg_step1_r20260730.zip",
            sha256=None,
            size_bytes=None,
            labels=dict(STEP1_CLASS_NAMES),
            contrasts=("T2w", "T1w", "and other MRI contrasts"),
            description="TotalSpineSeg's step-1 nnU-Net v2 model (neuropoly/totalspineseg, LGPL-3; SCT 7's "
            "'sct_deepseg spine'): spinal cord, canal, discs and vertebrae; RootletSeg turns it into a cord mask "
            "and SCT disc labels (`rootletseg landmarks`). No checksum is published.",
            kind="landmarks",
        ),
        ModelSpec(
            name="demo-spine",
            aliases=(),
            title="Demo spine model (synthetic phantoms: cord, canal, discs, vertebrae)",
            release="embedded",
            url=None,
            sha256=None,
            size_bytes=None,
            labels={v: n for v, n in STEP1_CLASS_NAMES.items() if v not in (4, 5)},
            contrasts=("synthetic phantom",),
            description="Small nnU-Net v2 model trained on synthetic phantoms with TotalSpineSeg's step-1 label "
            "values, shipped with RootletSeg for the demo and tests; not meant for real MRI.",
            embedded_path=EMBEDDED_DEMO_SPINE_PATH,
            kind="landmarks",
        ),
    )
}
DEFAULT_LANDMARK_MODEL = "totalspineseg"


def names_of_kind(kind: str) -> List[str]:
    """Registry names of one kind ("rootlets" or "landmarks")."""
    return [name for name, spec in REGISTRY.items() if spec.kind == kind]


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

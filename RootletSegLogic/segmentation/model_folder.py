"""The nnU-Net v2 trained-model folder layout, as SCT expects it, checked with exact messages.

Layout: exactly one `nnUNetTrainer*__nnUNetPlans__3d_fullres`-style folder (at the given root, or one wrapper folder
down), holding `dataset.json`, `plans.json` and `fold_*` folders with `checkpoint_final.pth` (fallback
`checkpoint_best.pth`). A lone `fold_all` is used as fold "all"; otherwise every `fold_N` present is an ensemble
member.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

from RootletSegLogic.errors import UserError

CHECKPOINT_NAMES = ("checkpoint_final.pth", "checkpoint_best.pth")
_TRAINER_FOLDER = re.compile(r"^nnUNetTrainer\w*?__[^_].*__3d_fullres$")
_FOLD_FOLDER = re.compile(r"^fold_(all|\d+)$")

Fold = Union[int, str]


@dataclass
class ModelFolder:
    """A validated nnU-Net v2 model: where it is and what it contains."""

    trainer_dir: Path  # the nnUNetTrainer*__*__3d_fullres folder
    dataset_json: dict
    plans_json: dict
    checkpoints: Dict[Fold, Path]  # fold -> checkpoint file, in ensemble order
    configuration: str = "3d_fullres"
    metadata: dict = field(default_factory=dict)  # registry info (name, release, url, sha256, ...) when known

    @property
    def folds(self) -> List[Fold]:
        return list(self.checkpoints)

    @property
    def trainer_name(self) -> str:
        return self.trainer_dir.name.split("__")[0]

    @property
    def labels(self) -> Dict[str, int]:
        """dataset.json label names -> values (e.g. {"background": 0, "lvl2": 2, ...})."""
        return dict(self.dataset_json.get("labels", {}))

    @property
    def image_orientation_sct(self) -> Optional[str]:
        """dataset.json["image_orientation"] (SCT "from" letters) when the model declares one."""
        return self.dataset_json.get("image_orientation")

    def select_folds(self, folds: Optional[Sequence[Fold]]) -> "ModelFolder":
        """A copy restricted to `folds` ("all" or fold numbers); None keeps every fold."""
        if folds is None:
            return self
        wanted = [f if f == "all" else int(f) for f in folds]
        missing = [f for f in wanted if f not in self.checkpoints]
        if missing:
            available = ", ".join(str(f) for f in self.checkpoints)
            raise UserError(f"The model has no fold {missing[0]}: available folds are {available}.")
        return ModelFolder(
            self.trainer_dir, self.dataset_json, self.plans_json, {f: self.checkpoints[f] for f in wanted},
            self.configuration, dict(self.metadata),
        )


def find_trainer_dir(root: Path) -> Path:
    """The one trainer folder at `root`, inside it, or one wrapper folder down; UserError naming what is wrong."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"The model folder '{root}' does not exist: give an nnU-Net v2 model folder or zip.")
    if _TRAINER_FOLDER.match(root.name) and (root / "plans.json").exists():
        return root
    candidates = [p for p in root.iterdir() if p.is_dir() and _TRAINER_FOLDER.match(p.name)]
    if not candidates:
        subfolders = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "__MACOSX"))]
        if len(subfolders) == 1:
            candidates = [p for p in subfolders[0].iterdir() if p.is_dir() and _TRAINER_FOLDER.match(p.name)]
    if not candidates:
        raise UserError(
            f"'{root}' holds no nnUNetTrainer*__nnUNetPlans__3d_fullres folder: "
            "it is not an nnU-Net v2 3d_fullres model."
        )
    if len(candidates) > 1:
        names = ", ".join(sorted(p.name for p in candidates))
        raise UserError(f"'{root}' holds several trainer folders ({names}): keep exactly one.")
    return candidates[0]


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"The model is missing '{path.name}' in '{path.parent}'.")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UserError(f"The model file '{path}' is not valid JSON ({error}).") from None


def _check_consecutive_labels(labels: dict, trainer_dir: Path) -> None:
    """nnU-Net v2's output value is the class index, so plain (non-region) labels must be 0..N without gaps."""
    plain = [v for v in labels.values() if isinstance(v, int)]
    if len(plain) != len(labels):
        return  # region-based labels (lists of values) follow nnU-Net's regions_class_order instead
    if sorted(plain) != list(range(len(plain))):
        raise UserError(
            f"The model's dataset.json in '{trainer_dir}' has label values {sorted(plain)}: nnU-Net v2 needs "
            "consecutive values 0..N, so this is not a valid nnU-Net v2 model."
        )


# What a model's plans.json may name for RootletSeg to build its network. nnU-Net resolves these names with
# pydoc.locate, i.e. it imports whatever module a plans.json names: a foreign plans.json could make that any code.
NETWORK_PREFIX = "dynamic_network_architectures."
OP_PREFIX = "torch.nn."
LEGACY_NETWORKS = ("PlainConvUNet", "ResidualEncoderUNet")  # nnU-Net < 2.3 plans: "UNet_class_name"


def _configuration(plans: dict, name: str, trainer_dir: Path, seen=()) -> dict:
    """The configuration `name` with nnU-Net's `inherits_from` applied (parent first, child keys win)."""
    configurations = plans.get("configurations")
    config = configurations.get(name) if isinstance(configurations, dict) else None
    if not isinstance(config, dict) or name in seen:
        raise UserError(f"The model's plans.json in '{trainer_dir}' has no usable '{name}' configuration: the model "
                        "folder is damaged or not nnU-Net v2.")
    parent = config.get("inherits_from")
    if parent is None:
        return config
    merged = dict(_configuration(plans, str(parent), trainer_dir, (*seen, name)))
    merged.update(config)
    return merged


def check_architecture(plans: dict, trainer_dir: Path, configuration: str = "3d_fullres") -> None:
    """UserError unless the plans name a network from dynamic_network_architectures built from torch.nn operations
    (what nnU-Net's planners write); checked from the JSON alone, before anything is imported or installed."""
    config = _configuration(plans, configuration, trainer_dir)
    advice = ("RootletSeg runs nnU-Net's own networks only (dynamic_network_architectures classes, torch.nn "
              "operations): use a standard nnU-Net v2 model")
    architecture = config.get("architecture")
    if architecture is None:
        legacy = config.get("UNet_class_name")
        # neither entry: nothing is named, so nothing can be imported; building the network says what is missing
        if legacy is not None and legacy not in LEGACY_NETWORKS:
            raise UserError(f"The model's plans.json in '{trainer_dir}' names the network '{legacy}': {advice}.")
        return
    if not isinstance(architecture, dict):
        raise UserError(f"The model's plans.json in '{trainer_dir}' has a malformed 'architecture' entry: {advice}.")
    network = architecture.get("network_class_name")
    if not isinstance(network, str) or not network.startswith(NETWORK_PREFIX):
        raise UserError(f"The model's plans.json in '{trainer_dir}' names the network class '{network}': {advice}.")
    kwargs = architecture.get("arch_kwargs")
    to_import = architecture.get("_kw_requires_import", [])
    if not isinstance(kwargs, dict) or not isinstance(to_import, (list, tuple)):
        raise UserError(f"The model's plans.json in '{trainer_dir}' has malformed network arguments: {advice}.")
    for key in to_import:
        value = kwargs.get(key) if isinstance(key, str) else key
        if value is not None and (not isinstance(value, str) or not value.startswith(OP_PREFIX)):
            raise UserError(f"The model's plans.json in '{trainer_dir}' names the operation '{value}' for "
                            f"'{key}': {advice}.")


def _fold_key(name: str) -> Fold:
    value = _FOLD_FOLDER.match(name).group(1)
    return "all" if value == "all" else int(value)


def load_model_folder(root: Union[str, Path], metadata: Optional[dict] = None) -> ModelFolder:
    """Validate an nnU-Net v2 model folder (SCT layout) and describe it; UserError says exactly what is missing."""
    trainer_dir = find_trainer_dir(Path(root))
    dataset_json = _read_json(trainer_dir / "dataset.json")
    plans_json = _read_json(trainer_dir / "plans.json")
    if not isinstance(plans_json, dict) or not isinstance(plans_json.get("configurations"), dict) \
            or "3d_fullres" not in plans_json["configurations"]:
        raise UserError(f"The model's plans.json in '{trainer_dir}' has no 3d_fullres configuration.")
    check_architecture(plans_json, trainer_dir)
    if not isinstance(dataset_json, dict) or not isinstance(dataset_json.get("labels"), dict):
        raise UserError(f"The model's dataset.json in '{trainer_dir}' has no 'labels' entry.")
    _check_consecutive_labels(dataset_json["labels"], trainer_dir)
    fold_dirs = sorted(
        (p for p in trainer_dir.iterdir() if p.is_dir() and _FOLD_FOLDER.match(p.name)),
        key=lambda p: (p.name != "fold_all", str(_fold_key(p.name)).zfill(4)),
    )
    if not fold_dirs:
        raise UserError(f"The model folder '{trainer_dir}' has no fold_* folder: the weights are missing.")
    numbered = [p for p in fold_dirs if p.name != "fold_all"]
    use = numbered if numbered else fold_dirs  # a lone fold_all is fold "all"; otherwise the numbered folds
    checkpoints: Dict[Fold, Path] = {}
    for fold_dir in use:
        found = next((fold_dir / n for n in CHECKPOINT_NAMES if (fold_dir / n).is_file()), None)
        if found is None:
            raise UserError(
                f"The model fold '{fold_dir.name}' in '{trainer_dir}' has neither checkpoint_final.pth "
                "nor checkpoint_best.pth."
            )
        checkpoints[_fold_key(fold_dir.name)] = found
    return ModelFolder(trainer_dir, dataset_json, plans_json, checkpoints, metadata=dict(metadata or {}))

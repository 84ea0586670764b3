"""Model folder layout: trainer-name variants are accepted, label values with gaps are refused."""

from __future__ import annotations

import json

import pytest

from RootletSegLogic.errors import UserError
from RootletSegLogic.segmentation.model_folder import load_model_folder


def test_model_folder_accepts_trainer_variants_and_refuses_label_gaps(tmp_path):
    trainer = tmp_path / "nnUNetTrainer_250epochs__nnUNetPlans__3d_fullres"
    (trainer / "fold_all").mkdir(parents=True)
    (trainer / "fold_all" / "checkpoint_best.pth").write_bytes(b"weights")
    (trainer / "plans.json").write_text(json.dumps({"configurations": {"3d_fullres": {}}}))
    labels = {"background": 0, **{f"lvl{v}": v for v in range(1, 10)}}
    (trainer / "dataset.json").write_text(json.dumps({"labels": labels}))
    model = load_model_folder(tmp_path)
    assert model.folds == ["all"] and model.checkpoints["all"].name == "checkpoint_best.pth"
    assert model.trainer_name == "nnUNetTrainer_250epochs"
    del labels["lvl1"]
    (trainer / "dataset.json").write_text(json.dumps({"labels": labels}))
    with pytest.raises(UserError, match="consecutive"):
        load_model_folder(tmp_path)

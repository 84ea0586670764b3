"""Hardening (issue 8), kind "trust": checkpoints are unpickled weights-only, so a pickle payload cannot run;
a checkpoint holding everything nnU-Net's trainer saves still loads (the official models are such checkpoints);
the opt-in (ROOTLETSEG_TRUST_CHECKPOINTS=1) loads the rest; a model from a mirror is recorded as unverified."""

from __future__ import annotations

import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hardening_kit import assert_refused, cli, snapshot  # noqa: E402
from model_factory import build_network, dataset_json, make_model_folder, small_plans  # noqa: E402

from RootletSegLogic.errors import UserError  # noqa: E402
from RootletSegLogic.segmentation.checkpoints import load_checkpoint  # noqa: E402

torch = pytest.importorskip("torch")


def trainer_checkpoint(plans: dict, dataset: dict) -> dict:
    """Every field nnU-Net's `nnUNetTrainer.save_checkpoint` saves, built the way it builds them: the network's
    state_dict, a real SGD (nesterov) optimizer state after a step, a GradScaler state, the logger's lists (NumPy
    float64/float32 scalars from np.mean / np.nanmean, time() floats), `_best_ema` (a NumPy scalar), `current_epoch`,
    `init_args` (the trainer's __init__ arguments: plans, configuration, fold, dataset_json, a torch.device),
    `trainer_name`, `inference_allowed_mirroring_axes` (a tuple)."""
    network = build_network(plans, dataset["labels"], seed=3)
    optimizer = torch.optim.SGD(network.parameters(), 0.01, weight_decay=3e-5, momentum=0.99, nesterov=True)
    patch = plans["configurations"]["3d_fullres"]["patch_size"]
    network(torch.zeros(1, 1, *patch)).mean().backward()
    optimizer.step()
    now = time.time()
    logging = {
        "mean_fg_dice": [np.nanmean(np.array([0.4, 0.6]))], "ema_fg_dice": [np.float64(0.5)],
        "dice_per_class_or_region": [[np.float64(0.1), 0.2, np.float32(0.3)]],
        "train_losses": [np.mean(np.array([-0.1, -0.3]))], "val_losses": [np.float32(-0.2)],
        "lrs": [0.01], "epoch_start_timestamps": [now], "epoch_end_timestamps": [now + 1.0],
    }
    return {
        "network_weights": network.state_dict(),
        "optimizer_state": optimizer.state_dict(),
        "grad_scaler_state": torch.amp.GradScaler("cpu").state_dict(),
        "logging": logging,
        "_best_ema": np.float64(0.5),
        "current_epoch": 1,
        "init_args": {"plans": plans, "configuration": "3d_fullres", "fold": 0, "dataset_json": dataset,
                      "device": torch.device("cpu")},
        "trainer_name": "nnUNetTrainer",
        "inference_allowed_mirroring_axes": (0, 1, 2),
    }


def as_numpy1_pickle(path: Path) -> None:
    """Rewrite a checkpoint as NumPy 1 pickles it (`numpy.core.multiarray.scalar`, as the official models were
    saved) instead of NumPy 2's `numpy._core...`: the GLOBAL opcode holds the module name as text."""
    with zipfile.ZipFile(path) as source:
        members = [(info, source.read(info)) for info in source.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as target:
        for info, data in members:
            if info.filename.endswith("data.pkl"):
                assert b"numpy._core.multiarray" in data
                data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
            target.writestr(info, data)


class Payload:
    """Unpickling this writes a marker file: what a malicious checkpoint would do."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('ran')",))


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    root = tmp_path_factory.mktemp("trust")
    plans, dataset = small_plans(), dataset_json()
    full = make_model_folder(root / "full", plans, dataset)
    checkpoint = full / "nnUNetTrainer__nnUNetPlans__3d_fullres" / "fold_0" / "checkpoint_final.pth"
    torch.save(trainer_checkpoint(plans, dataset), checkpoint)
    old = make_model_folder(root / "numpy1", plans, dataset)
    old_checkpoint = old / "nnUNetTrainer__nnUNetPlans__3d_fullres" / "fold_0" / "checkpoint_final.pth"
    torch.save(trainer_checkpoint(plans, dataset), old_checkpoint)
    as_numpy1_pickle(old_checkpoint)
    evil = make_model_folder(root / "evil", plans, dataset)
    marker = root / "payload_ran"
    evil_checkpoint = evil / "nnUNetTrainer__nnUNetPlans__3d_fullres" / "fold_0" / "checkpoint_final.pth"
    content = trainer_checkpoint(plans, dataset)
    content["logging"]["extra"] = Payload(marker)
    torch.save(content, evil_checkpoint)
    image = root / "image.nii.gz"
    array = np.random.default_rng(0).normal(100, 10, (12, 14, 10)).astype(np.int16)
    sitk.WriteImage(sitk.GetImageFromArray(array), str(image))
    return {"root": root, "full": full, "checkpoint": checkpoint, "old": old_checkpoint, "evil": evil,
            "evil_checkpoint": evil_checkpoint, "marker": marker, "image": image}


def test_full_trainer_checkpoint_loads_weights_only(kit):
    loaded = load_checkpoint(kit["checkpoint"])
    assert set(loaded) >= {"network_weights", "optimizer_state", "grad_scaler_state", "logging", "_best_ema",
                           "current_epoch", "init_args", "trainer_name", "inference_allowed_mirroring_axes"}
    assert isinstance(loaded["_best_ema"], np.float64) and loaded["init_args"]["device"] == torch.device("cpu")
    assert isinstance(loaded["logging"]["val_losses"][0], np.float32)


def test_numpy1_checkpoint_loads_weights_only(kit):
    loaded = load_checkpoint(kit["old"])
    assert float(loaded["_best_ema"]) == 0.5 and loaded["inference_allowed_mirroring_axes"] == (0, 1, 2)


def test_payload_refused_in_process_and_does_not_run(kit):
    with pytest.raises(UserError, match="ROOTLETSEG_TRUST_CHECKPOINTS=1") as caught:
        load_checkpoint(kit["evil_checkpoint"])
    assert "exec" in str(caught.value)
    assert not kit["marker"].exists()


def test_damaged_checkpoint_is_one_sentence(tmp_path, kit):
    damaged = tmp_path / "checkpoint_final.pth"
    damaged.write_bytes(kit["checkpoint"].read_bytes()[:4000])
    with pytest.raises(UserError, match="damaged"):
        load_checkpoint(damaged)
    damaged.write_bytes(b"\x80\x02}q\x00.")  # a bare pickle, not a torch file
    with pytest.raises(UserError, match="could not be read"):
        load_checkpoint(damaged)


def test_segmenter_loads_full_checkpoint_weights_only(kit):
    """In process (fast): the Segmenter builds the network and loads a full trainer checkpoint weights-only; the
    real `segment` process runs on the same checkpoint in test_trust_flag_is_the_opt_in."""
    from RootletSegLogic.segmentation.model_folder import load_model_folder
    from RootletSegLogic.segmentation.predictor import Segmenter

    segmenter = Segmenter(load_model_folder(kit["full"]), device="cpu", threads=1, trust_checkpoints=False)
    assert segmenter.trust_checkpoints is False and segmenter.predictor is not None


def test_segment_refuses_payload_and_writes_nothing(tmp_path, kit):
    image = tmp_path / "image.nii.gz"
    image.write_bytes(kit["image"].read_bytes())
    before = snapshot(tmp_path)
    result = cli("segment", image, "--model", kit["evil"], "--device", "cpu", "--threads", "1", "--progress", "none")
    assert_refused(result, "--trust-checkpoints", "ROOTLETSEG_TRUST_CHECKPOINTS=1", "could run code")
    assert not kit["marker"].exists()
    assert snapshot(tmp_path) == before


def test_opt_in_loads_with_full_unpickler(kit):
    loaded = load_checkpoint(kit["evil_checkpoint"], trust=True)
    assert kit["marker"].exists() and "network_weights" in loaded  # opted in: the user accepted that it runs
    kit["marker"].unlink()


# ------------------------------------------------------------------------------------------ mirrors: unverified
@pytest.fixture
def mirror(tmp_path):
    from test_models_kit import ModelServer, make_model_dir, zip_folder

    make_model_dir(tmp_path / "m")
    data = zip_folder(tmp_path / "m", tmp_path / "m.zip").read_bytes()
    server = ModelServer()
    server.routes["/m.zip"] = data
    yield server, data
    server.close()


def test_mirror_download_is_unverified_and_warned(mirror):
    from RootletSegLogic.segmentation.cache import model_info, resolve_model
    from RootletSegLogic.segmentation.cache_install import download_model

    server, _ = mirror
    warnings = []
    model = download_model("m5", url=server.url("/m.zip"), warn=warnings.append)
    assert model.metadata["trusted"] is False and model.metadata["source"] == "mirror"
    assert any("not checked against the registry's checksum" in w for w in warnings)
    again = []
    assert resolve_model("m5", warn=again.append).metadata["trusted"] is False and len(again) == 1
    assert model_info("m5")["trusted"] is False


def test_mirror_with_user_checksum_still_unverified_but_registry_checksum_verifies(mirror, monkeypatch):
    import dataclasses

    from RootletSegLogic.segmentation.cache_install import download_model
    from RootletSegLogic.segmentation.registry import REGISTRY

    server, data = mirror
    import hashlib

    digest = hashlib.sha256(data).hexdigest()
    model = download_model("m5", url=server.url("/m.zip"), sha256=digest, warn=lambda _: None)
    assert model.metadata["trusted"] is False  # the user's checksum proves what they chose, not the release
    monkeypatch.setitem(REGISTRY, "m5", dataclasses.replace(REGISTRY["m5"], sha256=digest))
    warnings = []
    model = download_model("m5", url=server.url("/m.zip"), force=True, warn=warnings.append)
    assert model.metadata["trusted"] is True and model.metadata["source"] == "registry" and warnings == []


def test_trust_flag_is_the_opt_in(tmp_path, kit):
    out = tmp_path / "labels.nii.gz"
    result = cli("segment", kit["image"], "--model", kit["evil"], "-o", out, "--device", "cpu", "--threads", "1",
                 "--progress", "none", "--trust-checkpoints")
    assert result.returncode == 0, result.stderr
    assert kit["marker"].exists() and out.is_file()
    kit["marker"].unlink()

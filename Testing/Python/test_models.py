"""Model registry and cache (RootletSegLogic.models), in process: real HTTP on 127.0.0.1, real zips, real files.

Every failure must be one clear sentence (UserError) and leave the cache exactly as it was."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
from pathlib import Path

import pytest
from test_models_kit import (
    TRAINER,
    ModelServer,
    corrupt_member,
    free_port,
    listing,
    make_model_dir,
    sha256_bytes,
    symlink_entry,
    zip_folder,
)

from RootletSegLogic.errors import UserError
from RootletSegLogic.segmentation.cache import list_models, model_info, resolve_model
from RootletSegLogic.segmentation.cache_install import download_model, import_model
from RootletSegLogic.segmentation.cached_models import weights_sha256
from RootletSegLogic.segmentation.model_folder import ModelFolder
from RootletSegLogic.segmentation.registry import (
    RECORD_NAME,
    REGISTRY,
    cache_root,
    lookup,
)


@pytest.fixture(autouse=True)
def _no_internet(monkeypatch):
    """Any connection other than to 127.0.0.1 fails the test."""
    real = socket.create_connection

    def guarded(address, *args, **kwargs):
        assert address[0] in ("127.0.0.1", "localhost"), f"test tried to reach {address}"
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", guarded)


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    """Model folders and zips built once for the module."""
    root = tmp_path_factory.mktemp("models_kit")
    good = root / "good"
    make_model_dir(good, folds=(0, 1))
    two = root / "two"
    make_model_dir(two)
    make_model_dir(two, trainer="nnUNetTrainerDA5__nnUNetPlans__3d_fullres")
    nofolds = root / "nofolds"
    make_model_dir(nofolds, folds=())
    zips = {
        "wrapped": zip_folder(good, root / "model-wrapped.zip", wrapper="model-spinal-rootlets"),
        "flat": zip_folder(good, root / "model-flat.zip"),
        "two": zip_folder(two, root / "two.zip"),
        "nofolds": zip_folder(nofolds, root / "nofolds.zip", wrapper="w"),
        "escape": zip_folder(good, root / "escape.zip", extra=[("../evil", b"x")]),
        "absolute": zip_folder(good, root / "absolute.zip", extra=[("/tmp/evil_rootletseg", b"x")]),
        "symlink": zip_folder(good, root / "symlink.zip", extra=[symlink_entry("link", "/etc/passwd")]),
    }
    data = {key: path.read_bytes() for key, path in zips.items()}
    data["truncated"] = data["flat"][: len(data["flat"]) * 2 // 3]
    data["html"] = b"<html>not found</html>"
    data["crc"] = corrupt_member(data["flat"], "checkpoint_final.pth")
    return {"root": root, "good": good, "zips": zips, "data": data}


@pytest.fixture
def server():
    srv = ModelServer()
    yield srv
    srv.close()


@pytest.fixture
def cache():
    return cache_root()


class Events:
    def __init__(self):
        self.events, self.warnings = [], []

    def __call__(self, event):
        self.events.append(event)

    def warning(self, message):
        self.warnings.append(message)


def assert_one_sentence(message: str):
    assert "\n" not in message and "Traceback" not in message
    assert message.endswith("."), message
    assert len(message) < 400, message


# --------------------------------------------------------------------------------------------- cache location


def test_cache_root_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("ROOTLETSEG_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "home"
    monkeypatch.delenv("ROOTLETSEG_HOME")
    if os.name != "nt":
        assert cache_root() == tmp_path / "xdg" / "rootletseg"
        monkeypatch.delenv("XDG_CACHE_HOME")
        monkeypatch.setenv("HOME", str(tmp_path / "user"))
        assert cache_root() == tmp_path / "user" / ".cache" / "rootletseg"


def test_registry_entries():
    spec = lookup("multicon")
    assert spec.name == "rootletseg" and lookup("R20250318") is spec
    assert spec.url.endswith("/r20250318/model-spinal-rootlets-multicon-r20250318.zip")
    assert sorted(spec.labels) == list(range(2, 10)) and spec.labels[9] == "T1"
    assert set(spec.contrasts) == {"T2w", "T1w-INV1", "T1w-INV2", "UNIT1"}
    m5 = lookup("r20240730")
    assert m5.name == "m5" and sorted(m5.labels) == list(range(2, 9))
    assert m5.url.endswith("/r20240730/model-spinal-rootlets_M5_r20240129-2.zip")
    demo = lookup("demo")
    import RootletSegLogic

    assert demo.url is None
    assert demo.embedded_path == Path(RootletSegLogic.__file__).resolve().parent / "synthetic" / "models" / "demo"


# ------------------------------------------------------------------------------------------------- downloads


def test_download_without_checksum_records_and_reports_sha(server, kit, cache, monkeypatch):
    data = kit["data"]["wrapped"]
    server.routes["/m.zip"] = data
    # the registry's own URL (a mirror would be unverified: test_hardening_trust)
    monkeypatch.setitem(REGISTRY, "rootletseg", dataclasses.replace(REGISTRY["rootletseg"], url=server.url("/m.zip")))
    events = Events()
    model = download_model("multicon", progress=events)
    assert isinstance(model, ModelFolder) and model.folds == [0, 1] and model.trainer_dir.name == TRAINER
    assert model.trainer_dir.parent.parent == cache / "models" / "rootletseg"
    record = json.loads((cache / "models" / "rootletseg" / RECORD_NAME).read_text())
    assert record["sha256"] == sha256_bytes(data) and record["size_bytes"] == len(data)
    assert record["name"] == "rootletseg" and record["release"] == "r20250318" and record["source"] == "registry"
    assert record["url"] == server.url("/m.zip") and record["date"] and record["sha256_verified"] is False
    assert len(events.warnings) == 1
    assert "no published checksum; sha256 of what was downloaded: " + sha256_bytes(data) in events.warnings[0]
    downloads = [e for e in events.events if e.stage == "download"]
    assert downloads[-1].done == downloads[-1].total == len(data)
    assert any(e.stage == "extract" for e in events.events)
    assert model.metadata["weights_sha256"] == sha256_bytes(data) and model.metadata["trusted"] is True
    assert model.metadata["source"] == "registry" and model.metadata["labels"][2] == "C2"
    # nothing left besides the model; a second call uses the installed copy without the network
    assert sorted(p.name for p in (cache / "models").iterdir()) == ["rootletseg"]
    requests = len(server.requests)
    again = resolve_model("r20250318", warn=events.warning)
    assert again.trainer_dir == model.trainer_dir and len(server.requests) == requests
    assert len(events.warnings) == 1  # registry models are trusted: no pickle warning


def test_download_verified_checksum(server, kit, cache):
    data = kit["data"]["flat"]
    server.routes["/m5.zip"] = data
    events = Events()
    model = download_model("m5", url=server.url("/m5.zip"), sha256=sha256_bytes(data).upper(),
                                   progress=events)
    assert model.trainer_dir == cache / "models" / "m5" / TRAINER
    record = json.loads((cache / "models" / "m5" / RECORD_NAME).read_text())
    assert record["sha256_verified"] is True and record["verified"] is False  # a mirror: the user's checksum only
    assert len(events.warnings) == 1 and "not checked against the registry's checksum" in events.warnings[0]


def test_registry_checksum_is_verified(server, kit, cache, monkeypatch):
    spec = REGISTRY["m5"]
    monkeypatch.setitem(REGISTRY, "m5", dataclasses.replace(spec, sha256="0" * 64))
    server.routes["/m5.zip"] = kit["data"]["flat"]
    with pytest.raises(UserError, match="not the expected 0000") as error:
        download_model("m5", url=server.url("/m5.zip"))
    assert_one_sentence(str(error.value))
    assert listing(cache) == []
    with pytest.raises(UserError, match="differs from the published checksum"):
        download_model("m5", url=server.url("/m5.zip"), sha256="1" * 64)


FAILURES = {
    # case: (route, sha256 argument, expected message fragment)
    "checksum mismatch": ("flat", "ab" * 32, "not the expected abab"),
    "truncated zip": ("truncated", None, "is corrupt or truncated"),
    "not a zip": ("html", None, "is corrupt or truncated"),
    "corrupt member": ("crc", None, "is corrupt or truncated (entry "),
    "entry escaping": ("escape", None, "has an entry that escapes its folder ('../evil')"),
    "absolute entry": ("absolute", None, "has an entry with an absolute path ('/tmp/evil_rootletseg')"),
    "symlink entry": ("symlink", None, "holds a symbolic link ('link')"),
    "no folds": ("nofolds", None, "has no fold_* folder: the weights are missing"),
    "two trainers": ("two", None, "holds several trainer folders (nnUNetTrainerDA5__nnUNetPlans__3d_fullres, "
                                  "nnUNetTrainer__nnUNetPlans__3d_fullres): keep exactly one"),
    "http 404": (404, None, "answered HTTP 404"),
    "cut transfer": ("cut", None, "was cut short"),
}


@pytest.mark.parametrize("case", list(FAILURES))
def test_download_failures_leave_cache_untouched(case, server, kit, cache):
    route, sha, fragment = FAILURES[case]
    if route == "cut":
        server.routes["/x.zip"] = ("cut", kit["data"]["flat"])
    elif route != 404:
        server.routes["/x.zip"] = kit["data"][route]
    before = listing(cache)
    with pytest.raises(UserError) as error:
        download_model("rootletseg", url=server.url("/x.zip"), sha256=sha)
    message = str(error.value)
    assert fragment in message
    assert_one_sentence(message)
    assert listing(cache) == before == []
    assert not Path("/tmp/evil_rootletseg").exists()
    assert not (cache.parent / "evil").exists()


def test_connection_refused(cache):
    url = f"http://127.0.0.1:{free_port()}/model.zip"
    with pytest.raises(UserError, match=r"Cannot download model 'm5' from .*refused") as error:
        download_model("m5", url=url)
    assert_one_sentence(str(error.value))
    assert listing(cache) == []


def test_failed_forced_download_keeps_installed_model(server, kit, cache):
    server.routes["/good.zip"] = kit["data"]["wrapped"]
    download_model("m5", url=server.url("/good.zip"))
    before = listing(cache)
    server.routes["/bad.zip"] = kit["data"]["nofolds"]
    with pytest.raises(UserError, match="no fold_"):
        download_model("m5", url=server.url("/bad.zip"), force=True)
    assert listing(cache) == before
    # a forced download of a good zip replaces it in place
    server.routes["/flat.zip"] = kit["data"]["flat"]
    model = download_model("m5", url=server.url("/flat.zip"), force=True)
    assert model.trainer_dir == cache / "models" / "m5" / TRAINER
    assert sorted(p.name for p in (cache / "models").iterdir()) == ["m5"]


def test_cache_home_created_and_removed_again(monkeypatch, tmp_path, server):
    home = tmp_path / "deep" / "home"
    monkeypatch.setenv("ROOTLETSEG_HOME", str(home))
    with pytest.raises(UserError, match="HTTP 404"):
        download_model("m5", url=server.url("/missing.zip"))
    assert not (tmp_path / "deep").exists()


def test_cancel_during_download_leaves_nothing(server, kit, cache):
    """A Ctrl-C (here raised from the progress callback, as the signal handler would) cleans up."""
    server.routes["/m.zip"] = kit["data"]["flat"]

    def interrupt(event):
        if event.stage == "download" and event.done > 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        download_model("m5", url=server.url("/m.zip"), progress=interrupt)
    assert listing(cache) == []


def test_embedded_model_is_never_downloaded():
    with pytest.raises(UserError, match="embedded"):
        download_model("demo")


# ---------------------------------------------------------------------------------------- import / resolve


def test_import_zip_and_folder(kit, cache):
    warnings = []
    model = import_model(kit["zips"]["wrapped"])
    assert model.trainer_dir == cache / "models" / "imported" / "model-wrapped" / "model-spinal-rootlets" / TRAINER
    assert model.metadata["source"] == "local" and model.metadata["trusted"] is False
    assert model.metadata["weights_sha256"] == sha256_bytes(kit["data"]["wrapped"])
    with pytest.raises(UserError, match="already imported"):
        import_model(kit["zips"]["wrapped"])
    folder_model = import_model(kit["good"], name="my model")
    assert folder_model.trainer_dir == cache / "models" / "imported" / "my-model" / TRAINER
    assert folder_model.folds == [0, 1]
    resolved = resolve_model("my-model", warn=warnings.append)
    assert resolved.trainer_dir == folder_model.trainer_dir
    assert resolved.metadata["weights_sha256"] == folder_model.metadata["weights_sha256"]
    assert len(warnings) == 1 and "Python pickles and can run arbitrary code" in warnings[0]
    assert {row["name"] for row in list_models()} >= {"model-wrapped", "my-model"}
    with pytest.raises(UserError, match="registry model name"):
        import_model(kit["good"], name="m5")


def test_import_refuses_bad_zip_cleanly(kit, cache):
    with pytest.raises(UserError, match=r"'escape.zip' has an entry that escapes"):
        import_model(kit["zips"]["escape"])
    with pytest.raises(UserError, match=r"The model folder 'nofolds.zip/w/" + TRAINER + "' has no fold_"):
        import_model(kit["zips"]["nofolds"])
    assert listing(cache) == []


def test_resolve_local_folder_and_zip(kit, cache):
    warnings = []
    model = resolve_model(str(kit["good"]), warn=warnings.append)
    assert model.trainer_dir == kit["good"] / TRAINER and model.metadata["source"] == "local"
    assert len(model.metadata["weights_sha256"]) == 64 and model.metadata["trusted"] is False
    assert listing(cache) == []  # a folder is used in place
    zipped = resolve_model(kit["zips"]["flat"], warn=warnings.append)
    key = sha256_bytes(kit["data"]["flat"])
    assert zipped.trainer_dir == cache / "models" / "local" / key[:16] / TRAINER
    assert zipped.metadata["weights_sha256"] == key
    before = listing(cache)
    again = resolve_model(str(kit["zips"]["flat"]), warn=warnings.append)
    assert again.trainer_dir == zipped.trainer_dir and listing(cache) == before  # extracted once
    assert len(warnings) == 3 and all("arbitrary code" in w for w in warnings)


def test_unknown_name_lists_known_names():
    with pytest.raises(UserError) as error:
        resolve_model("rootletsegg")
    message = str(error.value)
    assert_one_sentence(message)
    assert "Unknown model 'rootletsegg'" in message
    for name in ("rootletseg", "multicon", "m5", "demo"):
        assert name in message
    with pytest.raises(UserError, match="does not exist"):
        resolve_model("./no/such/model.zip")


def test_resolve_without_download_permission(cache):
    with pytest.raises(UserError, match="not installed: run `rootletseg models download m5`"):
        resolve_model("m5", download=False)
    assert listing(cache) == []


def test_installed_copy_with_wrong_published_sha_is_refused(server, kit, monkeypatch):
    server.routes["/m.zip"] = kit["data"]["flat"]
    download_model("m5", url=server.url("/m.zip"))
    monkeypatch.setitem(REGISTRY, "m5", dataclasses.replace(REGISTRY["m5"], sha256="f" * 64))
    with pytest.raises(UserError, match="is not the published release"):
        resolve_model("m5")


def test_demo_resolves_to_embedded_folder():
    spec = REGISTRY["demo"]
    assert spec.embedded_path.is_dir(), "the demo model is part of the repository"
    warnings = []
    model = resolve_model("demo", warn=warnings.append)
    assert spec.embedded_path in model.trainer_dir.parents or model.trainer_dir == spec.embedded_path
    assert model.metadata["source"] == "embedded" and model.metadata["trusted"] is True
    assert sorted(model.metadata["labels"]) == list(range(2, 10)) and len(model.metadata["weights_sha256"]) == 64
    assert warnings == []


def test_embedded_resolution_with_a_stand_in_folder(kit, monkeypatch, cache):
    """The embedded code path, whether or not the real demo model is built yet: a stand-in folder, used in place."""
    monkeypatch.setitem(REGISTRY, "demo", dataclasses.replace(REGISTRY["demo"],
                                                                     embedded_path=kit["good"]))
    model = resolve_model("demo", warn=pytest.fail)
    assert model.trainer_dir == kit["good"] / TRAINER and model.metadata["source"] == "embedded"
    assert model.metadata["weights_sha256"] == weights_sha256(model) and model.metadata["url"] is None
    assert model_info("demo")["folds"] == ["0", "1"] and listing(cache) == []


def test_list_and_info(server, kit):
    rows = {row["name"]: row for row in list_models()}
    assert set(rows) >= {"rootletseg", "m5", "demo"}
    assert rows["rootletseg"]["installed"] is False and rows["rootletseg"]["labels"] == "2..9 (C2-T1)"
    server.routes["/m.zip"] = kit["data"]["flat"]
    download_model("m5", url=server.url("/m.zip"))
    rows = {row["name"]: row for row in list_models()}
    assert rows["m5"]["installed"] is True and rows["m5"]["sha256"] == sha256_bytes(kit["data"]["flat"])
    info = model_info("r20240730")
    assert info["name"] == "m5" and info["folds"] == ["0", "1"] and info["trainer"] == "nnUNetTrainer"
    assert info["record"]["size_bytes"] == len(kit["data"]["flat"])
    with pytest.raises(UserError, match="Unknown model"):
        model_info("nope")

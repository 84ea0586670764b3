"""`rootletseg models ...` as real processes (`python -m RootletSegLogic`), against a real HTTP server on 127.0.0.1.

The processes get every proxy pointed at a closed local port, so an accidental request to the internet is refused
rather than sent. Failures: one sentence on stderr, exit 1, no traceback, the cache unchanged."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from test_models_kit import (
    TRAINER,
    ModelServer,
    free_port,
    listing,
    make_model_dir,
    offline_env,
    sha256_bytes,
    zip_folder,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    root = tmp_path_factory.mktemp("models_cli_kit")
    good = root / "good"
    make_model_dir(good, folds=(0, 1, 2))
    two = root / "two"
    make_model_dir(two)
    make_model_dir(two, trainer="nnUNetTrainerDA5__nnUNetPlans__3d_fullres")
    nofolds = root / "nofolds"
    make_model_dir(nofolds, folds=())
    zips = {
        "wrapped": zip_folder(good, root / "model-spinal-rootlets-test.zip", wrapper="model"),
        "flat": zip_folder(good, root / "flat.zip"),
        "two": zip_folder(two, root / "two.zip"),
        "nofolds": zip_folder(nofolds, root / "nofolds.zip"),
        "escape": zip_folder(good, root / "escape.zip", extra=[("model/../../evil", b"x")]),
        "absolute": zip_folder(good, root / "absolute.zip", extra=[("/tmp/evil_rootletseg_cli", b"x")]),
    }
    data = {key: path.read_bytes() for key, path in zips.items()}
    data["truncated"] = data["flat"][: len(data["flat"]) // 2]
    return {"root": root, "good": good, "zips": zips, "data": data}


@pytest.fixture
def server():
    srv = ModelServer()
    yield srv
    srv.close()


@pytest.fixture
def home():
    return Path(os.environ["ROOTLETSEG_HOME"])  # per-test cache (conftest)


def cli(home: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "RootletSegLogic", "models", *args], cwd=REPO_ROOT, env=offline_env(home),
        capture_output=True, text=True, timeout=timeout,
    )


def json_lines(text: str) -> list:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def assert_clean_error(result: subprocess.CompletedProcess, fragment: str):
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()  # progress bar lines (if any) come before the error
    errors = [line for line in lines if "error" in line]
    assert len(errors) == 1 and lines[-1] == errors[0] and errors[0].startswith("rootletseg: error: "), result.stderr
    assert fragment in errors[0], errors[0]
    assert errors[0].endswith(".")


def test_download_json_progress_record_and_reuse(server, kit, home):
    data = kit["data"]["wrapped"]
    server.routes["/rootlets.zip"] = data
    result = cli(home, "download", "multicon", "--url", server.url("/rootlets.zip"), "--progress", "json")
    assert result.returncode == 0, result.stderr
    events = json_lines(result.stdout)
    downloads = [e for e in events if e["type"] == "progress" and e["stage"] == "download"]
    assert downloads and downloads[-1]["done"] == downloads[-1]["total"] == len(data)
    assert downloads[-1]["fraction"] == 1.0
    warnings = [e["message"] for e in events if e["type"] == "warning"]
    assert len(warnings) == 2  # a mirror (--url) without the registry's checksum is unverified
    assert f"no published checksum; sha256 of what was downloaded: {sha256_bytes(data)}" in warnings[0]
    assert "not checked against the registry's checksum" in warnings[1]
    outputs = [e for e in events if e["type"] == "result"][0]["outputs"]
    assert outputs["model"] == "rootletseg" and outputs["sha256"] == sha256_bytes(data)
    assert outputs["path"] == str(home / "models" / "rootletseg" / "model" / TRAINER)
    record = json.loads((home / "models" / "rootletseg" / "rootletseg_model.json").read_text())
    assert record["sha256"] == sha256_bytes(data) and record["size_bytes"] == len(data)
    assert record["url"] == server.url("/rootlets.zip") and record["release"] == "r20250318"
    assert sorted(p.name for p in (home / "models").iterdir()) == ["rootletseg"]

    requests = len(server.requests)
    again = cli(home, "download", "rootletseg", "--progress", "none")
    assert again.returncode == 0 and "already installed" in again.stderr and len(server.requests) == requests

    info = cli(home, "info", "r20250318")
    assert info.returncode == 0, info.stderr
    assert "folds:" in info.stdout and "0, 1, 2" in info.stdout and sha256_bytes(data) in info.stdout


def test_download_verified_checksum_prints_path(server, kit, home):
    data = kit["data"]["flat"]
    server.routes["/m5.zip"] = data
    result = cli(home, "download", "m5", "--url", server.url("/m5.zip"), "--sha256", sha256_bytes(data),
                 "--progress", "none")
    assert result.returncode == 0, result.stderr
    # the checksum the user gave was checked; the model is still a mirror's, not verified as the registry's release
    assert result.stderr.count("warning") == 1 and "not checked against the registry's checksum" in result.stderr
    assert f"path: {home / 'models' / 'm5' / TRAINER}" in result.stdout
    assert f"sha256: {sha256_bytes(data)}" in result.stdout


CLI_FAILURES = {
    "checksum mismatch": ("flat", ["--sha256", "cd" * 32], "not the expected cdcd"),
    "truncated zip": ("truncated", [], "is corrupt or truncated"),
    "entry escaping": ("escape", [], "has an entry that escapes its folder ('model/../../evil')"),
    "absolute entry": ("absolute", [], "has an entry with an absolute path ('/tmp/evil_rootletseg_cli')"),
    "no folds": ("nofolds", [], "has no fold_* folder: the weights are missing"),
    "two trainers": ("two", [], "holds several trainer folders"),
    "http 404": (404, [], "answered HTTP 404"),
    "bad checksum text": ("flat", ["--sha256", "xyz"], "is not a sha256 checksum"),
}


@pytest.mark.parametrize("case", list(CLI_FAILURES))
def test_download_failures(case, server, kit, home):
    route, extra, fragment = CLI_FAILURES[case]
    if route != 404:
        server.routes["/x.zip"] = kit["data"][route]
    before = listing(home)
    result = cli(home, "download", "rootletseg", "--url", server.url("/x.zip"), "--progress", "none", *extra)
    assert_clean_error(result, fragment)
    assert listing(home) == before == []
    assert not Path("/tmp/evil_rootletseg_cli").exists() and not (home.parent / "evil").exists()


def test_connection_refused(home):
    result = cli(home, "download", "m5", "--url", f"http://127.0.0.1:{free_port()}/m5.zip")
    assert_clean_error(result, "(Connection refused)")
    assert listing(home) == []


def test_default_url_is_used_and_nothing_reaches_the_internet(home):
    """Without --url the registry URL is asked for; the black-holed proxy refuses it (no internet in tests)."""
    result = cli(home, "download", "rootletseg", "--progress", "none")
    assert_clean_error(result, "from https://github.com/ivadomed/model-spinal-rootlets/releases/download/r20250318/"
                               "model-spinal-rootlets-multicon-r20250318.zip (Connection refused)")
    assert listing(home) == []


def test_ctrl_c_during_download_leaves_nothing(server, kit, home):
    server.routes["/slow.zip"] = ("stall", kit["data"]["flat"])
    process = subprocess.Popen(
        [sys.executable, "-m", "RootletSegLogic", "models", "download", "m5", "--url", server.url("/slow.zip"),
         "--progress", "json"],
        cwd=REPO_ROOT, env=offline_env(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        for line in process.stdout:  # wait until part of the file has arrived
            event = json.loads(line)
            if event["type"] == "progress" and event["stage"] == "download" and event["done"] > 0:
                break
        assert any(p.name.startswith(".staging-") for p in (home / "models").iterdir())
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stderr
    assert "cancelled" in stderr and "Traceback" not in stderr
    assert listing(home) == []


def test_import_zip_and_folder_then_list(kit, home):
    result = cli(home, "import", str(kit["zips"]["wrapped"]), "--progress", "none")
    assert result.returncode == 0, result.stderr
    assert "model: model-spinal-rootlets-test" in result.stdout
    assert "can run arbitrary code" in result.stderr
    folder = cli(home, "import", str(kit["good"]), "--name", "mine", "--progress", "json")
    assert folder.returncode == 0, folder.stderr
    outputs = [e for e in json_lines(folder.stdout) if e["type"] == "result"][0]["outputs"]
    assert outputs["path"] == str(home / "models" / "imported" / "mine" / TRAINER)
    again = cli(home, "import", str(kit["good"]), "--name", "mine")
    assert_clean_error(again, "already imported")
    bad = cli(home, "import", str(kit["zips"]["nofolds"]), "--name", "bad")
    assert_clean_error(bad, "The model folder 'nofolds.zip/" + TRAINER + "' has no fold_* folder")
    assert not (home / "models" / "imported" / "bad").exists()

    table = cli(home, "list")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["NAME", "KIND", "RELEASE", "LABELS", "INSTALLED", "URL"]
    rows = {line.split()[0]: line for line in lines[1:] if line.strip() and not line.startswith("cache:")}
    assert "(multicon, r20250318)" in rows["rootletseg"] and "2..9 (C2-T1)" in rows["rootletseg"]
    assert "model-spinal-rootlets-multicon-r20250318.zip" in rows["rootletseg"] and " no " in rows["rootletseg"]
    assert "2..8 (C2-C8)" in rows["m5"]
    # landmark models (cord and discs): the official TotalSpineSeg step 1 and the embedded demo-spine
    assert " landmarks " in rows["totalspineseg"] and "Dataset101_TotalSpineSeg_step1_r20260730.zip" in rows["totalspineseg"]
    assert " landmarks " in rows["demo-spine"] and " rootlets " in rows["demo"]
    column = lines[0].index("INSTALLED")
    demo_state = rows["demo"][column:].split()[0]
    assert demo_state == ("embedded" if (REPO_ROOT / "RootletSegLogic" / "synthetic" / "models" / "demo").is_dir() else "missing")
    assert rows["m5"][column:].split()[0] == "no"
    assert "imported" in rows["mine"] and "imported" in rows["model-spinal-rootlets-test"]
    assert f"cache: {home / 'models'}" in table.stdout

    listed = json.loads(cli(home, "list", "--json").stdout)
    assert {row["name"] for row in listed} == {"rootletseg", "m5", "demo", "mine", "model-spinal-rootlets-test",
                                               "totalspineseg", "demo-spine"}
    assert {row["name"]: row["kind"] for row in listed if row["kind"] == "landmarks"} == {
        "totalspineseg": "landmarks", "demo-spine": "landmarks"}
    info = cli(home, "info", "mine", "--json")
    assert info.returncode == 0 and json.loads(info.stdout)["folds"] == ["0", "1", "2"]


def test_unknown_names(home):
    for action in ("download", "info"):
        result = cli(home, action, "rootlet")
        assert_clean_error(result, "Unknown model 'rootlet': give one of rootletseg (multicon, r20250318), "
                                   "m5 (r20240730), demo")
    assert listing(home) == []


def test_download_demo_is_refused(home):
    assert_clean_error(cli(home, "download", "demo"), "embedded")

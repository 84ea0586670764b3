"""Hardening (issue 8), kinds "aliased outputs", "sets of outputs" and "read-only folders and full disks": real
`rootletseg` processes on real files, with real fault injection (run as root in CI):

- read-only folders: a read-only bind mount (`mount --bind` + `remount,ro`); as root, chmod does not stop writes;
- immutable files and folders: `chattr +i` (ext4 / xfs / btrfs; not tmpfs);
- full disks: a tiny tmpfs (`mount -t tmpfs -o size=...`);
- signals at the commit: SIGTERM sent by the process to itself between two renames of the commit.
Each fixture skips, saying why, only when the capability is truly absent (not root, no mount permission).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hardening_kit import assert_refused, cli, cli_with_sigterm_after, snapshot  # noqa: E402

from RootletSegLogic.errors import UserError  # noqa: E402
from RootletSegLogic.images import atomic  # noqa: E402
from RootletSegLogic.images.atomic import atomic_outputs, check_outputs  # noqa: E402


# ------------------------------------------------------------------------------------------- fault injection
def _run(*command) -> subprocess.CompletedProcess:
    return subprocess.run(list(command), capture_output=True, text=True)


@pytest.fixture
def readonly_dir(tmp_path):
    """A folder on a read-only bind mount, holding `existing.tsv`."""
    source, mount = tmp_path / "ro_source", tmp_path / "ro"
    source.mkdir()
    mount.mkdir()
    (source / "existing.tsv").write_text("old\n")
    done = _run("mount", "--bind", str(source), str(mount))
    if done.returncode != 0:
        pytest.skip(f"cannot bind-mount here (needs root and mount permission): {done.stderr.strip()}")
    done = _run("mount", "-o", "remount,bind,ro", str(mount))
    if done.returncode != 0:
        _run("umount", str(mount))
        pytest.skip(f"cannot remount read-only here: {done.stderr.strip()}")
    yield mount
    _run("umount", str(mount))


def tiny_fs(folder: Path, size: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    done = _run("mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder))
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root and mount permission): {done.stderr.strip()}")
    return folder


@pytest.fixture
def full_dir(tmp_path):
    """A 64 KiB tmpfs filled to the last byte."""
    folder = tiny_fs(tmp_path / "full", "64k")
    try:
        fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError:
            pass  # ENOSPC: full
        finally:
            os.close(fd)
        yield folder
    finally:
        _run("umount", str(folder))


@pytest.fixture
def small_dir(tmp_path):
    """A 160 KiB tmpfs: room for the probe, not for a phantom (about 0.5 MB)."""
    folder = tiny_fs(tmp_path / "small", "160k")
    yield folder
    _run("umount", str(folder))


def make_immutable(path: Path) -> None:
    done = _run("chattr", "+i", str(path))
    if done.returncode != 0:
        pytest.skip(f"cannot set the immutable attribute here (chattr, needs root on ext4/xfs/btrfs): "
                    f"{done.stderr.strip()}")


def clear_immutable(path: Path) -> None:
    _run("chattr", "-i", str(path))


# ------------------------------------------------------------------------------------------- level inputs
@pytest.fixture(scope="module")
def phantom_files(tmp_path_factory) -> Path:
    """A small phantom's files (rootlets, cord, discs), written once for the module."""
    folder = tmp_path_factory.mktemp("phantom")
    result = cli("phantom", "--out", folder, "--shape", "32", "32", "128")
    assert result.returncode == 0, result.stderr
    return folder


@pytest.fixture
def work(tmp_path, phantom_files) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    for name in ("rootlets.nii.gz", "cord.nii.gz", "discs.nii.gz"):
        shutil.copy(phantom_files / name, folder / name)
    return folder


def levels(work: Path, *extra, **kwargs):
    return cli("levels", "--rootlets", work / "rootlets.nii.gz", "--cord", work / "cord.nii.gz",
               "--discs", work / "discs.nii.gz", "--progress", "none", *extra, **kwargs)


# ------------------------------------------------------------------------------------------- aliased outputs
def test_output_symlink_to_an_input_is_refused_even_with_overwrite(work):
    (work / "out.tsv").symlink_to(work / "cord.nii.gz")
    before = snapshot(work)
    assert_refused(levels(work, "-o", work / "out.tsv", "--overwrite"), "same file as the input")
    assert snapshot(work) == before


def test_json_output_hard_linked_to_an_input_is_refused(work):
    os.link(work / "rootlets.nii.gz", work / "plan.json")  # another name, the same inode
    before = snapshot(work)
    assert_refused(levels(work, "-o", work / "t.tsv", "--json", work / "plan.json", "--overwrite"),
                   "same file as the input")
    assert snapshot(work) == before


def test_output_equal_to_cord_option_is_refused(work):
    before = snapshot(work)
    assert_refused(levels(work, "-o", work / "cord.nii.gz", "--overwrite"), "same file as the input")
    assert snapshot(work) == before


def test_output_through_symlinked_folder_is_the_input(work):
    (work.parent / "alias").symlink_to(work)
    before = snapshot(work)
    assert_refused(levels(work, "-o", work.parent / "alias" / "discs.nii.gz", "--overwrite"), "same file")
    assert snapshot(work) == before


def test_dangling_symlink_output_is_not_replaced_without_overwrite(work):
    (work / "out.tsv").symlink_to(work / "nowhere.tsv")
    before = snapshot(work)
    assert_refused(levels(work, "-o", work / "out.tsv"), "already exists", "--overwrite")
    assert snapshot(work) == before and not (work / "nowhere.tsv").exists()


def test_two_outputs_one_file_through_a_link_are_refused(work):
    (work / "b.tsv").symlink_to(work / "a.tsv")  # dangling: a.tsv is an output, not yet written
    before = snapshot(work)
    assert_refused(levels(work, "-o", work / "a.tsv", "--pairings", work / "b.tsv", "--overwrite"), "same file")
    assert snapshot(work) == before


def test_check_outputs_compares_inodes_not_text(tmp_path):
    source = tmp_path / "in.nii.gz"
    source.write_bytes(b"x")
    (tmp_path / "link.nii.gz").symlink_to(source)
    with pytest.raises(UserError, match="same file as the input"):
        check_outputs([tmp_path / "sub" / ".." / "link.nii.gz"], overwrite=True, inputs=[source])
    with pytest.raises(UserError, match="same file"):
        check_outputs([tmp_path / "a.tsv", tmp_path / "." / "a.tsv"])
    assert source.read_bytes() == b"x"


# ------------------------------------------------------------------------------------------- sets of outputs
def _three_outputs(folder: Path):
    targets = [folder / "a.tsv", folder / "b.json", folder / "c.tsv"]
    for index, target in enumerate(targets):
        target.write_text(f"old {index}\n")
    return targets


def test_immutable_target_refused_before_work(tmp_path):
    targets = _three_outputs(tmp_path)
    make_immutable(targets[1])
    try:
        before = snapshot(tmp_path)
        with pytest.raises(UserError, match="immutable"):
            check_outputs(targets, overwrite=True)
        assert snapshot(tmp_path) == before
    finally:
        clear_immutable(targets[1])


def test_commit_failing_on_one_target_restores_every_target(tmp_path):
    """The target becomes immutable after the checks (between check and commit): the commit fails on it and puts
    back the targets it had already moved aside; no temporary or backup remains."""
    targets = _three_outputs(tmp_path)
    before = snapshot(tmp_path)
    with pytest.raises(UserError, match="nothing was changed"):
        with atomic_outputs(targets, overwrite=True) as temporaries:
            for tmp in temporaries:
                Path(tmp).write_text("new\n")
            make_immutable(targets[2])
    try:
        assert snapshot(tmp_path) == before
    finally:
        clear_immutable(targets[2])


def test_error_in_the_middle_of_the_renames_restores(tmp_path, monkeypatch):
    targets = _three_outputs(tmp_path)
    before = snapshot(tmp_path)
    real_rename = os.rename
    calls = []

    def failing_rename(source, target):
        calls.append(target)
        if len(calls) == 5:  # 3 targets moved aside, 1 new file in place, the 2nd fails
            raise OSError(28, "No space left on device", str(target))
        return real_rename(source, target)

    monkeypatch.setattr(atomic.os, "rename", failing_rename)
    with pytest.raises(UserError, match="disk is full"):
        with atomic_outputs(targets, overwrite=True) as temporaries:
            for tmp in temporaries:
                Path(tmp).write_text("new\n")
    monkeypatch.undo()
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("at", [1, 3, 4, 6])  # while moving targets aside / while renaming new files in
def test_sigterm_during_the_commit_leaves_the_old_set(work, at):
    outputs = ["-o", work / "t.tsv", "--json", work / "t.json", "--pairings", work / "p.tsv"]
    assert levels(work, *outputs).returncode == 0
    (work / "t.tsv").write_text("mine\n")  # a user's edit that must survive the cancelled run
    before = snapshot(work)
    args = ["levels", "--rootlets", work / "rootlets.nii.gz", "--cord", work / "cord.nii.gz", "--discs",
            work / "discs.nii.gz", "--progress", "none", *outputs, "--method", "gapless", "--overwrite"]
    result = cli_with_sigterm_after("rename", at, *args)
    assert result.returncode == 128 + signal.SIGTERM, result.stderr
    assert "no output was written" in result.stderr and "Traceback" not in result.stderr
    assert snapshot(work) == before


# ------------------------------------------------------------------------------------------- read-only / full
def test_readonly_folder_refused_before_work(work, readonly_dir):
    before = snapshot(readonly_dir)
    assert_refused(levels(work, "-o", readonly_dir / "t.tsv"), "read-only")
    assert_refused(levels(work, "-o", readonly_dir / "existing.tsv", "--overwrite"), "read-only")
    assert snapshot(readonly_dir) == before


def test_phantom_into_readonly_folder_leaves_no_folder(readonly_dir):
    before = snapshot(readonly_dir)
    assert_refused(cli("phantom", "--out", readonly_dir / "new" / "deeper"), "read-only")
    assert snapshot(readonly_dir) == before


def test_immutable_folder_refused(work, tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    make_immutable(folder)
    try:
        assert_refused(levels(work, "-o", folder / "t.tsv"), "immutable")
        assert list(folder.iterdir()) == []
    finally:
        clear_immutable(folder)


def test_full_disk_refused_before_work(work, full_dir):
    before = snapshot(full_dir)
    assert_refused(levels(work, "-o", full_dir / "t.tsv"), "full")
    assert snapshot(full_dir) == before


def test_phantom_filling_the_disk_leaves_nothing(small_dir):
    """The probe passes (64 KiB) but the images do not fit: the disk fills while the temporaries are written."""
    result = cli("phantom", "--out", small_dir / "new")
    assert_refused(result, "full")
    assert snapshot(small_dir) == {}


# ------------------------------------------------------------------------------------------- every command
def test_segment_refuses_readonly_output_before_inference(phantom_files, readonly_dir):
    result = cli("segment", phantom_files / "image.nii.gz", "--model", "demo", "--device", "cpu", "--threads", "1",
                 "-o", readonly_dir / "r.nii.gz", "--progress", "json")
    assert_refused(result, "read-only")
    events = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert not any(e.get("stage") in ("predict", "load") for e in events)  # refused before the long work


def test_demo_and_models_on_readonly_folders(readonly_dir):
    before = snapshot(readonly_dir)
    # demo may also be refused for another reason first (e.g. its landmark model not built in this checkout):
    # the promise (one sentence, nothing written) holds either way
    assert_refused(cli("demo", "--out", readonly_dir / "demo", "--progress", "none"))
    assert_refused(cli("models", "import", readonly_dir, "--name", "x",
                       env={"ROOTLETSEG_HOME": str(readonly_dir / "home")}), "read-only")
    assert snapshot(readonly_dir) == before


def test_stats_into_full_and_readonly_folders(work, full_dir, readonly_dir):
    assert levels(work, "-o", work / "sub-01_levels.tsv").returncode == 0
    for target in (full_dir / "t.tsv", readonly_dir / "stats"):
        parent = target.parent
        before = snapshot(parent)
        assert_refused(cli("stats", work / "sub-01_levels.tsv", "-o", parent / "stats", "--progress", "none"))
        assert snapshot(parent) == before  # no empty "stats" folder left behind

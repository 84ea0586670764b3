"""The child-process runner the Slicer module uses (RootletSegLogic.child_process), with real child processes.

Desktop Slicer cannot run here. The runner has no Qt in it, so it is tested directly: what Slicer adds is only a
QTimer calling `poll()` and `PythonSlicer` as the interpreter (here: this virtual environment's Python). Children are
real processes: the real `rootletseg` command (python -m RootletSegLogic) where a quick real run exists, and small
scripts that emit the protocol with the project's own `JsonProgress` where a run must be long or unkillable on purpose
(those are protocol / process-tree tests, named so).
"""

from __future__ import annotations

import os
import signal
import sys
import textwrap
import time
from pathlib import Path

import pytest

from RootletSegLogic.slicer.child_command import (
    child_environment,
    package_parent,
    python_executable,
    running_inside_slicer,
    segment_command,
)
from RootletSegLogic.slicer.child_events import describe_event, last_error_line, parse_line
from RootletSegLogic.slicer.child_process import ChildProcess

POSIX = os.name != "nt"


def _script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


def _pid_alive(pid: int) -> bool:
    """A process exists and is not a zombie (a zombie has ended; only its exit status waits to be read)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    status = Path(f"/proc/{pid}/status")
    if status.exists():
        try:
            for line in status.read_text().splitlines():
                if line.startswith("State:"):
                    return "Z" not in line.split()[1]
        except OSError:
            return False
    return True


def _wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            return True
        time.sleep(0.05)
    return not _pid_alive(pid)


def _group_has_live_member(pgid: int) -> bool:
    """Any non-zombie process of the group (read from /proc; POSIX Linux)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, pgrp = fields[0], int(fields[2])
        if pgrp == pgid and state != "Z":
            return True
    return False


# ------------------------------------------------------------------------------------------------ protocol

PROTOCOL_SCRIPT = """
    # protocol test: emits the JSON-lines protocol with the project's own JsonProgress, as `rootletseg` does
    import sys
    from RootletSegLogic.progress import JsonProgress, ProgressEvent
    out = JsonProgress()
    print("a stray line that is not JSON", flush=True)
    for done in range(4):
        out(ProgressEvent("predict", done, 3, f"tile {done}/3"))
    out.warning("the image is not isotropic")
    out.result({"segmentation": sys.argv[1]})
"""


def test_protocol_lines_parse_and_finish(tmp_path):
    """Protocol test: every line becomes an event, in order; the run ends with one "finished" event."""
    script = _script(tmp_path, "protocol.py", PROTOCOL_SCRIPT)
    runner = ChildProcess([python_executable(), str(script), "/x/out.nii.gz"], cwd=tmp_path).start()
    events = runner.wait(timeout=60)
    kinds = [e["type"] for e in events]
    assert kinds == ["log", "progress", "progress", "progress", "progress", "warning", "result", "finished"]
    progress = [e for e in events if e["type"] == "progress"]
    assert [e["fraction"] for e in progress] == [0.0, 0.3333, 0.6667, 1.0]
    assert events[0]["message"] == "a stray line that is not JSON"
    assert runner.returncode == 0 and runner.error is None and not runner.cancelled
    assert runner.result == {"segmentation": "/x/out.nii.gz"}
    assert runner.warnings == ["the image is not isotropic"]
    assert events[-1] == {"type": "finished", "returncode": 0, "cancelled": False, "error": None,
                          "result": {"segmentation": "/x/out.nii.gz"}}
    assert runner.poll() == []  # "finished" is reported once
    assert [describe_event(e)[0] for e in progress] == [0, 33, 67, 100]


def test_describe_event_texts():
    assert describe_event({"type": "progress", "stage": "predict", "done": 1, "total": 4, "message": "tile 1/4"}) == (
        25, "predict: tile 1/4")
    assert describe_event({"type": "progress", "stage": "load", "done": 0, "total": 0}) == (None, "load")
    assert describe_event({"type": "error", "message": "bad"}) == (None, "Error: bad")
    assert describe_event({"type": "finished", "returncode": 0}) == (100, "Done.")
    assert describe_event({"type": "finished", "returncode": 143, "cancelled": True}) == (None, "Cancelled.")
    assert parse_line('{"type": "result", "outputs": {}}\n') == {"type": "result", "outputs": {}}
    assert parse_line("[1, 2]") == {"type": "log", "message": "[1, 2]"}
    assert parse_line('{"no_type": 1}')["type"] == "log"


def test_poll_does_not_block(tmp_path):
    """poll() returns at once while the child is silent (the GUI timer must never wait on the child)."""
    script = _script(tmp_path, "silent.py", "import time\ntime.sleep(30)\n")
    runner = ChildProcess([python_executable(), str(script)], grace_s=1.0).start()
    try:
        calls = [runner.poll() for _ in range(50)]
        assert all(events == [] for events in calls)
        assert runner.running
    finally:
        runner.close()
    assert not runner.running


# ------------------------------------------------------------------------------------------------ real CLI


def test_real_cli_error_path_gives_the_message_and_removes_temporaries(tmp_path):
    """The real `rootletseg segment` on a missing file: exit 1, the one-sentence message, temp folder removed."""
    runner = ChildProcess([], grace_s=2.0)
    work = runner.make_temporary_directory()
    (work / "input.nii.gz").write_bytes(b"")  # something inside, to check the tree goes
    runner.argv = segment_command(tmp_path / "missing.nii.gz", work / "out.nii.gz", "demo",
                                                device="cpu", python=sys.executable)
    runner.start()
    events = runner.wait(timeout=120)
    assert runner.returncode == 1
    assert runner.error == f"The image file '{tmp_path / 'missing.nii.gz'}' does not exist: check the path."
    assert [e for e in events if e["type"] == "error"][0]["exit_code"] == 1
    assert events[-1]["type"] == "finished" and events[-1]["error"] == runner.error
    assert "rootletseg: error:" in runner.stderr_text
    assert not work.exists()


def test_segment_command_is_accepted_by_the_real_parser(tmp_path):
    """The command the module builds parses with the CLI's own parser, for every device the panel offers."""
    from RootletSegLogic.cli.main import build_parser
    from RootletSegLogic.cli.segment import DEVICE_CHOICES
    from RootletSegLogic.slicer.session import Device, cli_device

    parser = build_parser()
    for device in Device:
        for platform in ("linux", "win32", "darwin"):
            value = cli_device(device, platform)
            assert value in DEVICE_CHOICES
            command = segment_command(tmp_path / "in.nii.gz", tmp_path / "out.nii.gz", "rootletseg",
                                                    device=value, tta=True, python="py")
            assert command[:3] == ["py", "-m", "RootletSegLogic"]
            args = parser.parse_args(command[3:])
            assert (args.command, args.device, args.tta, args.progress, args.overwrite) == (
                "segment", value, True, "json", True)
            assert args.output == str(tmp_path / "out.nii.gz") and args.model == "rootletseg"


def test_last_error_line_prefers_the_rootletseg_sentence():
    text = "Traceback...\nrootletseg: error: The model is broken: reinstall it.\nsome noise\n"
    assert last_error_line(text) == "The model is broken: reinstall it."
    assert last_error_line("one\ntwo\n\n") == "two"
    assert last_error_line("") == ""


def test_crash_without_protocol_error_reports_stderr(tmp_path):
    """A child dying without an "error" event (e.g. a crash) still gives a message: its last stderr line."""
    script = _script(tmp_path, "crash.py", "import sys\nsys.stderr.write('Segmentation fault in worker\\n')\nsys.exit(3)\n")
    runner = ChildProcess([python_executable(), str(script)])
    work = runner.make_temporary_directory()
    runner.start()
    events = runner.wait(timeout=60)
    assert runner.returncode == 3 and runner.error == "Segmentation fault in worker"
    assert events[-1]["error"] == "Segmentation fault in worker"
    assert not work.exists()


def test_success_keeps_temporaries_until_close(tmp_path):
    """After success the caller still reads the outputs from the temporary folder; close() then removes it."""
    script = _script(tmp_path, "protocol.py", PROTOCOL_SCRIPT)
    with ChildProcess([python_executable(), str(script), "out"]) as runner:
        work = runner.make_temporary_directory()
        (work / "out.nii.gz").write_bytes(b"x")
        runner.start()
        runner.wait(timeout=60)
        assert runner.returncode == 0 and (work / "out.nii.gz").exists()
    assert not work.exists()


def test_start_failure_removes_temporaries(tmp_path):
    runner = ChildProcess([str(tmp_path / "no-such-python")])
    work = runner.make_temporary_directory()
    with pytest.raises(RuntimeError, match="Could not start"):
        runner.start()
    assert not work.exists()


# ------------------------------------------------------------------------------------------------ cancel

TREE_SCRIPT = """
    # process-tree test: a child that starts a worker (as nnU-Net may) and then works until it is stopped
    import os, subprocess, sys, time
    from RootletSegLogic.progress import JsonProgress, ProgressEvent
    ignore_term = sys.argv[1] == "ignore-term"
    if ignore_term:
        import signal
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    worker = subprocess.Popen([sys.executable, "-c",
        "import signal, time\\n" + ("signal.signal(signal.SIGTERM, signal.SIG_IGN)\\n" if ignore_term else "") +
        "time.sleep(600)"])
    out = JsonProgress()
    out(ProgressEvent("start", 0, 1, f"pid {os.getpid()} worker {worker.pid}"))
    step = 0
    while True:
        step += 1
        out(ProgressEvent("predict", step % 100, 100, "working"))
        time.sleep(0.05)
"""


def _start_tree(tmp_path, mode: str, grace_s: float):
    script = _script(tmp_path, "tree.py", TREE_SCRIPT)
    runner = ChildProcess([python_executable(), str(script), mode], grace_s=grace_s)
    work = runner.make_temporary_directory()
    (work / "image.nii.gz").write_bytes(b"x" * 100)
    runner.start()
    first = None
    deadline = time.monotonic() + 60
    while first is None and time.monotonic() < deadline:
        for event in runner.poll():
            if event.get("stage") == "start":
                first = event
        time.sleep(0.02)
    assert first is not None, runner.stderr_text
    _, pid, _, worker = first["message"].split()
    return runner, work, int(pid), int(worker)


@pytest.mark.skipif(not POSIX, reason="process groups and /proc are POSIX/Linux")
@pytest.mark.parametrize("mode, grace_s", [("polite", 5.0), ("ignore-term", 0.5)])
def test_cancel_ends_the_whole_tree_and_removes_temporaries(tmp_path, mode, grace_s):
    """Process-tree test: cancel ends the child and its worker (SIGTERM; SIGKILL when SIGTERM is ignored), leaves no
    member of the process group and no temporary file, and the next poll reports a cancelled finish."""
    runner, work, pid, worker = _start_tree(tmp_path, mode, grace_s)
    assert runner.pid == pid and os.getpgid(pid) == pid  # own process group
    assert os.getpgid(worker) == pid
    runner.cancel()
    assert _wait_gone(pid) and _wait_gone(worker)
    assert not _group_has_live_member(pid)
    assert not work.exists()
    events = runner.wait(timeout=10)
    finished = events[-1]
    assert finished["type"] == "finished" and finished["cancelled"] is True and finished["error"] == "cancelled"
    expected = -signal.SIGTERM if mode == "polite" else -signal.SIGKILL
    assert runner.returncode == expected
    runner.cancel()  # a second cancel is harmless
    runner.close()


@pytest.mark.skipif(not POSIX, reason="process groups are POSIX")
def test_cancel_after_leader_exit_still_ends_workers(tmp_path):
    """Process-tree test: the child exited but left a worker holding its output pipes: the run is still reported
    finished (after a short drain), and the stray worker is ended with the rest of the group."""
    script = _script(tmp_path, "orphan.py", """
        import subprocess, sys
        from RootletSegLogic.progress import JsonProgress, ProgressEvent
        worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        JsonProgress()(ProgressEvent("start", 0, 1, f"worker {worker.pid}"))
    """)
    runner = ChildProcess([python_executable(), str(script)], grace_s=1.0).start()
    events = runner.wait(timeout=60)
    worker = int(events[0]["message"].split()[1])
    assert events[-1]["type"] == "finished" and events[-1]["returncode"] == 0
    assert _wait_gone(worker)
    assert not _group_has_live_member(runner.pid)


def test_leftover_temporaries_are_removed_at_exit(tmp_path):
    """Anything registered and never closed is removed when the interpreter exits (atexit)."""
    script = _script(tmp_path, "leftover.py", """
        from RootletSegLogic.slicer.child_process import ChildProcess
        runner = ChildProcess(["unused"])
        folder = runner.make_temporary_directory()
        (folder / "f.txt").write_text("x")
        print(folder)
    """)
    import subprocess

    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True,
                         env=child_environment())
    folder = Path(out.stdout.strip())
    assert folder.name.startswith("rootletseg_") and not folder.exists()


# ------------------------------------------------------------------------------------------------ interpreter


def test_python_executable_in_plain_python_and_in_slicer(tmp_path, monkeypatch):
    assert python_executable(inside_slicer=False) == sys.executable
    launcher = tmp_path / ("PythonSlicer.exe" if os.name == "nt" else "PythonSlicer")
    launcher.write_text("#!/bin/sh\n")
    launcher.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert python_executable(inside_slicer=True) == str(launcher)
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setattr(sys, "executable", str(empty / "SlicerApp-real"))
    with pytest.raises(RuntimeError, match="PythonSlicer"):
        python_executable(inside_slicer=True)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "SlicerApp-real"))
    assert python_executable(inside_slicer=True) == str(launcher)  # beside the application
    assert running_inside_slicer()  # sys.executable is not a python


def test_child_environment_makes_the_package_importable(tmp_path):
    env = child_environment({"PATH": os.environ.get("PATH", ""), "PYTHONPATH": "/somewhere"})
    parts = env["PYTHONPATH"].split(os.pathsep)
    assert parts[0] == str(package_parent()) and "/somewhere" in parts
    assert env["PYTHONUNBUFFERED"] == "1"
    assert (package_parent() / "RootletSegLogic" / "__init__.py").is_file()


@pytest.mark.skipif(not POSIX, reason="process groups and /proc are POSIX/Linux")
def test_request_cancel_returns_at_once_and_poll_reports_the_cancel(tmp_path):
    """The panel's Cancel: with a child that ignores SIGTERM (grace 2 s), request_cancel returns immediately (the GUI
    keeps running), and polling later reports the cancelled finish with the tree ended and temporaries removed."""
    runner, work, pid, worker = _start_tree(tmp_path, "ignore-term", 2.0)
    started = time.monotonic()
    runner.request_cancel()
    runner.request_cancel()  # a second click while cancelling does nothing
    assert time.monotonic() - started < 0.5
    assert runner.cancelled
    events = runner.wait(timeout=30)
    assert events[-1]["type"] == "finished" and events[-1]["cancelled"] is True
    assert _wait_gone(pid) and _wait_gone(worker)
    deadline = time.monotonic() + 10
    while work.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not work.exists()
    runner.close()


def test_stderr_lines_are_handed_out_once_for_a_live_log(tmp_path):
    script = _script(tmp_path, "talk.py", """
        import sys
        for n in range(5):
            print(f"line {n}", file=sys.stderr, flush=True)
    """)
    runner = ChildProcess([python_executable(), str(script)]).start()
    runner.wait(timeout=60)
    assert runner.take_stderr_lines() == [f"line {n}" for n in range(5)]
    assert runner.take_stderr_lines() == []
    runner.close()

"""Ending a child process and everything it started (process groups; Windows CTRL_BREAK)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import Optional

DEFAULT_GRACE_S = 5.0  # seconds between the polite stop and the kill


def process_group_alive(pgid: int) -> bool:
    """POSIX: whether any process of group `pgid` still exists (zombies included)."""
    if os.name == "nt":
        raise NotImplementedError("process groups are a POSIX notion here")
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def terminate_process_tree(process: subprocess.Popen, grace_s: float = DEFAULT_GRACE_S) -> Optional[int]:
    """End a child started by ChildProcess (own group) and all its descendants; returns its exit code.

    Polite first (SIGTERM / CTRL_BREAK), forceful after `grace_s` (SIGKILL / taskkill /T /F).
    """
    if os.name == "nt":
        return _terminate_windows(process, grace_s)
    pgid = process.pid  # start_new_session: the child leads its own group
    _signal_group(pgid, signal.SIGTERM)
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        pass
    # The leader may have exited while workers it started still run: the group is ended either way.
    deadline = time.monotonic() + grace_s
    while process_group_alive(pgid) and time.monotonic() < deadline and process.poll() is not None:
        time.sleep(0.05)
    _signal_group(pgid, signal.SIGKILL)
    try:
        process.wait(timeout=10.0)
    except subprocess.TimeoutExpired:
        pass
    return process.returncode


def end_strays(process: subprocess.Popen) -> None:
    """After the child itself exited: end whatever it left running in its process group (POSIX).

    On Windows the children of an exited process cannot be found by its PID (taskkill /T needs the parent alive);
    they are left to end on their own there.
    """
    if os.name != "nt":
        _signal_group(process.pid, signal.SIGKILL)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _terminate_windows(process: subprocess.Popen, grace_s: float) -> Optional[int]:  # pragma: no cover - Windows
    if process.poll() is None:
        try:
            process.send_signal(signal.CTRL_BREAK_EVENT)
        except (OSError, ValueError):
            pass
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass
    # taskkill /T also ends the children, which CTRL_BREAK may have left running
    subprocess.run(
        ["taskkill", "/T", "/F", "/PID", str(process.pid)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0),
    )
    try:
        process.wait(timeout=10.0)
    except subprocess.TimeoutExpired:
        process.kill()
    return process.returncode

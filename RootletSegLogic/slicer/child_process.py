"""Run a `rootletseg` command as a child process without blocking a GUI: JSON-lines progress, cancel, clean-up.

The Slicer module uses this to run `python -m RootletSegLogic segment ... --progress json` with Slicer's own Python
interpreter (PythonSlicer), so that nnU-Net inference never blocks the GUI thread and can be cancelled. Nothing here
imports Qt or Slicer: a GUI calls `ChildProcess.poll()` from a timer and gets parsed protocol events
(see `RootletSegLogic.progress` for the protocol); tests call `wait()`.

Process tree: the child starts in its own session / process group (POSIX) or its own process group (Windows), so
`cancel()` ends the child *and everything it started* (nnU-Net may start worker processes):
POSIX: SIGTERM to the group (the CLI stops cleanly and writes nothing half-done), SIGKILL to the group after a grace
period; Windows: CTRL_BREAK_EVENT to the group, then `taskkill /T /F` after the grace period.

Temporary files: paths registered with `add_temporary_path` (or created by `make_temporary_directory`) are removed
when the run fails or is cancelled, and by `close()` after a successful run (the caller first reads the outputs);
anything left is removed at interpreter exit.

The command line, interpreter and environment are `slicer/child_command.py`; reading the output as events is
`slicer/child_events.py`.
"""

from __future__ import annotations

import atexit
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence

from RootletSegLogic.slicer.child_command import child_environment
from RootletSegLogic.slicer.child_events import last_error_line, parse_line
from RootletSegLogic.slicer.process_tree import (
    DEFAULT_GRACE_S,
    end_strays,
    terminate_process_tree,
)

READER_DRAIN_S = 1.0  # after the child exits, how long workers it left may keep its output pipes open
STDERR_KEEP_LINES = 400

# ------------------------------------------------------------------------------------------------ temp files

_LEFTOVERS: set = set()
_LEFTOVERS_LOCK = threading.Lock()


def remove_path(path: os.PathLike | str) -> bool:
    """Remove a file or a folder tree; True when nothing is left at `path`."""
    p = Path(path)
    try:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        elif p.exists() or p.is_symlink():
            p.unlink()
    except OSError:
        pass
    return not (p.exists() or p.is_symlink())


@atexit.register
def _remove_leftovers() -> None:
    with _LEFTOVERS_LOCK:
        paths = list(_LEFTOVERS)
        _LEFTOVERS.clear()
    for path in paths:
        remove_path(path)


# ------------------------------------------------------------------------------------------------ runner


class ChildProcess:
    """One child process: start it, poll its JSON-lines events, cancel its whole process tree, clean up.

    Thread-safe for one GUI thread calling start/poll/cancel/close. States: not started -> running -> finished.
    After the run: `returncode`, `result` (the outputs dict of the "result" event), `error` (one message, or None),
    `warnings`, `cancelled`, `stderr_text`.
    """

    def __init__(
        self,
        argv: Sequence[str],
        env: Optional[Dict[str, str]] = None,
        cwd: Optional[os.PathLike | str] = None,
        temporary_paths: Iterable[os.PathLike | str] = (),
        grace_s: float = DEFAULT_GRACE_S,
    ):
        self.argv = [str(a) for a in argv]
        self.env = child_environment() if env is None else env
        self.cwd = None if cwd is None else str(cwd)
        self.grace_s = float(grace_s)
        self._temporary: List[Path] = []
        for path in temporary_paths:
            self.add_temporary_path(path)
        self._process: Optional[subprocess.Popen] = None
        self._events: "queue.Queue[dict]" = queue.Queue()
        self._stderr_lines: List[str] = []
        self._stderr_total = 0  # lines read so far (the list keeps the last STDERR_KEEP_LINES)
        self._stderr_taken = 0
        self._stderr_lock = threading.Lock()
        self._cancel_thread: Optional[threading.Thread] = None
        self._threads: List[threading.Thread] = []
        self._finished_reported = False
        self._exit_seen: Optional[float] = None
        self.returncode: Optional[int] = None
        self.result: Optional[dict] = None
        self.error: Optional[str] = None
        self.warnings: List[str] = []
        self.cancelled = False
        self.output_path: Optional[Path] = None  # what the caller expects the command to write (informative)

    # ---- temporary files
    def add_temporary_path(self, path: os.PathLike | str) -> Path:
        """Register a file or folder to remove when the run fails, is cancelled, or is closed."""
        p = Path(path)
        self._temporary.append(p)
        with _LEFTOVERS_LOCK:
            _LEFTOVERS.add(str(p))
        return p

    def make_temporary_directory(self, prefix: str = "rootletseg_") -> Path:
        """A new private temporary folder, registered for removal."""
        return self.add_temporary_path(tempfile.mkdtemp(prefix=prefix))

    @property
    def temporary_paths(self) -> List[Path]:
        return list(self._temporary)

    def remove_temporary_paths(self) -> bool:
        """Remove every registered temporary path; True when none is left."""
        all_gone = True
        for p in self._temporary:
            gone = remove_path(p)
            all_gone = all_gone and gone
            if gone:
                with _LEFTOVERS_LOCK:
                    _LEFTOVERS.discard(str(p))
        return all_gone

    # ---- life cycle
    @property
    def pid(self) -> Optional[int]:
        return None if self._process is None else self._process.pid

    @property
    def started(self) -> bool:
        return self._process is not None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> "ChildProcess":
        if self._process is not None:
            raise RuntimeError("this child process was already started")
        kwargs = dict(
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.env,
            cwd=self.cwd,
            bufsize=1,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        if os.name == "nt":
            flags = subprocess.CREATE_NEW_PROCESS_GROUP | getattr(subprocess, "CREATE_NO_WINDOW", 0)
            kwargs["creationflags"] = flags
        else:
            kwargs["start_new_session"] = True  # own session and process group: pgid == pid
        try:
            self._process = subprocess.Popen(self.argv, **kwargs)
        except OSError as error:
            self.remove_temporary_paths()
            raise RuntimeError(f"Could not start {self.argv[0]}: {error}") from error
        for target, stream in ((self._read_stdout, self._process.stdout), (self._read_stderr, self._process.stderr)):
            thread = threading.Thread(target=target, args=(stream,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _read_stdout(self, stream) -> None:
        try:
            for line in stream:
                if line.strip():
                    self._events.put(parse_line(line))
        except (OSError, ValueError):
            pass

    def _read_stderr(self, stream) -> None:
        try:
            for line in stream:
                with self._stderr_lock:
                    self._stderr_lines.append(line.rstrip("\r\n"))
                    self._stderr_total += 1
                    if len(self._stderr_lines) > STDERR_KEEP_LINES:
                        del self._stderr_lines[: len(self._stderr_lines) - STDERR_KEEP_LINES]
        except (OSError, ValueError):
            pass

    @property
    def stderr_text(self) -> str:
        with self._stderr_lock:
            return "\n".join(self._stderr_lines)

    def take_stderr_lines(self) -> List[str]:
        """stderr lines read since the last call (for a live log; lines beyond the kept window are skipped)."""
        with self._stderr_lock:
            new = min(self._stderr_total - self._stderr_taken, len(self._stderr_lines))
            self._stderr_taken = self._stderr_total
            return self._stderr_lines[len(self._stderr_lines) - new:] if new else []

    def _record(self, event: dict) -> None:
        kind = event.get("type")
        if kind == "result" and isinstance(event.get("outputs"), dict):
            self.result = event["outputs"]
        elif kind == "error":
            self.error = str(event.get("message", "")) or self.error
        elif kind == "warning":
            self.warnings.append(str(event.get("message", "")))

    def poll(self) -> List[dict]:
        """Events received since the last call, in order, without blocking.

        When the child has exited and its output is read to the end, the last event is
        {"type": "finished", "returncode", "cancelled", "error", "result"}, reported once.
        """
        events = self._drain_queue()
        if self._process is not None and not self._finished_reported and self._process.poll() is not None:
            if self._exit_seen is None:
                self._exit_seen = time.monotonic()
            readers_done = all(not t.is_alive() for t in self._threads)
            if not readers_done and time.monotonic() - self._exit_seen > READER_DRAIN_S:
                # The child exited but processes it started still hold its output pipes: they are strays of a
                # finished run, so they are ended (POSIX: the whole group) and the run is reported finished.
                end_strays(self._process)
                for thread in self._threads:
                    thread.join(timeout=1.0)
                readers_done = True
            if readers_done:
                # the readers are done: anything they queued in between is still to deliver
                events.extend(self._drain_queue())
                events.append(self._finish())
        return events

    def _drain_queue(self) -> List[dict]:
        """Every event queued by the reader threads so far, recorded, in order."""
        events: List[dict] = []
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                return events
            self._record(event)
            events.append(event)

    def _finish(self) -> dict:
        self._finished_reported = True
        self.returncode = self._process.returncode
        if self.returncode != 0 and not self.cancelled and not self.error:
            self.error = last_error_line(self.stderr_text) or f"the command failed with exit code {self.returncode}"
        if self.cancelled:
            self.error = "cancelled"
        if self.returncode != 0 or self.cancelled:
            self.remove_temporary_paths()
        return {
            "type": "finished",
            "returncode": self.returncode,
            "cancelled": self.cancelled,
            "error": self.error if (self.returncode != 0 or self.cancelled) else None,
            "result": self.result,
        }

    def wait(self, timeout: Optional[float] = None) -> List[dict]:
        """Block until the child finishes (for tests and batch use); returns every event not yet polled."""
        if self._process is None:
            raise RuntimeError("the child process was not started")
        deadline = None if timeout is None else time.monotonic() + timeout
        events: List[dict] = []
        while True:
            events += self.poll()
            if self._finished_reported:
                return events
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"the child process {self.pid} did not finish within {timeout} s")
            time.sleep(0.02)

    def cancel(self, grace_s: Optional[float] = None) -> None:
        """End the child and every process it started; then remove the temporary paths.

        Blocks at most about `grace_s` (+ a short wait for SIGKILL). Safe to call at any time, also twice.
        """
        grace = self.grace_s if grace_s is None else float(grace_s)
        process = self._process
        if process is None:
            self.cancelled = True
            self.remove_temporary_paths()
            return
        if process.poll() is None:
            self.cancelled = True
        terminate_process_tree(process, grace)
        for thread in self._threads:
            thread.join(timeout=2.0)
        self.remove_temporary_paths()  # the next poll() reports {"type": "finished", "cancelled": True}

    def request_cancel(self, grace_s: Optional[float] = None) -> None:
        """Start cancelling and return at once (a GUI must not wait for the grace period and the reader threads):
        `cancel` runs in a background thread, and `poll()` reports {"type": "finished", "cancelled": True} when the
        process tree has ended. Calling it again while a cancel is under way does nothing."""
        if self._cancel_thread is not None and self._cancel_thread.is_alive():
            return
        if self._process is not None and self._process.poll() is None:
            self.cancelled = True
        self._cancel_thread = threading.Thread(target=self.cancel, args=(grace_s,), daemon=True)
        self._cancel_thread.start()

    def close(self) -> None:
        """Finish with this run: end the child if still running and remove the temporary paths."""
        if self.running:
            self.cancel()
        else:
            if self._process is not None:
                for stream in (self._process.stdout, self._process.stderr):
                    try:
                        if stream is not None and all(not t.is_alive() for t in self._threads):
                            stream.close()
                    except OSError:
                        pass
            self.remove_temporary_paths()

    def __enter__(self) -> "ChildProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

"""Progress reporting shared by the core (callbacks) and the faces (terminal bar, JSON lines for Slicer).

The core only ever calls a `ProgressCallback` with `ProgressEvent`s; it never prints progress itself.
The JSON-lines protocol (one object per line on stdout, `--progress json`) is what the Slicer module reads:

    {"type": "progress", "stage": "predict", "done": 3, "total": 12, "fraction": 0.25, "message": "tile 3/12"}
    {"type": "warning", "message": "..."}
    {"type": "result", "outputs": {"segmentation": "/abs/path.nii.gz", ...}}
    {"type": "error", "message": "...", "exit_code": 2}

`fraction` is the overall fraction of the whole command in [0, 1] when known, else of the stage.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from typing import IO, Callable, Optional

PROGRESS_MODES = ("bar", "json", "none")


@dataclass
class ProgressEvent:
    stage: str
    done: int
    total: int
    message: str = ""

    @property
    def fraction(self) -> float:
        return 0.0 if self.total <= 0 else min(1.0, self.done / self.total)


ProgressCallback = Callable[[ProgressEvent], None]


def no_progress(_event: ProgressEvent) -> None:
    """A ProgressCallback that ignores everything."""


def emit_json_line(obj: dict, stream: Optional[IO[str]] = None) -> None:
    """Write one JSON object as one line and flush, so a reading process sees it at once."""
    stream = stream or sys.stdout
    stream.write(json.dumps(obj, separators=(",", ":")) + "\n")
    stream.flush()


class JsonProgress:
    """ProgressCallback writing the JSON-lines protocol above."""

    def __init__(self, stream: Optional[IO[str]] = None):
        self.stream = stream

    def __call__(self, event: ProgressEvent) -> None:
        emit_json_line(
            {
                "type": "progress",
                "stage": event.stage,
                "done": event.done,
                "total": event.total,
                "fraction": round(event.fraction, 4),
                "message": event.message,
            },
            self.stream,
        )

    def warning(self, message: str) -> None:
        emit_json_line({"type": "warning", "message": message}, self.stream)

    def result(self, outputs: dict) -> None:
        emit_json_line({"type": "result", "outputs": outputs}, self.stream)

    def error(self, message: str, exit_code: int) -> None:
        emit_json_line({"type": "error", "message": message, "exit_code": exit_code}, self.stream)


class BarProgress:
    """ProgressCallback drawing a one-line text bar on stderr (redrawn in place on a terminal)."""

    width = 30

    def __init__(self, stream: Optional[IO[str]] = None):
        self.stream = stream or sys.stderr
        self._stage = None
        self._start = time.monotonic()
        self._last_draw = 0.0
        self._is_tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def __call__(self, event: ProgressEvent) -> None:
        now = time.monotonic()
        finished = event.total > 0 and event.done >= event.total
        new_stage = event.stage != self._stage
        if new_stage and self._stage is not None and self._is_tty:
            self.stream.write("\n")
        if new_stage:
            self._stage = event.stage
            self._start = now
        if not self._is_tty and not (new_stage or finished):
            return  # a log file gets the start and the end of each stage, not every redraw
        if self._is_tty and not (new_stage or finished) and now - self._last_draw < 0.1:
            return
        self._last_draw = now
        filled = int(round(self.width * event.fraction))
        bar = "#" * filled + "-" * (self.width - filled)
        counts = f"{event.done}/{event.total}" if event.total > 0 else ""
        line = f"{event.stage:<10} [{bar}] {counts} {now - self._start:5.1f}s {event.message}".rstrip()
        self.stream.write(("\r" + line) if self._is_tty else (line + "\n"))
        if self._is_tty and finished:
            self.stream.write("\n")
            self._stage = None
        self.stream.flush()

    def warning(self, message: str) -> None:
        self.stream.write(f"warning: {message}\n")
        self.stream.flush()

    def result(self, outputs: dict) -> None:
        for name, path in outputs.items():
            sys.stdout.write(f"{name}: {path}\n")
        sys.stdout.flush()

    def error(self, message: str, exit_code: int) -> None:
        pass  # the CLI prints errors itself


class QuietProgress(BarProgress):
    """`--progress none`: no progress, but warnings and results are still printed."""

    def __call__(self, event: ProgressEvent) -> None:
        pass


def make_reporter(mode: str):
    """Reporter for a CLI `--progress` mode: 'bar' (stderr), 'json' (stdout JSON lines) or 'none'."""
    if mode == "json":
        return JsonProgress()
    if mode == "bar":
        return BarProgress()
    if mode == "none":
        return QuietProgress()
    raise ValueError(f"unknown progress mode {mode!r}")

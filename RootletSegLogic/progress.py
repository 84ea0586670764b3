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

from tqdm import tqdm

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


# Stage name, percentage, bar, counts, elapsed time and the event's message; rates and ETAs are left out because
# stages (tiles, folds) take uneven times, so tqdm's estimates would mislead.
_BAR_FORMAT = "{desc:<10} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"
_COUNT_FORMAT = "{desc:<10} [{elapsed}{postfix}]"  # a stage of unknown length (total 0): no bar to fill
_LOG_WIDTH = 80  # characters per line in a log file, where there is no terminal width to follow


class BarProgress:
    """ProgressCallback drawing a tqdm bar per stage on stderr (redrawn in place on a terminal).

    On a stream that is not a terminal (a log file, a pipe) each stage gets one line when it starts and one when
    it ends, not a line per redraw. Warnings go to the same stream; results go to stdout, one "name: path" a line.
    """

    def __init__(self, stream: Optional[IO[str]] = None):
        self.stream = stream or sys.stderr
        self._stage = None
        self._start = time.monotonic()
        self._bar: Optional[tqdm] = None  # the live bar of the current stage (terminal only)
        self._is_tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def __call__(self, event: ProgressEvent) -> None:
        now = time.monotonic()
        finished = event.total > 0 and event.done >= event.total
        new_stage = event.stage != self._stage
        if new_stage:
            self._close_bar()  # a stage left unfinished keeps its last line; the next stage starts below it
            self._stage = event.stage
            self._start = now
        if not self._is_tty:
            if new_stage or finished:  # a log file gets the start and the end of each stage, not every redraw
                self.stream.write(_format_line(event, now - self._start) + "\n")
                self.stream.flush()
            return
        total = event.total if event.total > 0 else None
        if self._bar is None:
            self._bar = tqdm(total=total, initial=event.done, desc=event.stage, postfix=event.message or None,
                             file=self.stream, leave=True, mininterval=0.1,
                             bar_format=_BAR_FORMAT if total else _COUNT_FORMAT)
        elif self._bar.total != total:  # a stage may learn its length late
            self._bar.total = total
            self._bar.bar_format = _BAR_FORMAT if total else _COUNT_FORMAT
        self._bar.set_postfix_str(event.message, refresh=False)
        self._bar.update(event.done - self._bar.n)  # tqdm redraws at most every 0.1 s
        if finished:
            self._close_bar()  # draws the final state and ends the line
            self._stage = None

    def _close_bar(self, leave: bool = True) -> None:
        if self._bar is not None:
            self._bar.leave = leave
            self._bar.close()
            self._bar = None

    def warning(self, message: str) -> None:
        # tqdm.write lifts a live bar off the line, prints, and redraws the bar below
        tqdm.write(f"warning: {message}", file=self.stream)
        self.stream.flush()

    def result(self, outputs: dict) -> None:
        for name, path in outputs.items():
            sys.stdout.write(f"{name}: {path}\n")
        sys.stdout.flush()

    def error(self, message: str, exit_code: int) -> None:
        # The CLI has printed the error itself; the bar is dropped without a redraw so it cannot reappear below
        # the message when tqdm tidies up at exit.
        self._close_bar(leave=False)


def _format_line(event: ProgressEvent, elapsed_s: float) -> str:
    """One plain-text bar line (ASCII, `_LOG_WIDTH` wide) for a log file."""
    total = event.total if event.total > 0 else None
    return tqdm.format_meter(event.done, total, elapsed_s, ncols=_LOG_WIDTH, prefix=event.stage, ascii=True,
                             postfix=event.message or None, bar_format=_BAR_FORMAT if total else _COUNT_FORMAT)


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

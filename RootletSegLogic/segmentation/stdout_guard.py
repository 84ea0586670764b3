"""Third-party prints go to stderr while nnU-Net runs, so that stdout carries only RootletSeg's JSON progress lines.

`prints_to_stderr()` redirects `print` (whole lines, minus nnU-Net's known noise) and yields the real stdout;
`with_real_stdout(progress, stdout)` wraps a progress callback so its JSON lines still reach the real stdout.
"""

from __future__ import annotations

import contextlib
import sys

from RootletSegLogic.progress import ProgressCallback, ProgressEvent

# Lines nnU-Net prints that say nothing to a RootletSeg user (we never ask for on-device results off CUDA).
_NOISE = ("perform_everything_on_device=True is only supported for cuda devices",)


class ToStderr:
    """A text stream forwarding whole lines to stderr, minus nnU-Net's known noise."""

    def __init__(self, stream):
        self.stream = stream
        self.pending = ""

    def write(self, text: str) -> int:
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            if not line.startswith(_NOISE):
                self.stream.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        if self.pending and not self.pending.startswith(_NOISE):
            self.stream.write(self.pending)
        self.pending = ""
        self.stream.flush()


@contextlib.contextmanager
def prints_to_stderr():
    """Send every print of third-party code to stderr while inside (stdout carries only our JSON lines);
    yields the real stdout."""
    real_stdout = sys.stdout
    forward = ToStderr(sys.stderr)
    try:
        with contextlib.redirect_stdout(forward):
            yield real_stdout
    finally:
        forward.flush()


def with_real_stdout(progress: ProgressCallback, real_stdout) -> ProgressCallback:
    """A callback that runs `progress` with the real stdout (JSON progress lines must still reach it)."""

    def emit(event: ProgressEvent) -> None:
        with contextlib.redirect_stdout(real_stdout):
            progress(event)

    return emit

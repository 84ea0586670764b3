"""`rootletseg` command line: one sub-command per module `cli/<name>.py`, all calling the same core.

Each sub-command module defines `register(subparsers)`, which adds its parser and sets `run(args, reporter) -> int`
as the parser's `func`. Heavy imports (torch, nnU-Net) happen inside `run`, so `rootletseg --help` is instant.

Errors the user can fix (`UserError`) print one sentence on stderr and exit 1; usage errors exit 2 (argparse);
SIGINT and SIGTERM (and SIGBREAK on Windows) stop cleanly, leave nothing half-written, and exit 128 + the signal
number (130 / 143). A file system error that escaped the checks (a disk that filled, a folder made read-only
meanwhile) is stated as one sentence too, never a traceback. The files a command reads are remembered
(`images.files.track_inputs`) so that no output replaces one of them, whatever link or path names it.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import signal
import sys

from RootletSegLogic import __version__
from RootletSegLogic.errors import Cancelled, UserError
from RootletSegLogic.progress import PROGRESS_MODES, make_reporter

SUBCOMMANDS = ("segment", "models", "phantom", "demo", "levels", "stats", "batch", "landmarks", "run")


def add_progress_option(parser: argparse.ArgumentParser) -> None:
    """The shared `--progress bar|json|none` option (json: one JSON object per line on stdout, for Slicer)."""
    parser.add_argument(
        "--progress",
        choices=PROGRESS_MODES,
        default="bar",
        help="progress display: a bar on stderr (default), JSON lines on stdout (used by the Slicer module), or none",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rootletseg",
        description="Segment spinal nerve rootlets (RootletSeg, nnU-Net v2) and compare spinal with vertebral levels.",
    )
    parser.add_argument("--version", action="version", version=f"rootletseg {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in SUBCOMMANDS:
        importlib.import_module(f"{__package__}.{name}").register(subparsers)
    subparsers.choices["segment"].add_argument(
        "--trust-checkpoints", action="store_true",
        help="load model checkpoints with Python's full unpickler, which can run code: only for a model whose source "
        "you trust and whose checkpoints hold more than weights (default: weights-only loading)")
    return parser


def os_error_sentence(error: OSError) -> str:
    """One sentence for a file system error: what failed, where, and what to do."""
    where = f" '{error.filename}'" if getattr(error, "filename", None) else ""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"The disk is full (writing{where or ' an output'}): free some space or write elsewhere; nothing was changed."
    if error.errno == errno.EROFS:
        return f"The file system of{where or ' an output'} is read-only: write the outputs to another folder."
    if error.errno in (errno.EACCES, errno.EPERM):
        return f"Permission denied for{where or ' a file'}: make it writable (or readable) or choose another path."
    if error.errno == errno.ENOENT:
        return f"The file or folder{where} does not exist (any more): check the path."
    reason = error.strerror or type(error).__name__
    return f"A file operation failed on{where or ' a file'} ({reason}): check the disk and the paths, then run again."


# Signals that cancel cleanly. On Windows the Slicer module stops the child with CTRL_BREAK, delivered as SIGBREAK.
CANCEL_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGBREAK") if hasattr(signal, name))

_received_signal = None  # set by the handler; code we call (torch) may turn our Cancelled into its own error


def _raise_cancelled(signal_number, _frame):
    global _received_signal
    _received_signal = signal_number
    raise Cancelled(signal_number)


def main(argv=None) -> int:
    global _received_signal
    args = build_parser().parse_args(argv)
    reporter = make_reporter(getattr(args, "progress", "bar"))
    _received_signal = None
    if getattr(args, "trust_checkpoints", False):
        from RootletSegLogic.segmentation.checkpoints import TRUST_ENV

        os.environ[TRUST_ENV] = "1"  # read by the Segmenter wherever segment builds it (also in a child process)
    from RootletSegLogic.images.files import track_inputs

    track_inputs(True)
    previous = {sig: signal.signal(sig, _raise_cancelled) for sig in CANCEL_SIGNALS}
    try:
        return int(args.func(args, reporter) or 0)
    except Exception as error:
        if isinstance(error, Cancelled) or _received_signal is not None:
            # A signal that arrives inside a library callback (e.g. torch's load_state_dict) can come back as
            # that library's own error: it is still the user's cancel. Outputs are atomic, so nothing was written.
            cancelled = error if isinstance(error, Cancelled) else Cancelled(_received_signal)
            print("rootletseg: cancelled; no output was written.", file=sys.stderr)
            reporter.error("cancelled", cancelled.exit_code)
            return cancelled.exit_code
        if isinstance(error, UserError):
            message = str(error)
            print(f"rootletseg: error: {message}", file=sys.stderr)
            reporter.error(message, error.exit_code)
            return error.exit_code
        if isinstance(error, OSError) and not isinstance(error, ConnectionError):
            message = os_error_sentence(error)
            print(f"rootletseg: error: {message}", file=sys.stderr)
            reporter.error(message, 1)
            return 1
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())

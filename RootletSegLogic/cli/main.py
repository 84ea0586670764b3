"""`rootletseg` command line: one sub-command per module `cli/<name>.py`, all calling the same core.

Each sub-command module defines `register(subparsers)`, which adds its parser and sets `run(args, reporter) -> int`
as the parser's `func`. Heavy imports (torch, nnU-Net) happen inside `run`, so `rootletseg --help` is instant.

Errors the user can fix (`UserError`) print one sentence on stderr and exit 1; usage errors exit 2 (argparse);
SIGINT and SIGTERM (and SIGBREAK on Windows) stop cleanly, leave nothing half-written, and exit 128 + the signal
number (130 / 143).
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys

from RootletSegLogic import __version__
from RootletSegLogic.errors import Cancelled, UserError
from RootletSegLogic.progress import PROGRESS_MODES, make_reporter

SUBCOMMANDS = ("segment", "models", "phantom", "demo", "levels", "stats")


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
    return parser


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
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())

"""Exceptions shared by the core and its faces.

`UserError` is for problems the user can fix (a wrong path, a bad image, an output that exists): the CLI prints
its message as one sentence, with no traceback, and exits non-zero. Everything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A problem with the user's input or environment, stated as one sentence saying what to do."""

    exit_code = 1


class Cancelled(Exception):
    """The work was stopped on request (SIGINT / SIGTERM / Cancel in Slicer). Nothing partial is left behind."""

    def __init__(self, signal_number: int = 2):
        super().__init__(f"cancelled by signal {signal_number}")
        self.signal_number = signal_number

    @property
    def exit_code(self) -> int:
        return 128 + self.signal_number

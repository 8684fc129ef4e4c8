"""The one error type the command line reports as a single line (and its exit codes)."""

from __future__ import annotations

# Exit codes, documented in docs/cli.md. 1 is reserved for "the command ran and found
# problems" (check) or "the user said no", so scripts can tell it from a failure.
OK = 0
PROBLEMS = 1
FAILED = 2
INTERRUPTED = 130  # 128 + SIGINT, what shells report for a Ctrl-C
BROKEN_PIPE = 141  # 128 + SIGPIPE, what `head` leaves behind for other tools too


class CLIError(Exception):
    """A user-facing failure: printed as ``etcher: error: <message>``, never as a traceback."""

    def __init__(self, message: str, code: int = FAILED) -> None:
        super().__init__(message)
        self.code = code

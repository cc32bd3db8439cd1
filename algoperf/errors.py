"""The error a user can fix: the CLI prints its message as one line, without a traceback."""


class UserError(Exception):
    """Bad input or a bad environment: says what went wrong and what to do about it."""


class HarnessError(UserError):
    """The harness or the machine failed (permission denied, disk full, an I/O error), not the
    submission: the trial did not end, and --resume continues it."""

"""The error a user can fix: the CLI prints its message as one line, without a traceback."""


class UserError(Exception):
    """Bad input or a bad environment: says what went wrong and what to do about it."""

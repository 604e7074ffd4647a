"""The one exception type the CLI turns into a clean message (no traceback)."""


class GenError(Exception):
    """A user-facing error: the message says what went wrong and how to fix it."""

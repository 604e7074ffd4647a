"""The one exception type the CLI turns into a clean message (no traceback), and warnings said once."""


class GenError(Exception):
    """A user-facing error: the message says what went wrong and how to fix it."""


_warned: set[str] = set()


def warn_once(key: str, message: str) -> None:
    """A warning on stderr, once per process for each key (a broken manifest is read often)."""
    import sys

    if key not in _warned:
        _warned.add(key)
        print(f"gen: warning: {message}", file=sys.stderr)

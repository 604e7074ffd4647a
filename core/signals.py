"""SIGINT/SIGTERM as a request to stop: training saves a checkpoint and exits at the step's end."""

from __future__ import annotations

import signal
from typing import Any


class StopSignals:
    """SIGINT/SIGTERM set a flag; the loop saves a checkpoint and exits at the step's end."""

    def __init__(self) -> None:
        self.caught: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def _handle(self, signum, frame) -> None:
        if self.caught is not None:  # a second Ctrl-C means "now"
            raise KeyboardInterrupt
        self.caught = signum

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)

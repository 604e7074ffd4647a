"""A fair share of the CPU for gen processes that run at once in one workspace.

Each training that may use every core (``threads = 0``) holds a lock file in the workspace's
``cache/running/`` for as long as it runs; it uses ``cores // live trainings`` threads and looks
again every few steps, so two trainings share the cores instead of each starting one thread per
core (oversubscribed, each ran many times slower than alone). A process that dies releases its
lock with it (``flock``), and the next look removes its file.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

RECHECK_STEPS = 25  # steps between looks at how many trainings run


class ThreadShare:
    """This process's place among the workspace's running trainings (a context manager)."""

    def __init__(self, ws: Path, cores: int | None = None) -> None:
        self.folder = ws / "cache" / "running"
        self.cores = cores or os.cpu_count() or 1
        self.fd: int | None = None
        self.path: Path | None = None  # this process's lock file, once entered
        self.current = 0

    def __enter__(self) -> ThreadShare:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{os.getpid()}.{id(self)}.lock"
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        self.path = path
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            self.path.unlink(missing_ok=True)
            os.close(self.fd)
            self.fd = None

    def live(self) -> int:
        """Trainings holding their lock now (this one included, at least 1)."""
        return max(self.others() + (self.path is not None), 1)

    def others(self) -> int:
        """Other trainings holding their lock now; stale files are removed."""
        count = 0
        for path in self.folder.glob("*.lock"):
            if path == self.path:
                continue
            try:
                fd = os.open(path, os.O_RDWR)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                path.unlink(missing_ok=True)  # nobody holds it: its process is gone
            except BlockingIOError:
                count += 1
            finally:
                os.close(fd)
        return count

    def threads(self) -> int:
        return max(1, self.cores // self.live())

    def apply(self) -> str | None:
        """Set torch's threads to this process's share; the line that says so when it changed."""
        import torch

        want = self.threads()
        if want == self.current:
            return None
        self.current = want
        torch.set_num_threads(want)
        live = self.live()
        return (f"threads: {want} ({self.cores} cores shared by {live} trainings in this workspace)" if live > 1
                else f"threads: {want} (every core: no other training runs in this workspace)")

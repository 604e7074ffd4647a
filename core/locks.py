"""Folder locks: one process at a time in a run folder, or preparing a corpus; and the brief
shared/exclusive lock that lets a reader take one generation of a corpus while prepare swaps.

An OS file lock (``fcntl.flock``) on a small lock file: the kernel releases it when its holder
dies in any way (``kill -9`` included), so a stale lock never blocks. The holder's PID is
written into the file, so a second process can say who holds it.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from gen.core.errors import GenError


class FolderLock:
    """``with FolderLock(path, what): ...`` holds ``path`` (the lock file) exclusively."""

    def __init__(self, path: str | os.PathLike, what: str) -> None:
        self.path, self.what = Path(path), what
        self.fd: int | None = None

    def acquire(self) -> FolderLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise GenError(f"{self.what} is in use by process {holder} (lock {self.path}); wait for it to "
                           f"finish or stop it (kill {holder}), then try again") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


class SwapLock:
    """``flock`` on ``path``, shared or exclusive, blocking: held only for a moment (a reader
    opening its files, prepare renaming folders), so waiting is the right answer. Where the
    lock file cannot be made (a read-only workspace) nothing can swap the folder: no lock."""

    def __init__(self, path: str | os.PathLike, shared: bool) -> None:
        self.path, self.shared = Path(path), shared
        self.fd: int | None = None

    def __enter__(self) -> SwapLock:
        try:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            return self
        fcntl.flock(self.fd, fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

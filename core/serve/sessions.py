"""Stateful sessions of `gen serve`: a text continued without reading it again.

A session keeps what the model has after reading its text: the recurrent state (per layer h,
and c, each (1, H)), the ids sampled but not yet read, or the logits that predict the next
character. Continuing costs O(1) per new character whatever the text's length. The store is
bounded: at most ``max_sessions`` (the least recently used go first) and each expires after
``ttl`` seconds unused, so memory stays flat however many clients come and go.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from gen.core.serve.requests import ApiError


@dataclass
class Session:
    id: str
    model: str
    state: list[Any] | None = None  # (1, H) tensors; None before the first read
    unread: list[int] = field(default_factory=list)  # sampled ids the state has not read yet
    logits: Any = None  # (V,) the next character's logits, when nothing is unread
    chars: int = 0  # characters of text so far (prompt, appends and completions)
    tail: str = ""  # the text's last characters (structure checks and the playground show them)
    used: float = field(default_factory=time.monotonic)
    job: Any = None  # the request running on it (a second one at once is refused: 409)


class SessionStore:
    TAIL = 4096

    def __init__(self, max_sessions: int, ttl: float) -> None:
        self.max, self.ttl = max_sessions, ttl
        self.items: OrderedDict[str, Session] = OrderedDict()

    def _expire(self) -> None:
        now = time.monotonic()
        for sid in [s.id for s in self.items.values() if now - s.used > self.ttl and not self.busy(s)]:
            del self.items[sid]

    def create(self, model: str) -> Session:
        self._expire()
        while len(self.items) >= self.max:
            idle = next((sid for sid, s in self.items.items() if not self.busy(s)), None)
            if idle is None:
                raise ApiError(503, "every session is in use; try again shortly", headers={"Retry-After": "1"})
            del self.items[idle]
        s = Session(secrets.token_urlsafe(12), model)
        self.items[s.id] = s
        return s

    def get(self, sid: str) -> Session:
        self._expire()
        s = self.items.get(sid)
        if s is None:
            raise ApiError(404, f"no session {sid[:40]!r}: it expired (after {self.ttl:.0f} s unused), was "
                           "deleted, or never existed; create one with POST /v1/sessions", code="session_not_found")
        self.items.move_to_end(sid)
        s.used = time.monotonic()
        self.busy(s)
        return s

    def delete(self, sid: str) -> None:
        self.get(sid)
        del self.items[sid]

    def busy(self, s: Session) -> bool:
        """Whether a request still runs on ``s``; a finished one is recorded first. The engine
        marks a job as left once its state is final, however it ended (a client that went away
        mid-stream included; a job that never ran or failed leaves the session as it was), so a
        session is never left half-updated or locked."""
        job = s.job
        if job is not None and job.left:
            if job.state is not None:  # it ran: its state is the session's now
                s.state, s.unread = job.state, list(job.unread)
                s.logits = job.logits if not job.unread else None
                text = job.note + "".join(job.text) + job.stop
                s.chars += len(text)
                s.tail = (s.tail + text)[-self.TAIL:]
            s.job = None
        return s.job is not None

    def begin(self, s: Session, job: Any) -> None:
        """``job`` runs on ``s`` now (its result is recorded when it ends)."""
        if self.busy(s):
            raise ApiError(409, f"session {s.id} is busy with another request; wait for it to end")
        s.job = job

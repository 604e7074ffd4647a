"""A request's streams as the batching engine runs them: how one samples (:class:`Draw`), one
stream's progress (:class:`Job`), and the asyncio side's view of a request's jobs (:func:`updates`).
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class Draw:
    """How a job samples: the request's options, already validated (core/serve/requests.py)."""

    max_chars: int = 0  # characters to generate; 0: only read (a session's append, next-character odds)
    temperature: float = 0.8
    top_k: int = 0
    top_p: float = 1.0
    stops: list[str] = field(default_factory=list)
    seed: int | None = None
    logprobs: int = 0  # per generated character, this many likeliest alternatives with log-probabilities
    banned: list[int] = field(default_factory=list)  # character ids never sampled
    tracker: Any = None  # the domain's structure tracker (guided), already fed the prompt

    @property
    def shaped(self) -> bool:
        """Whether anything besides the temperature shapes the distribution (per-job work)."""
        return bool(self.top_k or self.top_p < 1.0 or self.banned or self.tracker is not None)


class Job:
    """One stream in the batch: what it still has to read, how it samples, what it produced."""

    _ids = itertools.count()

    def __init__(self, feed: list[int], draw: Draw, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue,
                 state: list[torch.Tensor] | None = None, logits: torch.Tensor | None = None, index: int = 0) -> None:
        self.id = next(self._ids)
        self.feed = deque(feed)  # ids to read before (or between) samples
        self.draw, self.loop = draw, loop
        self.state0, self.start_logits = state, logits  # a session's saved state (1, H) rows, its last logits
        self.gen = torch.Generator().manual_seed(draw.seed) if draw.seed is not None else None
        self.text: list[str] = []
        self.sent = 0  # characters of text already handed to the client
        self.top: list[dict[str, float]] = []  # logprobs: per character, the alternatives
        self.chosen_lp: list[float] = []
        self.finish: str | None = None  # "stop" | "length" | "cancelled" | "error"
        self.error: str | None = None
        self.logits: torch.Tensor | None = None  # (V,) after the last read: the next character's odds
        self.state: list[torch.Tensor] | None = None  # at the end: the state rows, (1, H) each
        self.unread: list[int] = []  # at the end: sampled ids not yet read (a session reads them next)
        self.stop = ""  # the stop string that ended it (read by the model, not in text)
        self.note = ""  # the text it reads for a session (its prompt or appended text)
        self.cancelled = False
        self.left = False  # it has left the batch (its state, if any, is final): set last, by the worker
        self.index = index  # its choice in the request (n > 1)
        self.queue = queue  # the request's: (job, text chunk), then (job, None) at the end

    def cancel(self) -> None:
        """The client went away: the engine drops the job at its next step."""
        self.cancelled = True


async def updates(queue: asyncio.Queue, jobs: list[Job]) -> Any:
    """A request's jobs as they progress: lists of (job, text so far unsent, done), every chunk
    waiting now joined per job, until every job is done (an async generator)."""
    left = set(j.id for j in jobs)
    while left:
        items = [await queue.get()]
        while not queue.empty():
            items.append(queue.get_nowait())
        merged: dict[int, list] = {}
        for job, text in items:
            entry = merged.setdefault(job.id, [job, "", False])
            if text is None:
                entry[2] = True
                left.discard(job.id)
            else:
                entry[1] += text
        yield list(merged.values())

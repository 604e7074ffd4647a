"""The batching engine of `gen serve`: every request for one model steps in one multi-stream batch.

One thread per model owns the model's steppers (core/model.py's FusedStepper, the one `gen
sample` uses) and a batch of jobs. Each step feeds every job one character, in one matrix
product per layer: a job first reads its prime (the corpus separator, then the prompt: the rule
of core/sample.py), then samples with its own temperature, top-k/top-p, banned characters,
structure guidance and random generator, and feeds back what it drew. A job joins the batch at
the next step and leaves when it stops, ends or its client goes away. The precision follows
`gen sample`'s rule for the number of streams in the batch now (the state stays fp32, so the
batch moves between precisions as it grows and shrinks).

Results reach the asyncio side once per step (``loop.call_soon_threadsafe``), as chunks of text
per job: a client that reads slower than the engine samples gets bigger chunks, not a backlog of
events.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import torch

from gen.core.model import FusedStepper
from gen.core.precision import sampling_dtype, sampling_name
from gen.core.sample import MaskCache, filter_logits


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
        self.index = index  # its choice in the request (n > 1)
        self.queue = queue  # the request's: (job, text chunk), then (job, None) at the end
        self.submitted = time.perf_counter()

    def cancel(self) -> None:
        """The client went away: the engine drops the job at its next step."""
        self.cancelled = True


class Busy(Exception):
    """The batch and its queue are full: the server answers 503 with Retry-After."""


class BatchEngine:
    """The thread that steps one model's jobs together (see the module docstring)."""

    def __init__(self, model: Any, vocab: Any, *, max_streams: int = 64, max_queue: int = 256,
                 precision: str = "auto", device: torch.device | str = "cpu") -> None:
        self.model, self.vocab = model, vocab
        self.max_streams, self.max_queue = max_streams, max_queue
        self.precision, self.device = precision, torch.device(device)
        self.V = len(vocab)
        self.steppers: dict[torch.dtype, FusedStepper] = {}
        self.dtypes: dict[int, torch.dtype] = {}  # batch size -> the stepper's dtype (gen sample's rule)
        self.masks = MaskCache(vocab)
        self.rng = torch.Generator().manual_seed(torch.seed() % 2**63)
        self.inbox: deque[Job] = deque()
        self.jobs: list[Job] = []
        self.state: list[torch.Tensor] = []
        self.wake = threading.Condition()
        self.running = True
        self.steps = 0
        self.thread = threading.Thread(target=self._loop, name="gen-serve-engine", daemon=True)
        self.thread.start()

    # ---- the asyncio side -------------------------------------------------------------
    def submit(self, job: Job) -> None:
        """Queue ``job`` for the next step; Busy when the batch and the queue are full."""
        with self.wake:
            if len(self.inbox) + len(self.jobs) >= self.max_streams + self.max_queue:
                raise Busy()
            self.inbox.append(job)
            self.wake.notify()

    def load(self) -> dict[str, int]:
        return {"active": len(self.jobs), "queued": len(self.inbox), "max_streams": self.max_streams,
                "max_queue": self.max_queue}

    def stepper_name(self, n: int) -> str:
        return sampling_name(self._dtype(n))

    def close(self) -> None:
        with self.wake:
            self.running = False
            self.wake.notify()
        self.thread.join(timeout=10)

    # ---- the engine thread ------------------------------------------------------------
    def _loop(self) -> None:
        torch.set_grad_enabled(False)
        threads = torch.get_num_threads()
        while True:
            with self.wake:
                while self.running and not self.inbox and not self.jobs:
                    self.wake.wait()
                if not self.running:
                    break
                joining = [self.inbox.popleft() for _ in range(min(len(self.inbox), self.max_streams - len(self.jobs)))]
            events: list[tuple[Job, str, bool]] = []
            try:
                self._admit(joining, events)
                self._drop_cancelled(events)
                if self.jobs:
                    # small batches of a small model run on one thread (core/sample.py's rule)
                    a = self.model.args
                    torch.set_num_threads(1 if len(self.jobs) * a.n_hidden * a.n_layer < 1024 else threads)
                    self._step(events)
            except Exception as exc:  # a bug must not hang every client: each is told, the batch restarts
                for job in self.jobs + joining:
                    job.finish, job.error = "error", f"{type(exc).__name__}: {exc}"
                    events.append((job, "", True))
                self.jobs, self.state = [], []
            if events:
                self._deliver(events)

    def _dtype(self, n: int) -> torch.dtype:
        if n not in self.dtypes:
            self.dtypes[n] = sampling_dtype(self.model, self.device, self.precision, n)
        return self.dtypes[n]

    def _admit(self, joining: list[Job], events: list) -> None:
        H = self.model.args.n_hidden
        rows = 2 * self.model.args.n_layer if self.model.args.cell == "lstm" else self.model.args.n_layer
        for job in joining:
            if job.cancelled:
                job.finish = "cancelled"
                events.append((job, "", True))
                continue
            state = job.state0 or [torch.zeros(1, H, device=self.device) for _ in range(rows)]
            self.state = [torch.cat([s, t.to(self.device)]) for s, t in zip(self.state, state, strict=True)] \
                if self.state else [t.to(self.device).clone() for t in state]
            self.jobs.append(job)
            if not job.feed:  # a session with nothing to read: its saved logits predict the next character
                self._sample([len(self.jobs) - 1], job.start_logits[None].float(), events)

    def _drop_cancelled(self, events: list) -> None:
        keep = [i for i, j in enumerate(self.jobs) if not (j.cancelled or j.finish)]
        if len(keep) == len(self.jobs):
            return
        for i, job in enumerate(self.jobs):
            if i not in keep:
                if job.finish is None:
                    job.finish = "cancelled"
                    events.append((job, "", True))
                job.state = [s[i:i + 1].clone() for s in self.state]
                job.unread = job.unread or list(job.feed)  # what it had still to read
        idx = torch.tensor(keep, dtype=torch.long, device=self.device)
        self.jobs = [self.jobs[i] for i in keep]
        self.state = [s.index_select(0, idx) for s in self.state] if keep else []

    def _step(self, events: list) -> None:
        """Feed every job one character; jobs that have read everything sample the next."""
        n = len(self.jobs)
        dtype = self._dtype(n)
        if dtype not in self.steppers:
            self.steppers[dtype] = FusedStepper(self.model, self.device, dtype)
        ids = torch.tensor([j.feed.popleft() for j in self.jobs], dtype=torch.long, device=self.device)
        logits = self.steppers[dtype].step(ids, self.state).float().cpu()  # (N, V)
        self.steps += 1
        ready = [i for i, j in enumerate(self.jobs) if not j.feed]
        if ready:
            self._sample(ready, logits[ready], events)
        self._drop_cancelled(events)

    def _sample(self, rows: list[int], logits: torch.Tensor, events: list) -> None:
        """Draw the next character of the jobs at ``rows`` from their logits (R, V)."""
        jobs = [self.jobs[i] for i in rows]
        reading = [k for k, j in enumerate(jobs) if len(j.text) >= j.draw.max_chars]
        for k in reading:  # a read-only job (or one at its length): done, its logits kept
            jobs[k].logits = logits[k].clone()
            jobs[k].finish = jobs[k].finish or ("length" if jobs[k].draw.max_chars else "stop")
            events.append((jobs[k], "", True))
        todo = [k for k in range(len(jobs)) if k not in set(reading)]
        if not todo:
            return
        jobs, logits = [jobs[k] for k in todo], logits[todo]
        want_lp = any(j.draw.logprobs for j in jobs)
        logp = torch.log_softmax(logits, -1) if want_lp else None  # (R, V), the model's own odds
        scaled = self._filtered(jobs, logits)
        probs = torch.softmax(scaled, -1)
        free = [k for k, j in enumerate(jobs) if j.gen is None]
        noise = torch.empty_like(probs)
        if free:
            noise[free] = torch.empty(len(free), self.V).exponential_(generator=self.rng)
        for k, j in enumerate(jobs):
            if j.gen is not None:  # a seeded job draws as `gen sample --seed` does for one stream
                noise[k] = torch.empty(1, self.V).exponential_(generator=j.gen)[0]
        nxt = probs.div_(noise).argmax(-1).tolist()
        for k, j in enumerate(jobs):
            idx = int(scaled[k].argmax()) if j.draw.temperature <= 1e-3 else nxt[k]
            self._emit(j, idx, logp[k] if logp is not None else None, events)

    def _filtered(self, jobs: list[Job], logits: torch.Tensor) -> torch.Tensor:
        """Temperature, top-k/top-p, banned characters and structure guidance, per job: (R, V)."""
        temps = torch.tensor([[max(j.draw.temperature, 1e-6)] for j in jobs])
        scaled = logits / temps
        for k, j in enumerate(jobs):
            d = j.draw
            if d.top_k or d.top_p < 1.0:
                scaled[k] = filter_logits(scaled[k:k + 1], 1.0, d.top_k, d.top_p)[0]
            if d.banned:
                row = scaled[k].clone()
                row[d.banned] = float("-inf")
                if torch.isfinite(row).any():  # never ban every character left
                    scaled[k] = row
            if d.tracker is not None:
                c = d.tracker.constraint()
                mask = None if c.free else self.masks.get(c)
                if mask is not None and bool(torch.isfinite(scaled[k] + mask).any()):
                    scaled[k] += mask
        return scaled

    def _emit(self, job: Job, idx: int, logp: torch.Tensor | None, events: list) -> None:
        ch = self.vocab.chars[idx]
        job.text.append(ch)
        d = job.draw
        if d.tracker is not None:
            d.tracker.feed(ch)
        if logp is not None and d.logprobs:
            vals, ids = logp.topk(min(d.logprobs, self.V))
            job.top.append({self.vocab.chars[i]: float(v) for v, i in zip(vals.tolist(), ids.tolist(), strict=True)})
            job.chosen_lp.append(float(logp[idx]))
        text = job.text
        stop = next((st for st in d.stops if len(text) >= len(st) and "".join(text[-len(st):]) == st), None)
        if stop is not None:
            del text[len(text) - len(stop):]
            job.finish, job.unread, job.stop = "stop", [idx], stop
        elif len(text) >= d.max_chars:
            job.finish, job.unread = "length", [idx]
        else:
            job.feed.append(idx)
        # what may still become a stop string is held back until it does not (OpenAI's rule:
        # a stop string is never sent, not even in part)
        hold = 0 if job.finish else _partial_stop(text, d.stops)
        new = "".join(text[job.sent:len(text) - hold])
        job.sent += len(new)
        events.append((job, new, job.finish is not None))

    def _deliver(self, events: list[tuple[Job, str, bool]]) -> None:
        """Hand this step's text to the jobs' queues on their event loops (one call per loop)."""
        by_loop: dict[asyncio.AbstractEventLoop, list] = {}
        for e in events:
            by_loop.setdefault(e[0].loop, []).append(e)
        for loop, evs in by_loop.items():
            try:
                loop.call_soon_threadsafe(_put, evs)
            except RuntimeError:  # that loop has closed: nobody is waiting
                pass


def _partial_stop(text: list[str], stops: list[str]) -> int:
    """The length of the longest end of ``text`` that begins some stop string (0: none)."""
    best = 0
    for st in stops:
        for k in range(min(len(st) - 1, len(text)), best, -1):
            if "".join(text[-k:]) == st[:k]:
                best = k
                break
    return best


def _put(events: list[tuple[Job, str, bool]]) -> None:
    for job, text, done in events:
        if text:
            job.queue.put_nowait((job, text))
        if done:
            job.queue.put_nowait((job, None))


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

"""The batching engine of `gen serve`: every request for one model steps in one multi-stream batch.

Each model's engine owns its steppers (core/model.py's FusedStepper, the one `gen sample` uses)
and a batch of jobs; one worker thread steps every engine in turn. Each step feeds every job one character, in one matrix
product per layer: a job first reads its prime (the corpus separator, then the prompt: the rule
of core/sample.py), then samples with its own temperature, top-k/top-p, banned characters,
structure guidance and random generator, and feeds back what it drew. A job joins the batch at
the next step and leaves when it stops, ends or its client goes away. The precision follows
`gen sample`'s rule for the number of streams in the batch now (the state stays fp32, so the
batch moves between precisions as it grows and shrinks).

Results reach the asyncio side in chunks of text per job (``loop.call_soon_threadsafe``): a job's
first character and its end at once, the rest at most every FLUSH_S seconds (longer with many
streams: the HTTP events of 64 streams, not their sampling, then bound the server). One event
per character and step cost the server and its clients more than the sampling itself (measured:
evals/BENCHMARKS.md, "2026-12-05, evening"), and a chunk every 20 ms still reads as a stream.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from typing import Any

import torch

from gen.core.model import FusedStepper
from gen.core.precision import sampling_dtype, sampling_name
from gen.core.sample import MaskCache, filter_logits, guide_row
from gen.core.serve.jobs import Job

FLUSH_S = 0.02  # the longest a sampled character waits before it is handed to its client...
FLUSH_STREAMS = 8  # ...with up to this many streams; with more, proportionally longer


class Busy(Exception):
    """The batch and its queue are full: the server answers 503 with Retry-After."""


class Worker:
    """The one thread that runs every model's batch, in turn: all torch work of the server on one
    thread. A second thread running torch's two-thread kernels, after another thread had run them
    (as loading a model does), sampled at about half speed on a 2-core machine (evals/BENCHMARKS.md,
    "2026-12-05, evening"), and two models' threads would fight over the same cores. `gen serve`
    runs it on the main thread, the HTTP server on another."""

    def __init__(self) -> None:
        self.engines: list[BatchEngine] = []
        self.wake = threading.Condition()
        self.running = True
        self.thread: threading.Thread | None = None

    def run(self) -> None:
        """Step every engine with work until :meth:`stop`; sleeps while none has any."""
        torch.set_grad_enabled(False)
        while True:
            with self.wake:
                while self.running and not any(e.inbox or e.jobs or e.ended for e in self.engines):
                    self.wake.wait(timeout=1.0)
                if not self.running:
                    return
            for engine in self.engines:
                engine.tick()


    def start(self) -> Worker:
        """:meth:`run` on a thread of its own (tests and benchmarks; the command uses the main thread)."""
        self.thread = threading.Thread(target=self.run, name="gen-serve-worker", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        with self.wake:
            self.running = False
            self.wake.notify_all()
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(timeout=10)


class BatchEngine:
    """One model's batch (see the module docstring), stepped by a :class:`Worker`."""

    def __init__(self, model: Any, vocab: Any, worker: Worker, *, max_streams: int = 64, max_queue: int = 256,
                 precision: str = "auto", device: torch.device | str = "cpu") -> None:
        self.model, self.vocab, self.worker = model, vocab, worker
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
        self.ended: list[Job] = []  # jobs that ended since the last hand-over
        self.urgent = False  # a first character or an end: hand over now, not at FLUSH_S
        self.flushed = time.perf_counter()
        self.threads = torch.get_num_threads()
        self.steps = 0  # batch steps so far, and streams stepped in them (their ratio: the mean batch)
        self.stream_steps = 0
        worker.engines.append(self)

    # ---- the asyncio side -------------------------------------------------------------
    def submit(self, job: Job) -> None:
        """Queue ``job`` for the next step; Busy when the batch and the queue are full."""
        with self.worker.wake:
            if len(self.inbox) + len(self.jobs) >= self.max_streams + self.max_queue:
                raise Busy()
            self.inbox.append(job)
            self.worker.wake.notify()

    def load(self) -> dict[str, int]:
        return {"active": len(self.jobs), "queued": len(self.inbox), "max_streams": self.max_streams,
                "max_queue": self.max_queue, "steps": self.steps, "stream_steps": self.stream_steps}

    def stepper_name(self, n: int) -> str:
        return sampling_name(self._dtype(n))

    def warm(self) -> None:
        """Decide the precision for every batch size and build those steppers now, not while the
        first clients wait (the precision check samples the model: a fraction of a second)."""
        for n in range(1, self.max_streams + 1):
            dtype = self._dtype(n)
            if dtype not in self.steppers:
                self.steppers[dtype] = FusedStepper(self.model, self.device, dtype)

    # ---- the worker's thread ----------------------------------------------------------
    def tick(self) -> None:
        """Admit waiting jobs, step the batch once, hand over what it produced."""
        with self.worker.wake:
            joining = [self.inbox.popleft() for _ in range(min(len(self.inbox), self.max_streams - len(self.jobs)))]
        try:
            self._admit(joining)
            self._drop_ended()
            if self.jobs:
                # small batches of a small model run on one thread (core/sample.py's rule)
                a = self.model.args
                want = 1 if len(self.jobs) * a.n_hidden * a.n_layer < 1024 else self.threads
                if want != torch.get_num_threads():  # setting it costs as much as a small step
                    torch.set_num_threads(want)
                self._step()
        except Exception as exc:  # a bug must not hang every client: each is told, the batch restarts
            for job in self.jobs + joining:
                job.finish, job.error = "error", f"{type(exc).__name__}: {exc}"
                job.left = True  # no state: a session keeps the one it had
                self.ended.append(job)
            self.jobs, self.state = [], []
        now = time.perf_counter()
        if self.urgent or (self.ended and not self.jobs) or \
                now - self.flushed >= FLUSH_S * max(1, len(self.jobs) // FLUSH_STREAMS):
            self._flush()
            self.flushed, self.urgent = now, False

    def _flush(self) -> None:
        """Each job's text not yet handed over, and the jobs that ended, to their event loops."""
        events = []
        for job in self.jobs:
            if job.sent < len(job.text):
                hold = _partial_stop(job.text, job.draw.stops) if job.draw.stops else 0
                if job.sent < len(job.text) - hold:  # a stop string is never sent, not even in part
                    events.append((job, "".join(job.text[job.sent:len(job.text) - hold]), False))
                    job.sent = len(job.text) - hold
        for job in self.ended:
            events.append((job, "".join(job.text[job.sent:]), True))
            job.sent = len(job.text)
        self.ended = []
        if events:
            self._deliver(events)

    def _dtype(self, n: int) -> torch.dtype:
        if n not in self.dtypes:
            self.dtypes[n] = sampling_dtype(self.model, self.device, self.precision, n)
        return self.dtypes[n]

    def _admit(self, joining: list[Job]) -> None:
        H = self.model.args.n_hidden
        rows = 2 * self.model.args.n_layer if self.model.args.cell == "lstm" else self.model.args.n_layer
        for job in joining:
            if job.cancelled:  # never stepped: a session keeps the state it had
                job.finish, job.left = "cancelled", True
                self.ended.append(job)
                continue
            state = job.state0 or [torch.zeros(1, H, device=self.device) for _ in range(rows)]
            self.state = [torch.cat([s, t.to(self.device)]) for s, t in zip(self.state, state, strict=True)] \
                if self.state else [t.to(self.device).clone() for t in state]
            if not job.feed and job.start_logits is None:  # nothing read yet and nothing to read
                job.feed.append(self.vocab.stoi[self.vocab.fallback])
            self.jobs.append(job)
            if not job.feed:  # a session with nothing to read: its saved logits predict the next character
                self._sample([len(self.jobs) - 1], job.start_logits[None].float())

    def _drop_ended(self) -> None:
        """Jobs that ended or were cancelled leave the batch, each with its state rows."""
        keep = [i for i, j in enumerate(self.jobs) if not (j.cancelled or j.finish)]
        if len(keep) == len(self.jobs):
            return
        for i, job in enumerate(self.jobs):
            if i not in keep:
                if job.finish is None:
                    job.finish = "cancelled"
                    self.ended.append(job)
                job.state = [s[i:i + 1].clone() for s in self.state]
                job.unread = job.unread or list(job.feed)  # what it had still to read
                job.left = True
        idx = torch.tensor(keep, dtype=torch.long, device=self.device)
        self.jobs = [self.jobs[i] for i in keep]
        self.state = [s.index_select(0, idx) for s in self.state] if keep else []

    def _step(self) -> None:
        """Feed every job one character; jobs that have read everything sample the next."""
        n = len(self.jobs)
        dtype = self._dtype(n)
        if dtype not in self.steppers:
            self.steppers[dtype] = FusedStepper(self.model, self.device, dtype)
        ids = torch.tensor([j.feed.popleft() for j in self.jobs], dtype=torch.long, device=self.device)
        logits = self.steppers[dtype].step(ids, self.state).float().cpu()  # (N, V)
        self.steps += 1
        self.stream_steps += n
        ready = [i for i, j in enumerate(self.jobs) if not j.feed]
        if ready:
            self._sample(ready, logits if len(ready) == n else logits[ready])
        self._drop_ended()

    def _sample(self, rows: list[int], logits: torch.Tensor) -> None:
        """Draw the next character of the jobs at ``rows`` from their logits (R, V)."""
        jobs = [self.jobs[i] for i in rows]
        reading = [k for k, j in enumerate(jobs) if len(j.text) >= j.draw.max_chars]
        for k in reading:  # a read-only job (or one at its length): done, its logits kept
            jobs[k].logits = logits[k].clone()
            jobs[k].finish = jobs[k].finish or ("length" if jobs[k].draw.max_chars else "stop")
            self.ended.append(jobs[k])
        if reading:
            skip = set(reading)
            todo = [k for k in range(len(jobs)) if k not in skip]
            jobs, logits = [jobs[k] for k in todo], logits[todo]
        if not jobs:
            return
        want_lp = any(j.draw.logprobs for j in jobs)
        logp = torch.log_softmax(logits, -1) if want_lp else None  # (R, V), the model's own odds
        scaled = self._filtered(jobs, logits)
        probs = torch.softmax(scaled, -1)
        seeded = [k for k, j in enumerate(jobs) if j.gen is not None]
        noise = torch.empty_like(probs).exponential_(generator=self.rng)
        for k in seeded:  # a seeded job draws as `gen sample --seed` does for one stream
            noise[k] = torch.empty(1, self.V).exponential_(generator=jobs[k].gen)[0]
        nxt = probs.div_(noise).argmax(-1).tolist()
        for k, j in enumerate(jobs):
            idx = int(scaled[k].argmax()) if j.draw.temperature <= 1e-3 else nxt[k]
            self._emit(j, idx, logp[k] if logp is not None else None)

    def _filtered(self, jobs: list[Job], logits: torch.Tensor) -> torch.Tensor:
        """Temperature, top-k/top-p, banned characters and structure guidance, per job: (R, V)."""
        temps = [max(j.draw.temperature, 1e-6) for j in jobs]
        same = all(t == temps[0] for t in temps)
        scaled = logits / temps[0] if same else logits / torch.tensor(temps)[:, None]
        for k, j in enumerate(jobs):
            d = j.draw
            if not d.shaped:
                continue
            if d.top_k or d.top_p < 1.0:
                scaled[k] = filter_logits(scaled[k:k + 1], 1.0, d.top_k, d.top_p)[0]
            if d.banned:
                row = scaled[k].clone()
                row[d.banned] = float("-inf")
                if torch.isfinite(row).any():  # never ban every character left
                    scaled[k] = row
            if d.tracker is not None:
                guide_row(scaled[k], d.tracker, self.masks, truncated=bool(d.top_k or d.top_p < 1.0 or d.banned))
        return scaled

    def _emit(self, job: Job, idx: int, logp: torch.Tensor | None) -> None:
        """Append the drawn character; end the job at a stop string or its length, else read it next."""
        ch = self.vocab.chars[idx]
        text, d = job.text, job.draw
        text.append(ch)
        if len(text) == 1:
            self.urgent = True  # the first character goes out at once
        if d.tracker is not None:
            d.tracker.feed(ch)
        if logp is not None and d.logprobs:
            vals, ids = logp.topk(min(d.logprobs, self.V))
            job.top.append({self.vocab.chars[i]: float(v) for v, i in zip(vals.tolist(), ids.tolist(), strict=True)})
            job.chosen_lp.append(float(logp[idx]))
        stop = next((st for st in d.stops if len(text) >= len(st) and "".join(text[-len(st):]) == st), None) \
            if d.stops else None
        if stop is not None:
            del text[len(text) - len(stop):]
            job.finish, job.unread, job.stop = "stop", [idx], stop
        elif len(text) >= d.max_chars:
            job.finish, job.unread = "length", [idx]
        else:
            job.feed.append(idx)
            return
        self.ended.append(job)
        self.urgent = True

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

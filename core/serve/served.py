"""One model as `gen serve` holds it: its name, its engine, and the domain rules requests use.

Turns a checked request into jobs (the prime read as `gen sample` reads it, the domain's stop
string when the request gives none, a structure tracker per stream when guided), and answers
the requests that need no sampling: next-character odds from logits, and the domain's checks.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import torch

from gen.core.domain import EvalContext
from gen.core.models import Loaded
from gen.core.sample import prime_ids
from gen.core.serve.engine import BatchEngine
from gen.core.serve.jobs import Draw
from gen.core.serve.requests import ApiError

MAX_ISSUES = 50  # issues /v1/check lists (the count is always whole)


@dataclass
class ServedModel:
    name: str
    loaded: Loaded
    engine: BatchEngine
    created: int = 0

    @property
    def domain(self) -> Any:
        return self.loaded.domain

    def card(self) -> dict[str, Any]:
        """The /v1/models entry: OpenAI's fields, then gen's."""
        a, ck = self.loaded.model.args, self.loaded.ckpt
        return {"id": self.name, "object": "model", "created": self.created or int(time.time()), "owned_by": "gen",
                "domain": ck["domain"], "corpus": ck["corpus"], "cell": a.cell, "layers": a.n_layer,
                "hidden": a.n_hidden, "vocab_size": a.vocab_size, "best_val_loss": ck.get("best_val"),
                "guided": self.domain.tracker() is not None, "stop": self.domain.stop or "",
                "path": self.loaded.path.name}

    def prompt_ids(self, prompt: str) -> list[int]:
        """The ids a sample reads first: the corpus separator, then the prompt (core/sample.py's rule)."""
        return prime_ids(self.loaded.vocab, self.loaded.separator, prompt)[0]

    def text_ids(self, text: str) -> list[int]:
        """The ids of text appended to a session (no separator: it continues)."""
        return self.loaded.vocab.encode(text)

    def draw(self, p: dict[str, Any], limits: Any, index: int = 0, context: str = "") -> Draw:
        """A job's sampling options from a checked request; choice ``index`` of n uses seed + index."""
        if p["guided"]:
            tracker = self.domain.tracker()
            if tracker is None:
                raise ApiError(400, f"domain {self.domain.name!r} has no structure tracker: leave out 'guided'",
                               param="guided")
            tracker.feed_text(context)
        else:
            tracker = None
        stops = p["stop"] if p["stop"] else ([self.domain.stop] if self.domain.stop else [])
        stoi = self.loaded.vocab.stoi
        seed = p["seed"] + index if p["seed"] is not None else None
        return Draw(max_chars=limits.default_tokens if p["max_tokens"] is None else p["max_tokens"],
                    temperature=p["temperature"], top_k=p["top_k"], top_p=p["top_p"], stops=stops,
                    seed=None if seed is None else seed % 2**63, logprobs=p["logprobs"] or 0,
                    banned=sorted({stoi[c] for c in p["banned"] if c in stoi}), tracker=tracker)

    def top(self, logits: torch.Tensor, k: int) -> list[dict[str, Any]]:
        """The k likeliest next characters with their probabilities (temperature 1)."""
        logp = torch.log_softmax(logits.float(), -1)
        vals, ids = logp.topk(min(k, logp.numel()))
        chars = self.loaded.vocab.chars
        return [{"char": chars[i], "prob": math.exp(v), "logprob": v}
                for v, i in zip(vals.tolist(), ids.tolist(), strict=True)]

    def check(self, text: str) -> dict[str, Any]:
        """The domain's checks of ``text`` (as `gen eval` runs them, without a corpus) and, where
        the domain tracks structure, what is still open (what would close it)."""
        dom = self.domain
        ctx = EvalContext(dom, None, dom.eval_defaults())
        res = dom.check(text, ctx)
        tracker = dom.tracker()
        unclosed = None
        if tracker is not None:
            tracker.feed_text(text)
            unclosed = tracker.closing()
        return {"model": self.name, "domain": dom.name, "metrics": res.metrics, "issue_count": len(res.issues),
                "issues": [i.to_dict() for i in res.issues[:MAX_ISSUES]], "unclosed": unclosed}

"""The names domain: one name per line; novelty against the training names is the headline.

The blog trained on 8,000 names and found about 90% of its samples were not in the training
set. Evaluation reports the share of unique samples, the share not found in training, exact
copies, and the length distribution against training. The tracker (guided sampling) forbids
empty names, names over a length limit and, when asked, names from a banned set.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from gen.core.api import (
    BY_SHAPE,
    FREE,
    CheckResult,
    Claim,
    Constraint,
    CorpusData,
    CorpusSpec,
    Domain,
    EvalContext,
    Issue,
    MetricSpec,
    PrepareReport,
    SourceSample,
    Tracker,
    hookimpl,
    iter_sources,
)

MAX_LEN = 40  # longer lines are not names (a data error); guided sampling ends a name here
MAX_NAME_LINE = 40  # a source is a names list when every line is at most this long (and 3 words)


def parse_name_line(line: str) -> str:
    """One name from a line: plain lists keep the line as is; census-style rows
    ("MARY  2.629  2.629  1") keep the first field, title-cased."""
    line = line.strip()
    parts = line.split()
    if len(parts) > 1 and all(p.replace(".", "").isdigit() for p in parts[1:]):
        return parts[0].title()
    return line


class NameTracker(Tracker):
    """State: the characters of the current name. Bans what would make a bad name."""

    constraints = ("nonempty", "maxlen", "novel")

    def __init__(self, enabled: Iterable[str] | None = None, banned: set[str] | None = None,
                 max_len: int = MAX_LEN) -> None:
        super().__init__(enabled)
        self.current: list[str] = []
        self.banned = banned if "novel" in self.enabled else None
        self.max_len = max_len
        self._bad = 0
        self._ban_nl = Constraint(ban=frozenset("\n"))
        self._only_nl = Constraint(allow=frozenset("\n"))

    def feed(self, ch: str) -> None:
        if ch == "\n":
            name = "".join(self.current)
            if not name or (self.banned is not None and name in self.banned):
                self._bad += 1
            self.current = []
        else:
            self.current.append(ch)

    def constraint(self) -> Constraint:
        n = len(self.current)
        if n == 0 and "nonempty" in self.enabled:
            return self._ban_nl
        if n >= self.max_len and "maxlen" in self.enabled:
            return self._only_nl
        if self.banned is not None and "".join(self.current) in self.banned:
            return self._ban_nl  # ending here would reproduce a banned (training) name
        return FREE

    def closing(self) -> str:
        return ""

    def violations(self) -> int:
        return self._bad


class NamesDomain(Domain):
    name = "names"
    description = "first names, one per line (makemore; the blog's 8000 names)"
    default_corpus = "names"
    samples_per_line = True
    stop = "\n"
    metrics = (
        MetricSpec("novel", True, "share of samples not found in the training names"),
        MetricSpec("exact_copies", False, "samples identical to a training name", aggregate="sum"),
        MetricSpec("length", None, "mean sample length in characters (compare with training)"),
        MetricSpec("length_train", None, "mean training name length", aggregate="none"),
        MetricSpec("length_distance", False, "total variation distance of the length histogram vs training",
                   aggregate="none"),
    )
    defaults = {
        "cpu": {"n_layer": 2, "n_hidden": 256, "n_embd": 32, "dropout": 0.2, "batch_size": 64, "seq_len": 64,
                "max_steps": 3000, "eval_every": 250},
        "gpu": {"n_layer": 3, "n_hidden": 512, "n_embd": 64, "dropout": 0.3, "batch_size": 256, "seq_len": 64,
                "max_steps": 5000, "eval_every": 500},
    }

    def claim(self, source: SourceSample) -> Claim | None:
        lines = source.lines()
        if len(lines) >= 20 and all(len(line) <= MAX_NAME_LINE and len(line.split()) <= 3 for line in lines):
            return Claim(f"one short entry per line ({len(lines)} lines read, none over {MAX_NAME_LINE} "
                         "characters)", BY_SHAPE)
        return None

    def documents(self, src: Path, corpus: CorpusSpec, options: dict[str, Any],
                  report: PrepareReport) -> Iterator[str]:
        for _fname, text in iter_sources(src, corpus.patterns, report):
            for line in text.splitlines():
                name = parse_name_line(line)
                if not name:
                    continue
                if len(name) > MAX_LEN:
                    report.skip(f"line longer than {MAX_LEN} characters")
                    continue
                yield name

    def corpus_stats(self, data: CorpusData) -> dict[str, Any]:
        names = set(data.documents("train"))
        return {"names": names, "lengths": [len(n) for n in names]}

    def check(self, sample: str, ctx: EvalContext) -> CheckResult:
        return self.check_many([sample], ctx)[0]

    def check_many(self, samples: list[str], ctx: EvalContext) -> list[CheckResult]:
        """The same results as :meth:`check` per sample, in one loop: a names set is tens of
        thousands of tiny samples, where the per-sample overhead is most of the cost. A result
        without issues depends only on the name's length and novelty, so one object serves
        every such name (results are read-only)."""
        train = ctx.stats["names"] if ctx.stats is not None else None
        plain: dict[int, CheckResult] = {}  # length -> the result of a novel (or unchecked) name
        out = []
        for sample in samples:
            name = sample.strip()
            if not name:
                res = CheckResult({"length": 0.0}, [Issue("empty", "empty name")])
                if train is not None:
                    res.metrics["novel"], res.metrics["exact_copies"] = 1.0, 0.0
            elif train is not None and name in train:
                res = CheckResult({"length": float(len(name)), "novel": 0.0, "exact_copies": 1.0},
                                  [Issue("copied", f"{name!r} is a training name", 0, name)])
            else:
                res = plain.get(len(name))
                if res is None:
                    res = plain[len(name)] = CheckResult({"length": float(len(name))} if train is None else
                                                         {"length": float(len(name)), "novel": 1.0, "exact_copies": 0.0})
            out.append(res)
        return out

    def summarize(self, samples, results, ctx) -> dict[str, float]:
        if ctx.stats is None or not samples:
            return {}
        train = ctx.stats["lengths"]
        mine = [len(s.strip()) for s in samples]
        top = max(max(train), max(mine)) + 1
        h_train = np.bincount(train, minlength=top) / len(train)
        h_mine = np.bincount(mine, minlength=top) / len(mine)
        return {"length_train": statistics.fmean(train),
                "length_distance": float(0.5 * np.abs(h_train - h_mine).sum())}

    def baseline(self, data: CorpusData, lengths: list[int], rng: random.Random) -> list[str]:
        """Real held-out names (one per sample), not windows: a name is the unit here."""
        val = list(data.documents("val")) or list(data.documents("train"))
        return [rng.choice(val) for _ in lengths]

    def corrupt(self, text: str, rng: random.Random) -> str:
        chars = list(text)
        if chars:
            chars[rng.randrange(len(chars))] = rng.choice("qxzjkv")
        return "".join(chars)

    def tracker(self, enabled: Iterable[str] | None = None, stats: Any = None) -> NameTracker:
        """With the training corpus's stats, "novel" bans ending a name that is a training name."""
        return NameTracker(enabled, stats["names"] if stats else None)

    def features(self, text: str) -> dict[str, np.ndarray]:
        pos = np.zeros(len(text), dtype=np.float32)
        k = 0
        for i, ch in enumerate(text):
            pos[i] = k
            k = 0 if ch == "\n" else k + 1
        return {"position_in_name": pos, "is_newline": np.array([c == "\n" for c in text], dtype=np.float32)}


@hookimpl
def register_domains(register):
    register(NamesDomain())

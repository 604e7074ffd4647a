"""Samples from a character n-gram model, Goldberg's way: the reference column of `gen eval`.

The model of order K counts, in the training text, which character follows each K-1-character
context; a sample continues its last K-1 characters by drawing from those counts (raised to
1/temperature), so it only ever writes strings the training text holds. A sample starts, like a
model's, after a document separator: at the context that follows a random separator in the
training text; a context never seen (the training text's very end) restarts it at a random one.
Every stream steps together in numpy. The table is built from at most SAMPLER_CHARS training
characters and cached beside the corpus (core/workspace.py CorpusDir.index), keyed by the
corpus's digest and the order.
"""

from __future__ import annotations

import random

import numpy as np

from gen.evals.baselines.ngram import BASE, extend

SAMPLER_CHARS = 4_000_000  # training characters the sampling table is built from
MIN_TEMPERATURE = 0.05  # below this the counts' powers overflow: sampled as at this temperature
TABLES = ("ngram_ctx", "ngram_next", "ngram_count", "ngram_starts")


def build(train: np.ndarray, order: int, separator: int | None) -> dict[str, np.ndarray]:
    """The table of order ``order``: distinct (context hash, next character) pairs sorted by
    context, their counts, and where contexts that follow a separator start."""
    x = np.ascontiguousarray(train[:SAMPLER_CHARS], dtype=np.int64)
    k = order - 1
    ctx = np.zeros(len(x) + 1, dtype=np.uint64)  # hashes of the k-windows starting at each position
    for j in range(1, k + 1):
        ctx = extend(ctx, x, j)
    n = len(x) - k  # positions with a context and a next character
    if n <= 0:
        return {name: np.zeros(0, dtype=np.int64) for name in TABLES}
    keys, nexts = ctx[:n], x[k:k + n]
    sort = np.lexsort((nexts, keys))
    pairs = np.stack([keys[sort].view(np.int64), nexts[sort]])  # (2, n)
    change = np.ones(n, dtype=bool)
    change[1:] = (pairs[:, 1:] != pairs[:, :-1]).any(axis=0)
    first = np.flatnonzero(change)
    counts = np.diff(np.append(first, n))
    starts = np.flatnonzero(x[:n] == separator) + 1 if separator is not None else np.zeros(0, dtype=np.int64)
    return {"ngram_ctx": keys[sort][first], "ngram_next": nexts[sort][first], "ngram_count": counts,
            "ngram_starts": starts[starts < n] if len(starts) else np.arange(min(n, 1))}


class NgramSampler:
    """Draws samples from a table made by :func:`build` (with the training ids it was built on)."""

    def __init__(self, table: dict[str, np.ndarray], train: np.ndarray, order: int) -> None:
        self.ctx, self.next, self.count = table["ngram_ctx"], table["ngram_next"], table["ngram_count"]
        self.starts = table["ngram_starts"]
        self.train = np.asarray(train[:SAMPLER_CHARS], dtype=np.int64)
        self.k = order - 1
        # the weight of a context's first character in its hash, BASE^(k-1) mod 2^64
        self.shift = np.uint64(pow(int(BASE), max(self.k - 1, 0), 1 << 64))
        # each context's counts over its largest (so count^(1/T) stays in (0, 1] whatever T)
        group = np.flatnonzero(np.r_[True, self.ctx[1:] != self.ctx[:-1]]) if len(self.ctx) else np.zeros(0, int)
        sizes = np.diff(np.append(group, len(self.ctx)))
        self.relative = self.count / np.repeat(np.maximum.reduceat(self.count, group), sizes) if len(group) \
            else np.zeros(0)

    def _contexts(self, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(hash, characters (n, k)) of the contexts starting at training positions ``at``."""
        chars = self.train[at[:, None] + np.arange(self.k)[None, :]] if self.k else np.zeros((len(at), 0), np.int64)
        h = np.zeros(len(at), dtype=np.uint64)
        for j in range(self.k):
            h = h * BASE + (chars[:, j].astype(np.uint64) + np.uint64(1))
        return h, chars

    def sample(self, lengths: list[int], temperature: float, rng: random.Random) -> list[np.ndarray]:
        """One id array per requested length (n streams stepped together)."""
        n = len(lengths)
        if n == 0 or len(self.count) == 0:
            return [np.zeros(0, dtype=np.int64) for _ in lengths]
        gen = np.random.default_rng(rng.getrandbits(64))
        # a slice's weights sum to at least 1 (its largest count's), so a global cumulative sum
        # keeps every slice's draw exact to ~1e-9
        weights = np.cumsum(self.relative ** (1.0 / max(temperature, MIN_TEMPERATURE)))
        h, hist = self._contexts(self.starts[gen.integers(0, len(self.starts), n)])
        out = np.zeros((n, max(lengths)), dtype=np.int64)
        for t in range(max(lengths)):
            lo, hi = np.searchsorted(self.ctx, h, "left"), np.searchsorted(self.ctx, h, "right")
            lost = lo == hi
            if lost.any():  # a context the table never saw: start that stream again
                h[lost], hist[lost] = self._contexts(gen.integers(0, len(self.train) - self.k, int(lost.sum())))
                lo[lost], hi[lost] = np.searchsorted(self.ctx, h[lost], "left"), np.searchsorted(self.ctx, h[lost], "right")
            below = np.where(lo > 0, weights[lo - 1], 0.0)
            pick = np.searchsorted(weights, below + gen.random(n) * (weights[hi - 1] - below), "right")
            ch = self.next[np.minimum(pick, hi - 1)]
            out[:, t] = ch
            if self.k:  # slide every context by the new character
                h = (h - (hist[:, 0].astype(np.uint64) + np.uint64(1)) * self.shift) * BASE + (ch.astype(np.uint64)
                                                                                                + np.uint64(1))
                hist = np.concatenate([hist[:, 1:], ch[:, None]], axis=1)
        return [out[i, :length] for i, length in enumerate(lengths)]

"""Character n-gram baselines: interpolated Kneser-Ney models of every order 1..K, in numpy.

What counting alone achieves on a corpus (Goldberg's reply to the char-rnn post), so a model's
loss can be read against it. Models are built from the training split and scored on the whole
validation split, in nats per character.

The formula (Chen and Goodman's interpolated Kneser-Ney with one absolute discount per order).
Write ``c(g)`` for how often the ``j``-character string ``g`` occurs in the training split,
``h`` for a context (the ``j-1`` characters before ``w``) and ``h'`` for ``h`` without its first
character. The model of order ``K`` predicts ``w`` after the last ``K-1`` characters ``h`` by

    P_K(w | h) = [max(c(hw) - D_K, 0) + D_K * T(h) * P'_{K-1}(w | h')] / S(h)   when S(h) > 0,
    P_K(w | h) = P'_{K-1}(w | h')                                          when S(h) = 0,

with ``S(h) = sum_w c(hw)`` and ``T(h)`` the number of distinct ``w`` with ``c(hw) > 0``. The
lower orders ``P'_j`` (``j < K``) have the same form with continuation counts in place of
counts: ``c'(g)`` is the number of distinct characters that precede ``g`` in the training split,
``S'(h) = sum_w c'(hw)``, ``T'(h)`` the number of ``w`` with ``c'(hw) > 0``, discount ``D'_j``.
Order 0 is uniform: ``P'_0(w) = 1 / V`` over the corpus vocabulary (train and validation), so
every validation character has a finite loss. Each order's discount comes from that order's
counts-of-counts: ``D = n1 / (n1 + 2 n2)``, where ``n1``/``n2`` are the numbers of distinct
strings counted once/twice (raw counts for ``D_K``, continuation counts for ``D'_j``); when
``n1 = 0`` (no string counted once) ``D = 0.5``. A validation character with only ``m < K-1``
characters before it in the validation split is predicted by ``P'_{m+1}`` (the longest order its
history allows, in its continuation form). The loss is ``-mean(log P(w_t | h_t))`` over every
validation character ``t``.

Strings are identified by 64-bit hashes (Horner's rule mod 2^64 over the character ids, one
order from the last by one more step); a collision between two distinct strings of the same
length is a 2^-64 event per pair. tests/evals/test_ngram.py recomputes the loss from the formula
above with plain dictionaries and matches it to 1e-9.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import numpy as np

from gen.core.errors import GenError

BASE = np.uint64(0x9E3779B97F4A7C15)  # odd: Horner's rule mod 2^64 keeps every character's bits
DEFAULT_ORDER = 12
MAX_ORDER = 64  # contexts longer than this say nothing more about a character corpus
NO_N1_DISCOUNT = 0.5  # the discount of an order where no string occurs exactly once
BYTES_PER_CHAR = 72  # peak bytes per training character of a build (hash arrays and their sorts)


@dataclass
class OrderResult:
    """One order's model: its validation loss and what it took."""

    order: int
    val_nats: float  # nats per validation character
    contexts: int  # distinct contexts of length order-1 in the training split
    grams: int  # distinct strings of length `order`
    discount: float  # D_order (raw counts)
    build_s: float  # seconds to count this order and score the validation split with it
    table_mb: float  # memory of this order's tables

    @property
    def val_bpc(self) -> float:
        return self.val_nats / math.log(2)

    def to_dict(self) -> dict:
        return {**asdict(self), "val_bpc": self.val_bpc}


@dataclass
class _Table:
    """Counts of the distinct strings of one order, and of their contexts, sorted by hash."""

    keys: np.ndarray  # (G,) uint64 string hashes, sorted
    counts: np.ndarray  # (G,) float64 c(g) or c'(g)
    ctx_keys: np.ndarray  # (C,) uint64 context hashes, sorted
    ctx_sum: np.ndarray  # (C,) float64 S(h)
    ctx_types: np.ndarray  # (C,) float64 T(h)
    discount: float

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.keys, self.counts, self.ctx_keys, self.ctx_sum, self.ctx_types))


def discount(counts: np.ndarray) -> float:
    """D = n1 / (n1 + 2 n2) from counts-of-counts (NO_N1_DISCOUNT when nothing occurs once)."""
    n1 = int(np.count_nonzero(counts == 1))
    n2 = int(np.count_nonzero(counts == 2))
    return n1 / (n1 + 2 * n2) if n1 else NO_N1_DISCOUNT


def extend(prev: np.ndarray, codes: np.ndarray, j: int) -> np.ndarray:
    """Hashes of every ``j``-long window from those of every ``(j-1)``-long one: one Horner step.
    ``prev[s]`` is the window starting at ``s``; so is the result's."""
    n = len(codes) - j + 1
    if n <= 0:
        return np.zeros(0, dtype=np.uint64)
    return prev[:n] * BASE + (codes[j - 1:].astype(np.uint64) + np.uint64(1))


def _table(strings: np.ndarray, contexts: np.ndarray) -> _Table:
    """The table of string occurrences ``strings`` (one hash per occurrence) whose contexts are
    ``contexts`` (the hash of each occurrence's first j-1 characters)."""
    keys, first, counts = np.unique(strings, return_index=True, return_counts=True)
    ctx_of = contexts[first]  # (G,) each distinct string's context
    ctx_keys, inverse, types = np.unique(ctx_of, return_inverse=True, return_counts=True)
    ctx_sum = np.bincount(inverse, weights=counts, minlength=len(ctx_keys))
    return _Table(keys, counts.astype(np.float64), ctx_keys, ctx_sum, types.astype(np.float64),
                  discount(counts))


def _continuation(longer: np.ndarray, shorter: np.ndarray, contexts: np.ndarray) -> _Table:
    """Continuation counts of the ``j``-strings: ``longer`` are the hashes of every (j+1)-window
    (starting at s), ``shorter`` of every j-window and ``contexts`` of every (j-1)-window. The
    j-string after a (j+1)-window's first character starts at s+1; c'(g) counts the distinct
    (j+1)-windows ending in g, that is the distinct characters before it."""
    _, first = np.unique(longer, return_index=True)
    suffix_at = first + 1  # where each distinct (j+1)-window's last j characters start
    return _table(shorter[suffix_at], contexts[suffix_at])


def _lookup(keys: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
    """values[key] for each query hash, 0 where the key is absent."""
    if len(keys) == 0:
        return np.zeros(len(query))
    at = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
    return np.where(keys[at] == query, values[at], 0.0)


def _interpolate(table: _Table, grams: np.ndarray, contexts: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """P(w|h) of one order for positions whose gram and context hashes are given, from the
    next lower order's probabilities ``lower`` at the same positions."""
    c = _lookup(table.keys, table.counts, grams)
    s = _lookup(table.ctx_keys, table.ctx_sum, contexts)
    t = _lookup(table.ctx_keys, table.ctx_types, contexts)
    d = table.discount
    with np.errstate(divide="ignore", invalid="ignore"):
        p = (np.maximum(c - d, 0.0) + d * t * lower) / s
    return np.where(s > 0, p, lower)


def check_order(order: int, n_train: int) -> None:
    """Refuse an order the corpus cannot support, naming the limit."""
    if not 1 <= order <= MAX_ORDER:
        raise GenError(f"--order {order}: choose 1 to {MAX_ORDER}")
    if order > n_train:
        raise GenError(f"--order {order} is longer than the training split ({n_train} characters); "
                       f"use --order {max(1, n_train)} or less")


def memory_needed(n_train: int, n_val: int) -> int:
    """Bytes a build holds at its peak (the hash windows of three orders and their sorts)."""
    return BYTES_PER_CHAR * (n_train + n_val)


def _walk(train: np.ndarray, val: np.ndarray, vocab_size: int, max_order: int):
    """(order, that order's table, P(w_t | h_t) at every validation position) for orders 1..max_order."""
    check_order(max_order, len(train))
    if len(val) == 0:
        raise GenError("the corpus has no validation text to score; prepare it with a validation share")
    x = np.ascontiguousarray(train, dtype=np.int64)
    y = np.ascontiguousarray(val, dtype=np.int64)
    # hashes of every window of the current lengths, training (t*) and validation (v*) text;
    # the empty window's hash is 0 wherever it starts
    t_prev, t_cur = np.zeros(len(x) + 1, dtype=np.uint64), extend(np.zeros(len(x) + 1, np.uint64), x, 1)
    v_prev, v_cur = np.zeros(len(y) + 1, dtype=np.uint64), extend(np.zeros(len(y) + 1, np.uint64), y, 1)
    lower = np.full(len(y), 1.0 / vocab_size)  # P'_{j-1} at every validation position
    for j in range(1, max_order + 1):
        # validation positions t >= j-1 have a full context: their windows start at t-j+1
        start = j - 1
        grams, ctxs = v_cur, v_prev[:len(v_cur)]
        top = _table(t_cur, t_prev[:len(t_cur)])
        p_top = lower.copy()
        p_top[start:] = _interpolate(top, grams, ctxs, lower[start:])
        yield j, top, p_top
        if j == max_order:
            return
        t_next = extend(t_cur, x, j + 1)
        cont = _continuation(t_next, t_cur, t_prev)  # this order's continuation table feeds the next
        lower[start:] = _interpolate(cont, grams, ctxs, lower[start:])
        v_prev, v_cur = v_cur, extend(v_cur, y, j + 1)
        t_prev, t_cur = t_cur, t_next


def kn_losses(train: np.ndarray, val: np.ndarray, vocab_size: int, max_order: int = DEFAULT_ORDER,
              on_order=None) -> list[OrderResult]:
    """Validation loss of the interpolated Kneser-Ney model of every order 1..max_order (see the
    module docstring). ``train``/``val`` are character ids; ``on_order(result)`` is called as
    each order finishes."""
    results = []
    t0 = time.perf_counter()
    for j, top, p in _walk(train, val, vocab_size, max_order):
        now = time.perf_counter()
        res = OrderResult(j, float(-np.mean(np.log(p))), len(top.ctx_keys), len(top.keys), top.discount,
                          now - t0, top.nbytes / 1e6)
        t0 = now
        results.append(res)
        if on_order is not None:
            on_order(res)
    return results


def char_nats(train: np.ndarray, text: np.ndarray, vocab_size: int, order: int) -> np.ndarray:
    """-log P(w_t | h_t) of the order-``order`` model at every position of ``text``."""
    for j, _top, p in _walk(train, text, vocab_size, order):
        if j == order:
            return -np.log(p)
    raise AssertionError("unreachable: _walk yields every order")


def best(results: list[OrderResult]) -> OrderResult:
    """The order with the lowest validation loss."""
    return min(results, key=lambda r: r.val_nats)

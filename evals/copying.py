"""Copy detection: how much of a sample was copied verbatim from the training text.

A suffix array over the training text (built with numpy prefix doubling, cached in memory and
beside the prepared corpus as ``copy_index.npy``) answers, for every position of a sample, the
length of the longest prefix of the rest of the sample that occurs anywhere in training (the
*matching statistics*). From those come the two figures every domain reports:

* ``copy_longest``: the longest span copied verbatim from training (characters);
* ``copy_share``: the share of the sample's ``NGRAM``-character windows found in training.

Real held-out text scores low but not zero (common phrases recur); a memorising model scores
far higher. What real text scores, and what building and querying the index cost, are in
evals/BENCHMARKS.md ("Design measurements"); a query costs one binary search per sample position.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gen.core.domain import CheckResult, EvalContext, Issue, MetricSpec, SampleMetric, excerpt

if TYPE_CHECKING:
    from gen.core.data import CorpusData

NGRAM = 20  # characters: long enough that a shared window is rarely a common phrase
# bigger corpora are indexed on their first this-many characters (bounds the build's time and memory)
MAX_INDEX_CHARS = 32_000_000
REPORT_SPAN = 60  # a copied span at least this long is reported as an issue
CACHE_NAME = "copy_index.npy"


def suffix_array(ids: np.ndarray) -> np.ndarray:
    """Suffix array of an integer sequence (ids ordered like the characters they stand for).

    Prefix doubling (Manber-Myers with Larsson-Sadakane's refinement): sort by the first ``k``
    symbols packed into one int64, then repeatedly re-sort only the groups still tied, by the
    rank of the suffix ``k`` further on, doubling ``k``. A suffix's rank is the first slot of
    its group in the array, so settled groups never move and need no more work.
    """
    n = len(ids)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    sym = np.asarray(ids, dtype=np.int64) + 1  # 0 is reserved for "past the end"
    bits = int(sym.max()).bit_length()
    k = max(1, min(n, 62 // bits))
    key = np.zeros(n, dtype=np.int64)
    for j in range(k):  # key[i] = sym[i], sym[i+1], ... sym[i+k-1] packed, 0-padded past the end
        key <<= bits
        key[: n - j] |= sym[j:] if j else sym
    sa = np.argsort(key, kind="stable")
    rank = np.empty(n + 1, dtype=np.int64)
    rank[n] = -1  # "past the end" sorts first
    slots = np.arange(n)
    todo = _settle(key[sa], slots, sa, rank)
    while len(todo):
        members = sa[todo]
        nxt = members + k
        sec = rank[np.minimum(nxt, n)]  # rank of the suffix k further on (-1 past the end)
        # primary key: current group (= its first slot); secondary: the shifted suffix's rank
        pair = rank[members] * (n + 2) + sec + 1  # < (n + 2)^2: fits int64 for any text we index
        order = np.argsort(pair, kind="quicksort")
        sa[todo] = members[order]  # todo slots are sorted, and groups are contiguous runs of them
        todo = _settle(pair[order], todo, sa, rank)
        k *= 2
    return sa


def _settle(sorted_key: np.ndarray, slots: np.ndarray, sa: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """Give each suffix at ``slots`` (sorted by ``sorted_key``) the first slot of its group as
    rank; return the slots of groups that are still tied (size > 1)."""
    m = len(slots)
    new_group = np.ones(m, dtype=bool)
    new_group[1:] = sorted_key[1:] != sorted_key[:-1]
    new_group[1:] |= slots[1:] != slots[:-1] + 1  # a gap in slots always starts a new group
    first = np.where(new_group, slots, 0)
    np.maximum.accumulate(first, out=first)
    rank[sa[slots]] = first
    tied = np.ones(m, dtype=bool)  # tied unless its group has size 1
    starts = np.flatnonzero(new_group)
    sizes = np.diff(np.append(starts, m))
    tied[starts[sizes == 1]] = False
    return slots[tied]


def dense_codes(text: str) -> np.ndarray:
    """The text's code points renumbered 0..distinct-1 in code-point order (so packing uses
    few bits and string order is kept); a presence table is O(n), unlike a sort."""
    cps = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    if len(cps) == 0:
        return np.zeros(0, dtype=np.int64)
    present = np.zeros(int(cps.max()) + 1, dtype=np.int64)
    present[cps] = 1
    return (np.cumsum(present) - 1)[cps]


class CopyIndex:
    """A training text and its suffix array; answers "how much of this was copied?"."""

    def __init__(self, text: str, sa: np.ndarray | None = None) -> None:
        self.text = text
        if sa is None:
            sa = suffix_array(dense_codes(text))
        # int32 halves the memory (and the cache file) for anything under 2 G characters
        self.sa = sa.astype(np.int32 if len(text) < 2**31 else np.int64, copy=False)

    def __len__(self) -> int:
        return len(self.text)

    def _lcp(self, p: int, query: str, i: int) -> int:
        """Length of the common prefix of text[p:] and query[i:] (galloping slice compares)."""
        text, limit = self.text, min(len(self.text) - p, len(query) - i)
        lo, step = 0, 16
        while lo < limit:  # gallop while blocks match, then binary search inside the last block
            hi = min(limit, lo + step)
            if text[p + lo:p + hi] == query[i + lo:i + hi]:
                lo, step = hi, step * 2
                continue
            a, b = lo, hi - 1  # the mismatch is in [lo, hi): find the longest matching prefix
            while a < b:
                mid = (a + b + 1) // 2
                if text[p + lo:p + mid] == query[i + lo:i + mid]:
                    a = mid
                else:
                    b = mid - 1
            return a
        return lo

    def longest_match(self, query: str, i: int = 0, cap: int = 512) -> tuple[int, int]:
        """(length, training offset) of the longest prefix of ``query[i:]`` found in training.

        Binary search for where ``query[i:i+cap]`` would sit among the sorted suffixes; the
        suffix sharing the longest prefix with it is one of the two neighbours of that spot.
        The search compares ``cap`` characters: a match longer than that is still measured in
        full, but among several training places sharing ``cap`` characters the one measured may
        not be the longest (a lower bound only for copies over 512 characters).
        """
        text, sa = self.text, self.sa
        q = query[i:i + cap]
        lo, hi = 0, len(sa)
        while lo < hi:
            mid = (lo + hi) // 2
            p = int(sa[mid])
            if text[p:p + cap] < q:
                lo = mid + 1
            else:
                hi = mid
        best, where = 0, -1
        for j in (lo - 1, lo):
            if 0 <= j < len(sa):
                p = int(sa[j])
                n = self._lcp(p, query, i)
                if n > best:
                    best, where = n, p
        return best, where

    def matching_statistics(self, query: str) -> np.ndarray:
        """ms[i] = length of the longest prefix of ``query[i:]`` occurring in training."""
        ms = np.zeros(len(query), dtype=np.int64)
        for i in range(len(query)):
            ms[i] = self.longest_match(query, i)[0]
        return ms

    def score(self, query: str, ngram: int = NGRAM) -> dict[str, float | int | None]:
        """Longest copied span (with where it is) and the share of copied ``ngram`` windows."""
        if not query or not self.text:
            return {"longest": 0, "offset": -1, "train_offset": -1, "share": None}
        ms = self.matching_statistics(query)
        i = int(ms.argmax())
        _, where = self.longest_match(query, i) if ms[i] else (0, -1)
        windows = len(query) - ngram + 1
        share = float((ms[:windows] >= ngram).mean()) if windows > 0 else None
        return {"longest": int(ms[i]), "offset": i, "train_offset": where, "share": share}


_cache: dict[tuple[str, int, float], CopyIndex] = {}


def index_for(data: CorpusData, max_chars: int = MAX_INDEX_CHARS) -> CopyIndex:
    """The copy index of a prepared corpus's training split, built once per process and kept
    beside the corpus (``copy_index.npy``: re-preparing replaces the folder, so it never goes
    stale); an unwritable corpus folder just means rebuilding next time."""
    train = Path(data.path) / "train.bin"
    key = (str(train.resolve()), train.stat().st_size, train.stat().st_mtime)
    if key in _cache:
        return _cache[key]
    text = data.text("train", max_chars)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    cache = Path(data.path) / CACHE_NAME
    sa = None
    try:
        with open(cache, "rb") as fh:
            if fh.read(16).decode("ascii", "replace") == digest:
                loaded = np.load(fh, allow_pickle=False)
                if len(loaded) == len(text):
                    sa = loaded
    except (OSError, ValueError):
        sa = None
    idx = CopyIndex(text, sa)
    if sa is None:
        try:
            tmp = cache.with_suffix(".tmp")
            with open(tmp, "wb") as fh:
                fh.write(digest.encode("ascii"))
                np.save(fh, idx.sa, allow_pickle=False)
            tmp.replace(cache)
        except OSError:
            pass
    _cache[key] = idx
    return idx


class CopyingMetric(SampleMetric):
    """Verbatim copying from the ``--against`` training text, for samples of any domain."""

    name = "copying"
    metrics = (
        MetricSpec("copy_longest", False, "longest span copied verbatim from the training text (chars)"),
        MetricSpec("copy_share", False, f"share of {NGRAM}-char windows found verbatim in the training text"),
    )

    def check(self, sample: str, ctx: EvalContext) -> CheckResult:
        if ctx.data is None:
            return CheckResult({"copy_longest": None, "copy_share": None})
        try:
            idx = index_for(ctx.data)
            s = idx.score(sample)
        except Exception as exc:  # noqa: BLE001 - a check never raises; report why instead
            return CheckResult({"copy_longest": None, "copy_share": None},
                               [Issue("copying_error", f"copy index unavailable: {type(exc).__name__}: {exc}")])
        res = CheckResult({"copy_longest": float(s["longest"]), "copy_share": s["share"]})
        if s["longest"] >= REPORT_SPAN:
            off = int(s["offset"])
            span = sample[off:off + int(s["longest"])]
            res.issues.append(Issue("copied", f"{s['longest']} characters copied verbatim from training "
                                              f"(training offset {s['train_offset']})", off,
                                    excerpt(span, 0, 40)))
        return res


def copy_scores(train_text: str, samples: Sequence[str], ngram: int = NGRAM) -> list[dict]:
    """One-off scoring without a prepared corpus (scripts, notebooks)."""
    idx = CopyIndex(train_text)
    return [idx.score(s, ngram) for s in samples]

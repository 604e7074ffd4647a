"""Suffix arrays and longest-match lookups over them, many query positions at once.

Used by the copy detector (copying.py): the suffix array of the training text is built once
per corpus (numpy prefix doubling) and cached; :class:`Matcher` then answers "how long is the
longest prefix of the sample at position i that occurs in training, and where?" for a whole
batch of positions with numpy calls, not a Python binary search per position.

The trick that makes the search vectorisable: characters become small codes (1 or 2 bytes,
big-endian), so the 8 bytes starting at any character, read as one big-endian uint64, order
like the 4 or 8 characters they hold. A binary-search step for every pending query is then
two gathers (the suffix array, the text's word) and an integer compare; only queries still tied
after a word read the next one.
"""

from __future__ import annotations

import numpy as np

from gen.core.vocab import code_points
from gen.evals.copydetect.compiled import FAST

FEW = 8  # pairs still tied after a word: compared one by one (cheaper than a numpy round each)
CAP = 512  # characters the search compares; a longer match is measured in full, but among several
# training places sharing 512 characters the one measured may not be the longest


def suffix_array(ids: np.ndarray) -> np.ndarray:
    """Suffix array of an integer sequence (ids ordered like the characters they stand for).

    Prefix doubling (Manber-Myers with Larsson-Sadakane's refinement): sort by the first ``k``
    symbols packed into one int64, then repeatedly re-sort only the groups still tied, by the
    rank of the suffix ``k`` further on, doubling ``k``. A suffix's rank is the first slot of
    its group in the array, so settled groups never move and need no more work. Positions and
    ranks are int32 below 2^31 characters, and each temporary is dropped once used: LaTeX's 26M
    characters peaked at 3.0 GB with int64 throughout (evals/BENCHMARKS.md).
    """
    n = len(ids)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    index = np.int32 if n + 2 < 2**31 else np.int64  # positions, slots and ranks
    sym = np.asarray(ids, dtype=np.int64) + 1  # 0 is reserved for "past the end"
    bits = int(sym.max()).bit_length()
    k = max(1, min(n, 62 // bits))
    key = np.zeros(n, dtype=np.int64)
    for j in range(k):  # key[i] = sym[i], sym[i+1], ... sym[i+k-1] packed, 0-padded past the end
        key <<= bits
        key[: n - j] |= sym[j:] if j else sym
    del sym
    sa = np.argsort(key, kind="stable").astype(index)
    key = key[sa]  # sorted
    rank = np.empty(n + 1, dtype=index)
    rank[n] = -1  # "past the end" sorts first
    todo = _settle(key, np.arange(n, dtype=index), sa, rank)
    del key
    while len(todo):
        members = sa[todo]
        sec = rank[np.minimum(members.astype(np.int64) + k, n)]  # rank k further on (-1: past the end)
        # primary key: current group (= its first slot); secondary: the shifted suffix's rank
        pair = rank[members].astype(np.int64) * (n + 2) + sec + 1  # < (n + 2)^2: fits int64
        del sec
        order = np.argsort(pair, kind="quicksort")
        sa[todo] = members[order]  # todo slots are sorted, and groups are contiguous runs of them
        del members
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
    first = np.where(new_group, slots, 0).astype(slots.dtype, copy=False)
    np.maximum.accumulate(first, out=first)
    rank[sa[slots]] = first
    tied = np.ones(m, dtype=bool)  # tied unless its group has size 1
    starts = np.flatnonzero(new_group)
    sizes = np.diff(np.append(starts, m))
    tied[starts[sizes == 1]] = False
    return slots[tied]


def code_table(text: str) -> tuple[np.ndarray, np.ndarray]:
    """(codes, lut): the text's code points renumbered 0..distinct-1 in code-point order (so
    packing uses few bits and string order is kept), and the table code point -> code that made
    them (-1 for a code point the text lacks; its last slot is always -1). A presence table is
    O(n), unlike a sort."""
    cps = code_points(text)
    lut = code_lut(cps)
    return lut[cps], lut


def code_lut(cps: np.ndarray) -> np.ndarray:
    """The table of :func:`code_table` for a text with these code points (all of them, or only
    the distinct ones: the table is the same)."""
    present = np.zeros(int(cps.max()) + 2 if len(cps) else 1, dtype=np.int64)
    present[cps] = 1
    return np.where(present == 1, np.cumsum(present) - 1, -1)


def _words(buf: np.ndarray) -> np.ndarray:
    """word[i] = the 8 bytes of ``buf`` from character i on, as one big-endian uint64 (a view:
    no copy; the reads are unaligned, which numpy's gathers handle)."""
    n = (buf.nbytes - 8) // buf.itemsize + 1
    return np.ndarray((n,), dtype=">u8", buffer=buf, strides=(buf.itemsize,))


class Matcher:
    """The training text's codes, packed for word compares, and its suffix array."""

    def __init__(self, codes: np.ndarray, sa: np.ndarray, n_codes: int) -> None:
        # 0 is "past the end" (sorts first, matches nothing); the top value marks a query
        # character training never has, and the gap between two queries (matches nothing)
        self.width = 1 if n_codes + 2 <= 0xFF else 2
        self.dtype = np.dtype(np.uint8) if self.width == 1 else np.dtype(">u2")
        self.chars_per_word = 8 // self.width
        self.none = 0xFF if self.width == 1 else 0xFFFF
        buf = np.zeros(len(codes) + CAP + 8, dtype=self.dtype)
        buf[:len(codes)] = np.asarray(codes) + 1
        self.buf, self.words, self.sa, self.n = buf, _words(buf), sa, len(codes)
        # a query code's packed form (code + 1), and "none" last, where code -1 wraps to
        self.packed = np.append(np.arange(1, n_codes + 1), self.none).astype(self.dtype)

    def pack(self, joined: np.ndarray) -> np.ndarray:
        """The queries' codes end to end, -1 after each (and for a character training never
        has), in this matcher's layout: "none" for each -1, and CAP + 8 more after the last."""
        buf = np.full(len(joined) + CAP + 8, self.none, dtype=self.dtype)
        np.take(self.packed, joined, mode="wrap", out=buf[:len(joined)])  # one gather, not one per query
        return buf

    def longest(self, qbuf: np.ndarray, pos: np.ndarray, group: np.ndarray | None = None,
                shared: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(length, training offset) of the longest prefix of the query text from each of
        ``pos`` (indices into ``qbuf``, from :meth:`pack`) that occurs in training. ``group``
        (K, 2), where known (else -1): the slice of the suffix array whose suffixes share the
        query's first ``shared`` characters (start, size); the search then bisects that slice,
        comparing from character ``shared`` on, instead of the whole array from the first
        (a rare window: 1-3 steps of one word instead of 25 steps of three or more). Compiled
        where built (evals/copydetect/compiled.py): the same search, one position at a time."""
        if FAST is not None:
            best, where = np.empty(len(pos), dtype=np.int64), np.empty(len(pos), dtype=np.int64)
            rows = b"" if group is None else np.ascontiguousarray(group)
            FAST.longest(self.buf, self.n, self.sa, self.sa.itemsize, qbuf, np.ascontiguousarray(pos, dtype=np.int64),
                         rows, 0 if group is None else rows.itemsize, shared, self.width, self._span(0),
                         self._span(shared), best, where)
            return best, where
        qwords = _words(qbuf)
        lo = np.zeros(len(pos), dtype=np.int64)
        hi = np.full(len(pos), self.n, dtype=np.int64)
        whole = np.arange(len(pos))
        if group is not None:
            known = group[:, 0] >= 0
            lo[known], hi[known] = group[known, 0], group[known, 0] + group[known, 1]
            self._bisect(np.flatnonzero(known), pos, qbuf, lo, hi, shared)
            whole = np.flatnonzero(~known)
        self._bisect(whole, pos, qbuf, lo, hi, 0)
        # the longest match is with one of the two suffixes beside that spot (ties: the first)
        best = np.zeros(len(pos), dtype=np.int64)
        where = np.full(len(pos), -1, dtype=np.int64)
        for j in (lo - 1, lo):
            ok = np.flatnonzero((j >= 0) & (j < self.n))
            p = self.sa[j[ok]].astype(np.int64)
            n = self._common(p, pos[ok], qwords, qbuf)
            better = n > best[ok]
            best[ok[better]], where[ok[better]] = n[better], p[better]
        return best, where

    def _bisect(self, todo: np.ndarray, pos: np.ndarray, qbuf: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                skip: int) -> None:
        """Lower bound, within [lo, hi), of each query's first CAP characters among the suffixes
        (whose first ``skip`` characters all equal the query's)."""
        todo = todo[lo[todo] < hi[todo]]
        while len(todo):
            mid = (lo[todo] + hi[todo]) >> 1
            less = self._less(self.sa[mid], pos[todo], qbuf, skip)
            lo[todo[less]] = mid[less] + 1
            hi[todo[~less]] = mid[~less]
            todo = todo[lo[todo] < hi[todo]]

    def _span(self, skip: int) -> int:
        """Characters a search step compares from character ``skip`` on: CAP - skip, rounded up
        to whole words."""
        return -(-(CAP - skip) // self.chars_per_word) * self.chars_per_word

    def _less(self, p: np.ndarray, q: np.ndarray, qbuf: np.ndarray, skip: int = 0) -> np.ndarray:
        """text[p:] < query[q:] on characters [skip, skip + span) (the first CAP, rounded up to
        whole words; the first ``skip`` known to be equal), word by word (ties read on). A few
        pairs still tied after a word are compared whole, as bytes (one memcmp each), instead of
        a numpy round per word."""
        out = np.zeros(len(p), dtype=bool)
        tied, qwords, end = np.arange(len(p)), _words(qbuf), skip + self._span(skip)
        for step in range(skip, end, self.chars_per_word):
            a, b = self.words[p[tied] + step], qwords[q[tied] + step]
            differ = a != b
            out[tied[differ]] = a[differ] < b[differ]
            tied = tied[~differ]
            if len(tied) <= FEW:
                for t in tied:  # big-endian codes: byte order is character order
                    lo = step + self.chars_per_word
                    out[t] = self.buf[p[t] + lo:p[t] + end].tobytes() < qbuf[q[t] + lo:q[t] + end].tobytes()
                break
        return out

    def _common(self, p: np.ndarray, q: np.ndarray, qwords: np.ndarray, qbuf: np.ndarray) -> np.ndarray:
        """Length of the common prefix of text[p:] and query[q:], per pair: word by word for the
        first CAP characters (a few pairs still tied: one numpy compare each), then (a copy
        longer than that: rare) slice compares."""
        out = np.full(len(p), -1, dtype=np.int64)
        tied = np.arange(len(p))
        for step in range(0, CAP, self.chars_per_word):
            x = self.words[p[tied] + step] ^ qwords[q[tied] + step]
            differ = np.flatnonzero(x)
            if len(differ):  # the first differing byte of the big-endian words
                first = np.argmax(x[differ].astype(">u8").view(np.uint8).reshape(-1, 8) != 0, axis=1)
                out[tied[differ]] = step + first // self.width
            tied = tied[x == 0]
            if len(tied) <= FEW:
                lo = step + self.chars_per_word
                for t in tied:
                    ne = np.flatnonzero(self.buf[p[t] + lo:p[t] + CAP] != qbuf[q[t] + lo:q[t] + CAP])
                    out[t] = lo + int(ne[0]) if len(ne) else CAP + self._gallop(int(p[t]) + CAP, int(q[t]) + CAP,
                                                                                  qbuf)
                return out
        for t in tied:
            out[t] = CAP + self._gallop(int(p[t]) + CAP, int(q[t]) + CAP, qbuf)
        return out

    def _gallop(self, p: int, q: int, qbuf: np.ndarray) -> int:
        """Common prefix of text[p:] and query[q:] by doubling slice compares, then bisection."""
        limit = min(self.n - p, len(qbuf) - CAP - q)
        lo, step = 0, 64
        while lo < limit:
            hi = min(limit, lo + step)
            if np.array_equal(self.buf[p + lo:p + hi], qbuf[q + lo:q + hi]):
                lo, step = hi, step * 2
                continue
            a, b = lo, hi - 1
            while a < b:
                mid = (a + b + 1) // 2
                if np.array_equal(self.buf[p + lo:p + mid], qbuf[q + lo:q + mid]):
                    a = mid
                else:
                    b = mid - 1
            return a
        return max(lo, 0)

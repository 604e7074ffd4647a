"""Copy detection: how much of a sample was copied verbatim from the training text.

Two structures over the training text, built once per corpus and cached beside it:

* the sorted 64-bit hashes of every ``NGRAM``-character window (``copy_grams.npy``), and
* a suffix array (numpy prefix doubling, ``copy_index.npy``).

A batch of samples is scored without a per-character Python loop: every window of every sample
is hashed at once (Horner's rule over ``NGRAM`` shifted array slices, arithmetic mod 2^64) and
looked up with one ``searchsorted``. That gives

* ``copy_share``: the share of the sample's ``NGRAM``-character windows found in training, and
* the *runs* of consecutive found windows: only inside a run can a copy of ``NGRAM`` or more
  characters lie. ``copy_longest``, the longest span copied verbatim, is then measured exactly
  with the suffix array, run by run from the longest, stopping once no run can beat the best
  (a contiguous copy costs one lookup; a splice of several copies one per position until no
  later start can beat the best, at most ``MAX_LOOKUPS``, after which the figure is a lower
  bound and the sample gets a ``budget`` issue); shorter shared spans are common phrases, not
  copies, and count as 0.

A 64-bit hash collision could count a window as found that is not: with a random base the
chance is about (windows x training windows) / 2^64, and copy_longest is exact whatever happens
(the suffix array checks it). Real held-out text scores low but not zero; a memorising model
scores far higher. Figures in evals/BENCHMARKS.md ("Design measurements", "Eval throughput").
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gen.core.domain import CheckResult, EvalContext, Issue, MetricSpec, SampleMetric, excerpt
from gen.core.statscache import corpus_digest

if TYPE_CHECKING:
    from gen.core.data import CorpusData

NGRAM = 20  # characters: long enough that a shared window is rarely a common phrase
# bigger corpora are indexed on their first this-many characters (bounds the build's time and memory)
MAX_INDEX_CHARS = 32_000_000
REPORT_SPAN = 60  # a copied span at least this long is reported as an issue
CACHE_NAME = "copy_index.npy"
GRAMS_NAME = "copy_grams.npy"
BITS_NAME = "copy_bits.npy"  # the presence filter (about 1 s to build for the kernel, 20 ms to load)
HASH_BASE = np.uint64(0x9E3779B97F4A7C15)  # odd, 64-bit: Horner's rule mod 2^64 mixes every character
BUILD_BLOCK = 1 << 22  # training windows hashed per block (bounds the build's temporaries)
QUERY_BLOCK = 1 << 20  # sample windows looked up per block
MAX_LOOKUPS = 64  # exact suffix-array lookups per sample; past that copy_longest is a lower bound


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


def code_table(text: str) -> tuple[np.ndarray, np.ndarray]:
    """(codes, lut): the text's code points renumbered 0..distinct-1 in code-point order (so
    packing uses few bits and string order is kept), and the table code point -> code that made
    them (-1 for a code point the text lacks; its last slot is always -1). A presence table is
    O(n), unlike a sort."""
    cps = np.frombuffer(text.encode("utf-32-le", errors="surrogatepass"), dtype=np.uint32)
    present = np.zeros(int(cps.max()) + 2 if len(cps) else 1, dtype=np.int64)
    present[cps] = 1
    lut = np.where(present == 1, np.cumsum(present) - 1, -1)
    return lut[cps], lut


def dense_codes(text: str) -> np.ndarray:
    """The codes of :func:`code_table`."""
    return code_table(text)[0]


def window_hashes(codes: np.ndarray, n: int = NGRAM) -> np.ndarray:
    """Hash of every ``n``-long window of ``codes`` (int64, -1 = a character training never has):
    (len - n + 1,) uint64, by Horner's rule over ``n`` shifted slices. A window holding a -1
    hashes like any other; :meth:`CopyIndex.found` masks such windows out."""
    w = len(codes) - n + 1
    if w <= 0:
        return np.zeros(0, dtype=np.uint64)
    sym = (codes + 2).astype(np.uint64)  # >= 1: a zero symbol would let leading zeros collide
    h = np.zeros(w, dtype=np.uint64)
    for j in range(n):
        h *= HASH_BASE
        h += sym[j:j + w]
    return h


def sorted_unique(a: np.ndarray) -> np.ndarray:
    """np.unique by sorting: for 10 million uint64 hashes 0.2 s, where np.unique (numpy 2's
    hash-based path) took 14 s on this machine."""
    s = np.sort(a)
    if len(s) < 2:
        return s
    keep = np.empty(len(s), dtype=bool)
    keep[0] = True
    np.not_equal(s[1:], s[:-1], out=keep[1:])
    return s[keep]


BITS_PER_GRAM = 24  # presence bits per training window: about 1 - e^(-1/24) = 4% false "maybe"s
MAX_PRESENCE_BITS = 1 << 30  # 128 MB at most (the kernel subset's 11M windows: 2^28 bits, 32 MB)


def presence_size(n_grams: int) -> int:
    """Bits of the presence filter for ``n_grams`` training windows: a power of two."""
    return 1 << max(6, (min(MAX_PRESENCE_BITS, BITS_PER_GRAM * max(n_grams, 1)) - 1).bit_length())


def presence_bits(grams: np.ndarray) -> tuple[np.uint64, np.ndarray]:
    """(shift, bits): one bit per value of a hash's top bits, set for every training window
    (a one-hash Bloom filter). ``grams`` is sorted, so its top bits are too, and the bytes are
    filled with one ``bitwise_or.reduceat`` over runs of equal byte index, not a Python loop."""
    n_bits = presence_size(len(grams))
    shift = np.uint64(64 - (n_bits.bit_length() - 1))
    bits = np.zeros(n_bits // 8, dtype=np.uint8)
    if len(grams):
        top = grams >> shift
        byte = top >> np.uint64(3)
        val = np.left_shift(np.uint8(1), (top & np.uint64(7)).astype(np.uint8))
        starts = np.flatnonzero(np.concatenate([[True], byte[1:] != byte[:-1]]))
        bits[byte[starts]] = np.bitwise_or.reduceat(val, starts)
    return shift, bits


def gram_table(codes: np.ndarray, n: int = NGRAM) -> np.ndarray:
    """Sorted distinct hashes of every ``n``-window of the training codes, hashed in blocks."""
    w = len(codes) - n + 1
    parts = [sorted_unique(window_hashes(codes[lo:min(len(codes), lo + BUILD_BLOCK + n - 1)], n))
             for lo in range(0, max(w, 0), BUILD_BLOCK)]
    return sorted_unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.uint64)


_NO_CODES = np.zeros(0, dtype=np.int64)
_SEP = np.full(1, -1, dtype=np.int64)


class CopyIndex:
    """A training text, its window hashes and suffix array; answers "how much was copied?"."""

    def __init__(self, text: str, sa: np.ndarray | None = None, grams: np.ndarray | None = None,
                 bits: np.ndarray | None = None) -> None:
        self.text = text
        codes, self.lut = code_table(text)  # the lut encodes queries (-1: never in training)
        if sa is None:
            sa = suffix_array(codes)
        # int32 halves the memory (and the cache file) for anything under 2 G characters
        self.sa = sa.astype(np.int32 if len(text) < 2**31 else np.int64, copy=False)
        self.grams = gram_table(codes) if grams is None else grams
        n_bits = presence_size(len(self.grams))
        if bits is not None and bits.dtype == np.uint8 and len(bits) * 8 == n_bits:
            self.shift, self.bits = np.uint64(64 - (n_bits.bit_length() - 1)), bits
        else:
            self.shift, self.bits = presence_bits(self.grams)

    def encode(self, query: str) -> np.ndarray:
        """The query in training codes; characters training never has are -1."""
        cps = np.frombuffer(query.encode("utf-32-le", errors="surrogatepass"), dtype=np.uint32).astype(np.int64)
        return self.lut[np.minimum(cps, len(self.lut) - 1)]  # the last slot is always -1

    def found(self, codes: np.ndarray) -> np.ndarray:
        """found[i]: the NGRAM-window at i occurs in training. bool (len - NGRAM + 1,). Looked up
        in blocks of QUERY_BLOCK windows, so a 10 MB sample's temporaries stay near 100 MB."""
        w = len(codes) - NGRAM + 1
        if w > QUERY_BLOCK:
            return np.concatenate([self._found(codes[lo:min(len(codes), lo + QUERY_BLOCK + NGRAM - 1)])
                                   for lo in range(0, w, QUERY_BLOCK)])
        return self._found(codes)

    def _found(self, codes: np.ndarray) -> np.ndarray:
        h = window_hashes(codes)
        if not len(h) or not len(self.grams):
            return np.zeros(len(h), dtype=bool)
        # the presence bits rule most windows out with one gather (a window of text training
        # lacks is almost always absent); only the rest are searched in the sorted table
        top = h >> self.shift
        maybe = np.flatnonzero((self.bits[top >> np.uint64(3)] >> (top & np.uint64(7)).astype(np.uint8)) & 1)
        hit = np.zeros(len(h), dtype=bool)
        if len(maybe):
            # looked up in sorted order: each search starts where the last ended, so the table
            # is read front to back instead of at random (8x faster on the kernel's 11M windows)
            hm = h[maybe]
            order = np.argsort(hm, kind="stable")
            hs = hm[order]
            pos = np.searchsorted(self.grams, hs)
            hit[maybe[order]] = self.grams[np.minimum(pos, len(self.grams) - 1)] == hs
        bad = np.cumsum(np.concatenate([[0], codes < 0]))  # windows holding an unknown character
        return hit & (bad[NGRAM:NGRAM + len(h)] == bad[:len(h)])

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
        # bisect's loop runs in C, calling only the key (under the profiler 0.30 -> 0.16 s for the
        # kernel's 2,557 lookups per 0.4 MB; evals/BENCHMARKS.md)
        lo = bisect_left(sa, query[i:i + cap], key=lambda p: text[p:p + cap])
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

    def score(self, query: str) -> dict[str, float | int | bool | None]:
        """Longest copied span of NGRAM or more characters (0 if none; with where it is), the
        share of copied NGRAM-windows, and whether the lookup budget cut the search short."""
        return self.score_many([query])[0]

    def score_many(self, queries: Sequence[str]) -> list[dict[str, float | int | bool | None]]:
        """:meth:`score` for a batch: all windows of all queries hashed and looked up at once."""
        if not queries:
            return []
        # a query shorter than a window (a name) has nothing to look up: it is not even encoded
        codes = [self.encode(q) if len(q) >= NGRAM else _NO_CODES for q in queries]
        parts = [part for c in codes for part in (c, _SEP)]  # -1 between: no window spans two
        joined = np.concatenate(parts)
        found_all = self.found(joined)
        out, start = [], 0
        for q, c in zip(queries, codes, strict=True):
            windows = len(q) - NGRAM + 1
            found = found_all[start:start + max(windows, 0)]
            start += len(c) + 1
            out.append(self._longest(q, found) | {"share": float(found.mean()) if windows > 0 else None})
        return out

    def _longest(self, query: str, found: np.ndarray) -> dict[str, int | bool]:
        """Exact longest copy >= NGRAM among the runs of found windows (see the module docstring)."""
        best = {"longest": 0, "offset": -1, "train_offset": -1, "truncated": False}
        if not found.any():
            return best
        edges = np.flatnonzero(np.diff(np.concatenate([[0], found.astype(np.int8), [0]])))
        starts, ends = edges[::2], edges[1::2]  # run r covers window starts [starts[r], ends[r])
        lookups = 0
        for r in np.argsort(starts - ends, kind="stable"):  # longest run first
            a, b = int(starts[r]), int(ends[r])
            i = a
            while b - 1 - i + NGRAM > best["longest"]:  # the most a copy from i can still reach
                if lookups >= MAX_LOOKUPS:
                    best["truncated"] = True
                    return best
                # compare only as far as needed to beat the best: the lookups that do not (most of a
                # splice's) read a few dozen characters per step, not 512; one that does is redone
                # in full, so the figure stays exact
                cap = min(512, max(NGRAM, best["longest"] + 1))
                n, where = self.longest_match(query, i, cap=cap)
                if n >= cap and cap < 512:
                    n, where = self.longest_match(query, i)
                lookups += 1
                if n > best["longest"]:
                    best.update(longest=n, offset=i, train_offset=where)
                i += 1  # a copy from i + 1 may come from elsewhere in training and reach further
        return best


_cache: dict[tuple[str, int, float], CopyIndex] = {}


def index_for(data: CorpusData, max_chars: int = MAX_INDEX_CHARS) -> CopyIndex:
    """The copy index of a prepared corpus's training split, built once per process and kept
    beside the corpus as ``copy_index.npy``, ``copy_grams.npy`` and ``copy_bits.npy``, each named with a digest of
    the text it indexes (so a changed corpus is never scored with a stale index) and loaded in
    well under a second; an unwritable corpus folder just means rebuilding next time."""
    train = Path(data.path) / "train.bin"
    key = (str(train.resolve()), train.stat().st_size, train.stat().st_mtime)
    if key in _cache:
        return _cache[key]
    text = data.text("train", max_chars)
    digest = f"{corpus_digest(Path(data.path))}-{max_chars}"  # the corpus statistics' key, and the cut
    paths = {name: Path(data.path) / name.replace(".npy", f".{digest}.npy")
             for name in (CACHE_NAME, GRAMS_NAME, BITS_NAME)}
    arrays = {name: _load(path) for name, path in paths.items()}
    idx = CopyIndex(text, arrays[CACHE_NAME], arrays[GRAMS_NAME], arrays[BITS_NAME])
    if len(idx.sa) != len(text):  # a damaged file: rebuild
        idx = CopyIndex(text)
        arrays = {}
    if arrays.get(BITS_NAME) is not None and arrays[BITS_NAME] is not idx.bits:
        arrays[BITS_NAME] = None  # the wrong size for these windows: rebuilt, so saved again
    for name, arr in ((CACHE_NAME, idx.sa), (GRAMS_NAME, idx.grams), (BITS_NAME, idx.bits)):
        if arrays.get(name) is None:
            _save(paths[name], arr)
    _cache[key] = idx
    return idx


def _load(path: Path) -> np.ndarray | None:
    """Read whole into memory (tens of ms for the kernel's 60 MB): the lookups index the suffix
    array one element at a time, and a memory map's per-element access cost 5x an array's."""
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None


def _save(path: Path, arr: np.ndarray) -> None:
    for old in path.parent.glob(path.name.split(".")[0] + ".*.npy"):  # another text's index
        old.unlink(missing_ok=True)
    try:
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as fh:
            np.save(fh, np.asarray(arr), allow_pickle=False)
        tmp.replace(path)
    except OSError:
        pass


class CopyingMetric(SampleMetric):
    """Verbatim copying from the ``--against`` training text, for samples of any domain."""

    name = "copying"
    metrics = (
        MetricSpec("copy_longest", False, "longest span copied verbatim from the training text (chars)"),
        MetricSpec("copy_share", False, f"share of {NGRAM}-char windows found verbatim in the training text"),
    )

    def check(self, sample: str, ctx: EvalContext) -> CheckResult:
        return self.check_many([sample], ctx)[0]

    def check_many(self, samples: list[str], ctx: EvalContext) -> list[CheckResult]:
        """All samples' windows looked up at once (see the module docstring)."""
        if ctx.data is None:
            return [CheckResult({"copy_longest": None, "copy_share": None}) for _ in samples]
        # a sample shorter than a window (a name) copies nothing: no lookup, no per-sample dict
        long = [i for i, sample in enumerate(samples) if len(sample) >= NGRAM]
        try:
            scores = index_for(ctx.data).score_many([samples[i] for i in long])
        except Exception as exc:  # noqa: BLE001 - a check never raises; report why instead
            issue = Issue("copying_error", f"copy index unavailable: {type(exc).__name__}: {exc}")
            return [CheckResult({"copy_longest": None, "copy_share": None}, [issue]) for _ in samples]
        out = [CheckResult({"copy_longest": 0.0, "copy_share": None}) for _ in samples]
        for i, s in zip(long, scores, strict=True):
            out[i] = self._result(samples[i], s)
        return out

    @staticmethod
    def _result(sample: str, s: dict) -> CheckResult:
        res = CheckResult({"copy_longest": float(s["longest"]), "copy_share": s["share"]})
        if s["truncated"]:
            res.issues.append(Issue("budget", f"copy search stopped after {MAX_LOOKUPS} lookups: copy_longest "
                                              f"{s['longest']} is a lower bound (a splice of many copies)"))
        if s["longest"] >= REPORT_SPAN:
            off = int(s["offset"])
            span = sample[off:off + int(s["longest"])]
            res.issues.append(Issue("copied", f"{s['longest']} characters copied verbatim from training "
                                              f"(training offset {s['train_offset']})", off,
                                    excerpt(span, 0, 40)))
        return res


def copy_scores(train_text: str, samples: Sequence[str]) -> list[dict]:
    """One-off scoring without a prepared corpus (scripts, notebooks)."""
    return CopyIndex(train_text).score_many(samples)

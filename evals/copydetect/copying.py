"""Copy detection: how much of a sample was copied verbatim from the training text.

Arrays over the training text, built once per corpus and cached beside it (evals/copydetect/grams.py,
evals/copydetect/suffixes.py; each file named with the corpus digest and INDEX_FORMAT):

* the sorted 64-bit hashes of every ``NGRAM``-character window (``copy_grams.npy``), with a
  presence filter of their top bits (``copy_bits.npy``) and where each slot of hashes sharing
  their top bits starts (``copy_buckets.npy``);
* a suffix array (numpy prefix doubling, ``copy_index.npy``) and, for each distinct window, the
  slice of it whose suffixes begin with that window (``copy_groups.npy``).

A batch of samples is scored without a per-character Python loop: every window of every sample
is hashed at once (Horner's rule over ``NGRAM`` shifted array slices, arithmetic mod 2^64) and
looked up: the filter, then its slot. That gives

* ``copy_share``: the share of the sample's ``NGRAM``-character windows found in training, and
* the *runs* of consecutive found windows: only inside a run can a copy of ``NGRAM`` or more
  characters lie. ``copy_longest``, the longest span copied verbatim, is then measured exactly
  with the suffix array, every sample's lookups in a few numpy batches, only at the positions
  from which a copy could still beat the best found (:func:`longest_copies`; at most
  ``MAX_LOOKUPS`` per sample, after which the figure is a lower bound and the sample gets a
  ``budget`` issue); shorter shared spans are common phrases, not copies, and count as 0.

The probes and the suffix-array searches run compiled where the install built evals/copydetect/_copyfast.c
(evals/copydetect/compiled.py; the same figures, tested against these numpy versions): on LaTeX's 0.4 MB
the copy metric took half the time (evals/BENCHMARKS.md, stop 24).

A 64-bit hash collision could count a window as found that is not: with a random base the
chance is about (windows x training windows) / 2^64, and copy_longest is exact whatever happens
(the suffix array checks it). Real held-out text scores low but not zero; a memorising model
scores far higher. Figures in evals/BENCHMARKS.md ("Design measurements", "Eval throughput").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from gen.core.domain import CheckResult, EvalContext, Issue, MetricSpec, SampleMetric, excerpt
from gen.core.vocab import code_points
from gen.core.workspace import CorpusDir
from gen.evals.copydetect.compiled import FAST
from gen.evals.copydetect.grams import (
    NGRAM,
    bucket_starts,
    gram_table,
    presence_bits,
    presence_size,
    training_hashes,
    window_groups,
    window_hashes,
)
from gen.evals.copydetect.suffixes import Matcher, code_lut, code_table, suffix_array

if TYPE_CHECKING:
    from gen.core.data import CorpusData

# bigger corpora are indexed on their first this-many characters (bounds the build's time and memory)
MAX_INDEX_CHARS = 32_000_000
REPORT_SPAN = 60  # a copied span at least this long is reported as an issue
CACHE_NAME = "copy_index"
GRAMS_NAME = "copy_grams"
BUCKETS_NAME = "copy_buckets"  # where each slot of hashes starts in copy_grams (see bucket_starts)
BITS_NAME = "copy_bits"  # the presence filter (see presence_bits)
GROUPS_NAME = "copy_groups"  # where each window's suffixes lie in the suffix array (see window_groups)
QUERY_BLOCK = 1 << 20  # sample windows looked up per block
INDEX_FORMAT = 2  # in the cache files' names: a change of hash or layout is never read as the old one
HEAD_RUNS = 4  # runs per query whose starts are looked up first (see longest_copies)
MAX_LOOKUPS = 2048  # exact suffix-array lookups per sample; past that copy_longest is a lower bound


class CopyIndex:
    """A training text's codes, window hashes and suffix array; answers "how much was copied?"."""

    def __init__(self, text: str) -> None:
        """Built from the text itself (index_for loads a prepared corpus's cached arrays)."""
        codes, lut = code_table(text)
        self._setup(codes, lut, None, None, None)

    @classmethod
    def from_codes(cls, codes: np.ndarray, lut: np.ndarray, sa: np.ndarray | None = None,
                   grams: np.ndarray | None = None, starts: np.ndarray | None = None,
                   groups: np.ndarray | None = None, bits: np.ndarray | None = None) -> CopyIndex:
        """From the text's codes and their table (:func:`code_table`), as a prepared corpus's
        ids give them without decoding the text."""
        idx = cls.__new__(cls)
        idx._setup(codes, lut, sa, grams, starts, groups, bits)
        return idx

    def _setup(self, codes: np.ndarray, lut: np.ndarray, sa: np.ndarray | None, grams: np.ndarray | None,
               starts: np.ndarray | None, groups: np.ndarray | None = None, bits: np.ndarray | None = None) -> None:
        self.lut, self.size = lut, len(codes)  # the lut encodes queries (-1: never in training)
        sa = suffix_array(codes) if sa is None else sa
        # int32 halves the memory (and the cache file) for anything under 2 G characters
        self.sa = sa.astype(np.int32 if len(codes) < 2**31 else np.int64, copy=False)
        hashes = training_hashes(codes) if grams is None else None  # built: for grams and groups alike
        self.grams = gram_table(hashes) if grams is None else grams
        shift = np.uint64(64 - max(6, (max(len(self.grams), 1) - 1).bit_length()))
        if starts is not None and len(starts) == (1 << (64 - int(shift))) + 1 and starts[-1] == len(self.grams):
            self.shift, self.starts = shift, starts
        else:
            self.shift, self.starts = bucket_starts(self.grams)
        n_bits = presence_size(len(self.grams))
        if bits is not None and bits.dtype == np.uint8 and len(bits) * 8 == n_bits:
            self.bshift, self.bits = np.uint64(64 - (n_bits.bit_length() - 1)), bits
        else:
            self.bshift, self.bits = presence_bits(self.grams)
        if groups is None or groups.ndim != 2 or len(groups) not in (0, len(self.grams)):
            groups = window_groups(training_hashes(codes) if hashes is None else hashes, self.sa, self.grams)
        del hashes
        self.groups = groups if len(groups) else None  # None: windows shared a hash, searches bisect
        self.groups_saved = groups  # what index_for caches (empty included: not rebuilt every time)
        self.matcher = Matcher(codes, self.sa, int(lut.max()) + 1)

    def encode(self, query: str) -> np.ndarray:
        """The query in training codes; characters training never has are -1."""
        # uint32 indices as they come (a widening copy costs as much as the lookup)
        return self.lut[np.minimum(code_points(query), np.uint32(len(self.lut) - 1))]  # the last slot is -1

    def lookup(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(found, gram): whether each NGRAM-window occurs in training and, where it does, its
        index in ``grams`` (-1 elsewhere). Looked up in blocks of QUERY_BLOCK windows, so a 10 MB
        sample's temporaries stay near 100 MB."""
        w = len(codes) - NGRAM + 1
        if w > QUERY_BLOCK:
            parts = [self._lookup(codes[lo:min(len(codes), lo + QUERY_BLOCK + NGRAM - 1)])
                     for lo in range(0, w, QUERY_BLOCK)]
            return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        return self._lookup(codes)

    def _lookup(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h = window_hashes(codes)
        gram = np.full(len(h), -1, dtype=np.int32)
        if not len(h) or not len(self.grams):
            return np.zeros(len(h), dtype=bool), gram
        if FAST is not None:  # the same probes, one window at a time in C, windows with a -1 skipped
            FAST.lookup(np.ascontiguousarray(codes, dtype=np.int64), NGRAM, h, self.bits, int(self.bshift),
                        self.starts, self.starts.itemsize, int(self.shift), self.grams, gram)
            return gram >= 0, gram
        self._probe(h, gram)
        bad = np.cumsum(np.concatenate([[0], codes < 0]))  # windows holding an unknown character
        gram[bad[NGRAM:NGRAM + len(h)] != bad[:len(h)]] = -1
        return gram >= 0, gram

    def _probe(self, h: np.ndarray, gram: np.ndarray) -> None:
        """gram[i] = the index of h[i] in ``grams`` where it is there (numpy: a round per probe)."""
        # the presence bits rule most absent windows out with one gather from a small table; the
        # rest are looked up in their slot (an empty one: absent too)
        top = h >> self.bshift
        maybe = np.flatnonzero((self.bits[top >> np.uint64(3)] >> (top & np.uint64(7)).astype(np.uint8)) & 1)
        slot = (h[maybe] >> self.shift).astype(np.intp)
        lo, hi = self.starts[slot], self.starts[slot + 1]
        todo = maybe[hi > lo]
        at, hi = lo[hi > lo], hi[hi > lo]
        while len(todo):  # each slot's few hashes, in order, until one is not below the window's
            g, w = self.grams[at], h[todo]
            gram[todo[g == w]] = at[g == w]
            at += 1
            more = (g < w) & (at < hi)
            todo, at, hi = todo[more], at[more], hi[more]

    def __len__(self) -> int:
        return self.size

    def matching_statistics(self, query: str) -> np.ndarray:
        """ms[i] = length of the longest prefix of ``query[i:]`` occurring in training."""
        qbuf = self.matcher.pack(np.append(self.encode(query), -1))
        return self.matcher.longest(qbuf, np.arange(len(query), dtype=np.int64))[0]

    def score(self, query: str) -> dict[str, float | int | bool | None]:
        """Longest copied span of NGRAM or more characters (0 if none; with where it is), the
        share of copied NGRAM-windows, and whether the lookup budget cut the search short."""
        return self.score_many([query])[0]

    def score_many(self, queries: Sequence[str]) -> list[dict[str, float | int | bool | None]]:
        """:meth:`score` for a batch: all windows of all queries hashed and looked up at once,
        then every suffix-array lookup of every query in three batches (see :func:`longest_copies`)."""
        if not queries:
            return []
        # one string, one encode: a query shorter than a window (a name) is left out (nothing
        # to look up), and the character after each query becomes -1 (no window spans two)
        kept = [q if len(q) >= NGRAM else "" for q in queries]
        lengths = np.fromiter(map(len, kept), dtype=np.int64, count=len(kept))
        starts = np.cumsum(lengths + 1) - lengths - 1  # where each query begins in ``joined``
        joined = self.encode("\n".join(kept) + "\n")
        joined[starts + lengths] = -1
        found, gram = self.lookup(joined)
        qid, a, b = _runs(found, starts)
        # each query's windows are found[start:start + windows]: its runs hold its copied ones
        windows = np.maximum(lengths - NGRAM + 1, 0)
        copied = np.bincount(qid, weights=b - a, minlength=len(kept))
        best = longest_copies(self.matcher, joined, starts, (qid, a, b),
                              None if self.groups is None else (gram, self.groups))
        return [b | {"share": float(copied[k] / windows[k]) if windows[k] else None} for k, b in enumerate(best)]


def _runs(found: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(query, start, end) of every run of found windows, in window positions of its query
    (``starts``: where each query begins; no run spans the -1 between two)."""
    edges = np.flatnonzero(found[1:] != found[:-1]) + 1
    if len(found) and found[0]:
        edges = np.concatenate([[0], edges])
    if len(found) and found[-1]:
        edges = np.append(edges, len(found))
    qid = np.searchsorted(starts, edges[::2], side="right") - 1
    return qid, edges[::2] - starts[qid], edges[1::2] - starts[qid]


def longest_copies(matcher: Matcher, joined: np.ndarray, starts: np.ndarray,
                   runs: tuple[np.ndarray, np.ndarray, np.ndarray],
                   groups: tuple[np.ndarray, np.ndarray] | None = None) -> list[dict[str, int | bool]]:
    """Per query, the exact longest copy of NGRAM or more characters (0 if none), where it
    starts in the query and in training, and whether the lookup budget cut the search short.
    ``joined``: the queries' codes end to end, -1 after each (``starts``: where each begins);
    ``runs``: the runs of windows of ``joined`` found in training (:func:`_runs`).

    Only inside a run of found windows can a copy lie, and one starting at window i of a run
    [a, b) is at most b - 1 - i + NGRAM long (its bound). Every query at once, in three batches
    of suffix-array lookups: the starts of each query's HEAD_RUNS longest runs (a lower bound of
    the answer), the starts of the other runs whose bound reaches it (a better lower bound), then
    every other position whose bound reaches that. No position left out could beat the answer,
    so it is exact; among equal copies the one reported is the first position of the first
    longest run, as a sequential search (longest run first) would find. At most MAX_LOOKUPS per
    query: a position the budget leaves out that could have beaten the answer sets "truncated".
    ``groups`` (each window's index in the gram table, and each gram's slice of the suffix
    array) lets a lookup bisect only its window's slice.
    """
    n_queries = len(starts)
    out = [{"longest": 0, "offset": -1, "train_offset": -1, "truncated": False} for _ in range(n_queries)]
    qid, a, b = runs
    if not len(qid):
        return out
    order = np.lexsort((a, a - b, qid))  # by query, then longest run first, then leftmost
    qid, a, b = qid[order], a[order], b[order]
    rank = _rank_in_group(qid)
    qbuf = matcher.pack(joined)
    used, lower = np.zeros(n_queries, dtype=np.int64), np.zeros(n_queries, dtype=np.int64)
    unseen = np.full(n_queries, -1, dtype=np.int64)  # the best bound the budget left out, per query
    hits = []  # (query, position, length, training offset, run rank) of every lookup

    def look(run: np.ndarray, pos: np.ndarray) -> None:  # candidates in run order
        q = qid[run]
        ok = used[q] + _rank_in_group(q) < MAX_LOOKUPS
        np.maximum.at(unseen, q[~ok], (b[run] - 1 - pos + NGRAM)[~ok])
        run, pos, q = run[ok], pos[ok], q[ok]
        used[:] += np.bincount(q, minlength=n_queries)
        at = starts[q] + pos  # the queries' windows end to end, as packed (and as ``groups`` has them)
        # each window's slice of the suffix array (``groups``: the windows' indices in grams, and
        # the slice of each), so the search bisects only that
        n, w = matcher.longest(qbuf, at, None if groups is None else groups[1][groups[0][at]], NGRAM)
        np.maximum.at(lower, q, n)
        hits.append((q, pos, n, w, rank[run]))

    head = np.flatnonzero(rank < HEAD_RUNS)
    look(head, a[head])
    rest = np.flatnonzero((rank >= HEAD_RUNS) & (b - 1 - a + NGRAM >= lower[qid]))
    look(rest, a[rest])
    # the other positions of each run (all but its start), as far as their bound reaches the lower
    # bound, counted (not listed) first: a 10 MB sample can have millions
    want = np.clip(np.minimum(b, b + NGRAM - lower[qid]) - a - 1, 0, None)
    before = np.cumsum(want) - want
    allow = np.clip(MAX_LOOKUPS - used[qid] - (before - before[np.arange(len(qid)) - rank]), 0, want)
    np.maximum.at(unseen, qid, np.where(allow < want, b - 2 - a - allow + NGRAM, -1))
    run2 = np.repeat(np.arange(len(qid)), allow)
    look(run2, a[run2] + 1 + np.arange(len(run2)) - np.repeat(np.cumsum(allow) - allow, allow))
    q, p, n, w, r = (np.concatenate(x) for x in zip(*hits, strict=True))
    sel = np.lexsort((p, r, -n, q))  # per query: longest, then first run in order, then leftmost
    for h in sel[_rank_in_group(q[sel]) == 0]:
        k, length = int(q[h]), int(n[h]) if n[h] >= NGRAM else 0
        out[k] = {"longest": length, "offset": int(p[h]) if length else -1,
                  "train_offset": int(w[h]) if length else -1, "truncated": bool(unseen[k] > length)}
    return out


def _rank_in_group(keys: np.ndarray) -> np.ndarray:
    """Each element's place among the equal keys before it (``keys`` grouped: equal keys adjacent)."""
    if not len(keys):
        return np.zeros(0, dtype=np.int64)
    first = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))
    return np.arange(len(keys)) - np.repeat(first, np.diff(np.append(first, len(keys))))


_cache: dict[tuple[str, str, int], CopyIndex] = {}


def index_for(data: CorpusData, max_chars: int = MAX_INDEX_CHARS) -> CopyIndex:
    """The copy index of a prepared corpus's training split, built once per process and kept
    beside the corpus as ``copy_index.npy``, ``copy_grams.npy``, ``copy_buckets.npy``,
    ``copy_bits.npy`` and ``copy_groups.npy``, each named with a digest of the text it indexes (so a changed corpus is
    never scored with a stale index) and loaded in well under a second; an unwritable corpus
    folder just means rebuilding next time."""
    folder = CorpusDir(data.path)
    key = (str(folder.path.resolve()), data.digest, max_chars)  # this folder, at the generation data holds
    if key in _cache:
        return _cache[key]
    # the corpus statistics' key, the cut and the format (v2: hashes mixed; a v1 file is never read)
    digest = f"{data.digest}-{max_chars}-v{INDEX_FORMAT}"
    # the suffix array is read whole (lookups index it one element at a time, which costs a
    # memory map several times what it costs an array); the other tables are mapped: a batch
    # touches only the pages it needs
    arrays = {name: folder.read_index(name, digest, mmap=name != CACHE_NAME)
              for name in (CACHE_NAME, GRAMS_NAME, BUCKETS_NAME, GROUPS_NAME, BITS_NAME)}
    idx = CopyIndex.from_codes(*_train_codes(data, max_chars), arrays[CACHE_NAME], arrays[GRAMS_NAME],
                               arrays[BUCKETS_NAME], arrays[GROUPS_NAME], arrays[BITS_NAME])
    if len(idx.sa) != len(idx):  # a damaged file: rebuild
        idx = CopyIndex.from_codes(*_train_codes(data, max_chars))
        arrays = {}
    for name, arr in ((BUCKETS_NAME, idx.starts), (GROUPS_NAME, idx.groups_saved), (BITS_NAME, idx.bits)):
        if arrays.get(name) is not None and arrays[name] is not arr:
            arrays[name] = None  # the wrong size for these windows: rebuilt, so saved again
    for name, arr in ((CACHE_NAME, idx.sa), (GRAMS_NAME, idx.grams), (BUCKETS_NAME, idx.starts),
                      (GROUPS_NAME, idx.groups_saved), (BITS_NAME, idx.bits)):
        if arrays.get(name) is None:
            folder.write_index(name, digest, arr)
    for old in folder.stale_indexes("copy_first"):  # an earlier version's table, now unused
        old.unlink(missing_ok=True)
    _cache[key] = idx
    return idx


def _train_codes(data: CorpusData, max_chars: int) -> tuple[np.ndarray, np.ndarray]:
    """The training text's codes and code table (:func:`code_table`), from its ids and the
    vocabulary, without decoding the text: the table from which ids occur (counted in blocks,
    so each block's int64 copy stays in cache), the codes by one
    gather of the ids (int16: half the memory of the text's int32 code points)."""
    ids, held = data.ids("train")[:max_chars], np.zeros(len(data.vocab), dtype=bool)
    for lo in range(0, len(ids), 1 << 20):
        held |= np.bincount(ids[lo:lo + (1 << 20)], minlength=len(data.vocab)) > 0
    cps = np.fromiter(map(ord, data.vocab.chars), dtype=np.int64, count=len(data.vocab))
    lut = code_lut(cps[held])
    id_code = lut[np.minimum(cps, len(lut) - 1)]  # the last slot is -1: a character the text lacks
    return id_code.astype(np.int16 if len(cps) < 2**15 else np.int32)[ids], lut


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
        short = CheckResult({"copy_longest": 0.0, "copy_share": None})  # one object for them all: read-only
        out = [short] * len(samples)
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

"""The training text's NGRAM-character windows as 64-bit hashes: the tables the copy detector
(copying.py) looks sample windows up in, built once per corpus and cached beside it.

* ``gram_table``: the sorted distinct hashes of every window (``training_hashes``: Horner's
  rule mod 2^64, by doubling, in blocks of BUILD_BLOCK windows), computed once per build;
* ``presence_bits``: one bit per value of the hashes' top bits, which rules most absent sample
  windows out with one gather;
* ``bucket_starts``: where each slot of hashes sharing their top bits starts in that table, so
  a lookup reads a slot instead of bisecting the table;
* ``window_groups``: for each distinct window, the slice of the suffix array whose suffixes
  begin with it, so an exact longest-match search bisects only that slice.
"""

from __future__ import annotations

import numpy as np

from gen.evals.copydetect.compiled import FAST

NGRAM = 20  # characters: long enough that a shared window is rarely a common phrase
HASH_BASE = np.uint64(0x9E3779B97F4A7C15)  # odd, 64-bit: Horner's rule mod 2^64 mixes every character
HASH_MIX = np.uint64(0xBF58476D1CE4E5B9)  # odd (splitmix64's): the final multiply, see window_hashes
BUILD_BLOCK = 1 << 22  # training windows hashed per block (bounds the build's temporaries)


def window_hashes(codes: np.ndarray, n: int = NGRAM) -> np.ndarray:
    """Hash of every ``n``-long window of ``codes`` (int64, -1 = a character training never has):
    (len - n + 1,) uint64, Horner's rule mod 2^64, then one mixing multiply. A window holding a
    -1 hashes like any other; :meth:`CopyIndex.lookup` masks such windows out.

    Horner's rule by doubling: the hash of a window of 2k characters is that of its first k
    times BASE^k plus that of its last k, so the hashes of every 1, 2, 4, 8, 16-window take one
    pass each and n = 20 = 16 + 4 one more: 5 passes over the text instead of 20, the same
    values (exact in mod 2^64 arithmetic; tested against the plain rule). Compiled (evals/
    compiled.py): one rolling update per window, the same values again."""
    w = len(codes) - n + 1
    if w <= 0:
        return np.zeros(0, dtype=np.uint64)
    if FAST is not None:
        out = np.empty(w, dtype=np.uint64)
        FAST.hashes(np.ascontiguousarray(codes, dtype=np.int64), n, int(HASH_BASE), int(HASH_MIX), out)
        return out
    return window_hashes_numpy(codes, n)


def window_hashes_numpy(codes: np.ndarray, n: int = NGRAM) -> np.ndarray:
    """:func:`window_hashes` in numpy, by doubling (``len(codes) >= n``)."""
    w = len(codes) - n + 1
    h = (codes + 2).astype(np.uint64)  # >= 1: a zero symbol would let leading zeros collide
    parts, k = {}, 1  # parts[k]: hashes of every k-window, for the powers of two that make n
    while k <= n:
        if n & k:
            parts[k] = h
        if 2 * k <= n:
            h = h[:len(h) - k] * _power(k) + h[k:]
        k *= 2
    out, done = None, 0
    for k in sorted(parts, reverse=True):  # windows of the largest part, extended by the others
        out = parts[k][:w] if out is None else out * _power(k) + parts[k][done:done + w]
        done += k
    # Horner's rule leaves the last characters in the low bits only: windows that differ only
    # there shared their top bits, so a slot (bucket_starts) held up to 58 hashes on LaTeX. One
    # multiply by an odd constant (a bijection: no new collisions) spreads them over the slots.
    return out * HASH_MIX


def _power(k: int) -> np.uint64:
    """HASH_BASE ** k mod 2^64."""
    return np.uint64(pow(int(HASH_BASE), k, 1 << 64))


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


def distinct_count(a: np.ndarray) -> int:
    """How many distinct values ``a`` (uint64 hashes) holds: compiled (evals/copydetect/compiled.py) in a
    hash set (10M hashes 0.31 s), else by sorting (0.84 s)."""
    if FAST is not None:
        return FAST.distinct(np.ascontiguousarray(a, dtype=np.uint64))
    return len(sorted_unique(a))


BITS_PER_GRAM = 16  # presence bits per training window (rounded up to a power of two): ~5% false "maybe"s
MAX_PRESENCE_BITS = 1 << 30  # 128 MB at most (LaTeX's 13.7M windows: 2^28 bits, 32 MB)


def presence_size(n_grams: int) -> int:
    """Bits of the presence filter for ``n_grams`` training windows: a power of two."""
    return 1 << max(6, (min(MAX_PRESENCE_BITS, BITS_PER_GRAM * max(n_grams, 1)) - 1).bit_length())


def presence_bits(grams: np.ndarray) -> tuple[np.uint64, np.ndarray]:
    """(shift, bits): one bit per value of a hash's top bits, set for every training window
    (a one-hash Bloom filter). ``grams`` is sorted, so its top bits are too, and the bytes are
    filled with one ``bitwise_or.reduceat`` over runs of equal byte index, not a Python loop.
    It rules most absent sample windows out with one gather from a table a fraction the size of
    the slots' (text unlike training: Shakespeare's held-out windows, 99% absent)."""
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


def bucket_starts(grams: np.ndarray) -> tuple[np.uint64, np.ndarray]:
    """(shift, starts): ``grams`` is sorted, so the hashes that share their top bits are a slice
    of it: grams[starts[t]:starts[t + 1]] for top bits t (about one training window per slot).
    A sample window is looked up by reading its slot: an empty one (most windows of text
    training lacks) rules it out with one gather, and a full one holds a hash or two to compare,
    where a binary search of the whole table took 24 steps (BENCHMARKS.md, stop 24)."""
    k = max(6, (max(len(grams), 1) - 1).bit_length())  # 2^k slots >= windows
    shift = np.uint64(64 - k)
    counts = np.zeros(1 << k, dtype=np.int64)
    for lo in range(0, len(grams), BUILD_BLOCK):
        counts += np.bincount((grams[lo:lo + BUILD_BLOCK] >> shift).astype(np.intp), minlength=1 << k)
    starts = np.zeros((1 << k) + 1, dtype=np.int32 if len(grams) < 2**31 else np.int64)
    np.cumsum(counts, out=starts[1:])
    return shift, starts


def training_hashes(codes: np.ndarray) -> np.ndarray:
    """The hash of every NGRAM-window of the training codes, by position, hashed in blocks of
    BUILD_BLOCK windows (bounds the doubling's temporaries). The build computes it once for
    both tables below."""
    w = len(codes) - NGRAM + 1
    parts = [window_hashes(codes[lo:min(len(codes), lo + BUILD_BLOCK + NGRAM - 1)])
             for lo in range(0, max(w, 0), BUILD_BLOCK)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint64)


def gram_table(hashes: np.ndarray) -> np.ndarray:
    """Sorted distinct window hashes (``hashes``: :func:`training_hashes`)."""
    return sorted_unique(hashes)


def window_groups(hashes: np.ndarray, sa: np.ndarray, grams: np.ndarray) -> np.ndarray:
    """(len(grams), 2) int32: for window ``grams[g]``, the slice of the suffix array (start,
    size) whose suffixes begin with it (they are adjacent there), so an exact longest-match
    search bisects only that slice, from the window's end on. ``hashes``: :func:`training_hashes`.
    Empty when two windows share a hash (never seen; the searches then bisect the whole array)."""
    last = len(hashes) - 1  # the last position holding a whole window
    if last < 0 or not len(grams):
        return np.zeros((0, 2), dtype=np.int32)
    slots = np.flatnonzero(sa <= last).astype(np.int32)  # suffixes holding a whole window
    hs = hashes[sa[slots]]  # their windows' hashes, in suffix order: equal ones adjacent
    new = np.flatnonzero(np.concatenate([[True], hs[1:] != hs[:-1]]))
    hs = hs[new]
    # a group ends where the next begins or at the last suffix holding a whole window
    ends = np.append(slots[new[1:] - 1] + 1, slots[-1] + 1)
    groups = np.stack([slots[new], ends - slots[new]], axis=1).astype(np.int32)
    order = np.argsort(hs, kind="stable")
    if len(hs) != len(grams) or not np.array_equal(hs[order], grams):
        return np.zeros((0, 2), dtype=np.int32)
    return groups[order]

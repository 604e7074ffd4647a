"""The compiled inner loops (evals/copydetect/_copyfast.c) against their numpy twins: the same values on
random and adversarial input, bad buffers refused with an error, and the numpy fallback."""

from __future__ import annotations

import os
import random
import subprocess
import sys

import numpy as np
import pytest

from gen.core.domain import EvalContext
from gen.evals.copydetect import compiled, copying, grams, suffixes
from gen.evals.copydetect.copying import CopyIndex
from gen.evals.copydetect.grams import sorted_unique, window_hashes, window_hashes_numpy
from gen.evals.metrics import RepetitionMetric

FAST = compiled.FAST
needs_c = pytest.mark.skipif(FAST is None, reason="the C module was not built in this install")


def numpy_only(monkeypatch: pytest.MonkeyPatch) -> None:
    for module in (grams, suffixes, copying):
        monkeypatch.setattr(module, "FAST", None)


@needs_c
def test_rolling_hashes_equal_the_doubling_ones() -> None:
    rng = np.random.default_rng(0)
    for n in (1, 2, 3, 16, 20, 33):
        for size in (0, n - 1, n, n + 1, 5000):
            codes = rng.integers(-1, 70_000, max(size, 0))
            assert np.array_equal(window_hashes(codes, n), window_hashes_numpy(codes, n)), (n, size)


@needs_c
def test_distinct_counts_equal_sorting() -> None:
    rng = np.random.default_rng(1)
    for size in (0, 1, 2, 17, 10_000):
        h = rng.integers(0, 40, size).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        h[: size // 4] = 0  # zero is the table's empty mark: counted apart
        assert FAST.distinct(h) == len(sorted_unique(h))


def _queries(train: str, rng: random.Random) -> list[str]:
    """Splices of training text, novel text, unknown characters, and queries shorter than a window."""
    out = ["", "short", "\U0001f600" * 30]
    for _ in range(40):
        parts = []
        for _ in range(rng.randint(1, 6)):
            at = rng.randrange(len(train) - 800)
            parts.append(train[at:at + rng.choice([5, 19, 20, 21, 60, 700])])
            parts.append("".join(rng.choice("xyz\u00e9") for _ in range(rng.randint(0, 8))))
        out.append("".join(parts))
    return out


@needs_c
@pytest.mark.parametrize("alphabet", ["abcdefghij \n", "".join(map(chr, range(0x4E00, 0x4E00 + 300)))])
def test_copy_scores_equal_on_both_paths(alphabet: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # the second alphabet needs two bytes per character (the wide layout)
    rng = random.Random(len(alphabet))
    train = "".join(rng.choice(alphabet) for _ in range(30_000))
    train += train[1000:2500]  # a copy longer than the compared prefix (CAP), twice in training
    queries = _queries(train, rng) + [train[500:3000]]
    idx = CopyIndex(train)
    assert idx.matcher.width == (1 if len(alphabet) < 200 else 2)
    fast = idx.score_many(queries)
    stats = [idx.matching_statistics(q).tolist() for q in queries[:5]]
    numpy_only(monkeypatch)
    assert idx.score_many(queries) == fast
    assert [idx.matching_statistics(q).tolist() for q in queries[:5]] == stats
    assert any(s["longest"] > suffixes.CAP for s in fast)


@needs_c
def test_repetition_equal_on_both_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(5)
    samples = ["abc" * 400, "".join(rng.choice("ab") for _ in range(3000)), "x" * 17, "no repeats here, none"]
    ctx = EvalContext(None)
    fast = [r.metrics for r in RepetitionMetric().check_many(samples, ctx)]
    numpy_only(monkeypatch)
    assert [r.metrics for r in RepetitionMetric().check_many(samples, ctx)] == fast
    assert fast[0]["repetition"] > 0.9 and fast[3]["repetition"] == 0.0


@needs_c
def test_bad_buffers_raise_instead_of_reading_out_of_bounds() -> None:
    idx = CopyIndex("abcdefghij" * 50)
    m = idx.matcher
    qbuf = m.pack(np.append(idx.encode("abcdefghijabcdefghij"), -1))
    best, where = np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64)
    for pos in (-1, len(qbuf)):
        with pytest.raises(ValueError):
            FAST.longest(m.buf, m.n, m.sa, m.sa.itemsize, qbuf, np.array([pos], dtype=np.int64), b"", 0, 0,
                         m.width, 512, 512, best, where)
    with pytest.raises(ValueError):  # a text buffer without its padding
        FAST.longest(m.buf[:m.n], m.n, m.sa, m.sa.itemsize, qbuf, np.zeros(1, dtype=np.int64), b"", 0, 0,
                     m.width, 512, 512, best, where)
    with pytest.raises(ValueError):  # a slot table that does not match its shift
        FAST.lookup(np.zeros(25, dtype=np.int64), 20, np.zeros(6, dtype=np.uint64), idx.bits, int(idx.bshift),
                    idx.starts[:4], idx.starts.itemsize, int(idx.shift), idx.grams, np.zeros(6, dtype=np.int32))


def test_pure_numpy_switch_and_fallback() -> None:
    env = dict(os.environ, GEN_PURE_NUMPY="1")
    code = ("from gen.evals.copydetect.compiled import FAST; from gen.evals.copydetect.copying import CopyIndex; "
            "print(FAST, CopyIndex('abcdefghij' * 40).score('xx' + 'abcdefghij' * 3)['longest'])")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["None", "30"]

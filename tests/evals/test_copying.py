"""The copy detector (evals/copydetect/copying.py): suffix array, matching statistics, the generic metric."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_corpora_dir

from gen.core.data import CorpusData, prepare
from gen.core.domain import CorpusSpec, Domain, EvalContext
from gen.evals.copydetect import compiled, copying, grams, suffixes
from gen.evals.copydetect.copying import CopyIndex, CopyingMetric, index_for
from gen.evals.copydetect.suffixes import code_table, suffix_array


@pytest.fixture(autouse=True, params=["compiled", "numpy"])
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test here runs on both inner loops: the C module (evals/copydetect/_copyfast.c) where the
    install built it, and the numpy versions an install without a compiler runs."""
    if request.param == "compiled" and compiled.FAST is None:
        pytest.skip("the C module was not built in this install")
    if request.param == "numpy":
        for module in (grams, suffixes, copying):
            monkeypatch.setattr(module, "FAST", None)
    return request.param


def brute_sa(text: str) -> list[int]:
    return sorted(range(len(text)), key=lambda i: text[i:])


def brute_ms(train: str, query: str) -> list[int]:
    out = []
    for i in range(len(query)):
        n = 0
        while i + n < len(query) and query[i:i + n + 1] in train:
            n += 1
        out.append(n)
    return out


@pytest.mark.parametrize("alphabet", ["ab", "abc \n", "aé€😀 z"])
def test_suffix_array_matches_brute_force(alphabet: str) -> None:
    rng = random.Random(len(alphabet))
    for n in [1, 2, 3, 7, 50, 300]:
        text = "".join(rng.choice(alphabet) for _ in range(n))
        assert suffix_array(code_table(text)[0]).tolist() == brute_sa(text), text


def test_suffix_array_on_long_repeats() -> None:
    # long repeats force many doubling rounds: the worst case for prefix doubling
    for text in ["a" * 200, "ab" * 150, "abcab" * 60 + "x", ("the cat " * 30) + "the cab"]:
        assert suffix_array(code_table(text)[0]).tolist() == brute_sa(text)
    assert suffix_array(np.zeros(0, dtype=np.int64)).tolist() == []


def test_matching_statistics_match_brute_force() -> None:
    rng = random.Random(7)
    train = "".join(rng.choice("abcd ") for _ in range(400))
    idx = CopyIndex(train)
    for _ in range(5):
        query = "".join(rng.choice("abcdx ") for _ in range(60)) + train[100:140]
        assert idx.matching_statistics(query).tolist() == brute_ms(train, query)


def test_score_finds_the_copied_span_and_share() -> None:
    rng = random.Random(3)
    train = "".join(rng.choice("abcdefghij \n") for _ in range(20_000))
    novel = "".join(rng.choice("KLMNOP") for _ in range(100))  # never in training
    sample = novel + train[5000:5300] + novel
    s = CopyIndex(train).score(sample)
    assert s["longest"] == 300 and s["offset"] == 100 and s["train_offset"] == 5000
    windows = len(sample) - copying.NGRAM + 1
    assert s["share"] == pytest.approx((300 - copying.NGRAM + 1) / windows)
    assert CopyIndex(train).score(novel) == {"longest": 0, "offset": -1, "train_offset": -1, "share": 0.0,
                                             "truncated": False}
    assert CopyIndex(train).score("")["share"] is None
    assert CopyIndex(train).score("abc")["share"] is None  # shorter than one n-gram


def expected(train: str, query: str) -> tuple[int, float | None]:
    """The definition, from brute-force matching statistics: the longest copy of NGRAM or more
    characters (else 0) and the share of NGRAM-windows found in training."""
    ms = brute_ms(train, query) if query else []
    longest = max(ms, default=0)
    windows = len(query) - copying.NGRAM + 1
    share = sum(m >= copying.NGRAM for m in ms[:windows]) / windows if windows > 0 else None
    return (longest if longest >= copying.NGRAM else 0), share


def test_vectorised_score_matches_the_definition_on_splices() -> None:
    """Samples spliced from several training places (runs of found windows that no single copy
    covers), novel characters, characters training never has, and edges: exact every time."""
    rng = random.Random(11)
    train = "".join(rng.choice("abcdefg \n") for _ in range(3000))
    idx = CopyIndex(train)
    queries = []
    for _ in range(40):
        parts = []
        for _ in range(rng.randint(1, 5)):
            at, n = rng.randrange(len(train) - 80), rng.randint(5, 70)
            parts.append(train[at:at + n] if rng.random() < 0.8 else "".join(rng.choice("abcxyzé") for _ in range(n)))
        queries.append("".join(parts))
    queries += ["", "a", train[:19], train[:20], train[7:400], "Q" + train[:30] + "\ud800" + train[30:90]]
    batch = idx.score_many(queries)
    for q, s in zip(queries, batch, strict=True):
        assert (s["longest"], s["share"]) == expected(train, q), q
        assert s == idx.score(q)  # a batch scores each sample as alone
        if s["longest"]:
            off = s["offset"]
            assert train[s["train_offset"]:s["train_offset"] + s["longest"]] == q[off:off + s["longest"]]


def test_searches_bisect_only_their_window_group_and_find_the_same() -> None:
    """window_groups: each distinct window's suffixes are exactly the slice the table gives;
    searching only there changes no figure."""
    rng = random.Random(19)
    train = "".join(rng.choice("abcde \n") for _ in range(6000))
    idx = CopyIndex(train)
    sa, n = idx.sa, copying.NGRAM
    windows = {train[p:p + n] for p in range(len(train) - n + 1)}
    assert idx.groups is not None and len(idx.groups) == len(idx.grams) == len(windows)
    assert idx.groups[:, 1].sum() == len(train) - n + 1  # every window's suffix in one group
    for g in range(0, len(idx.grams), 7):
        start, size = (int(x) for x in idx.groups[g])
        w = train[sa[start]:sa[start] + n]
        assert len(w) == n and copying.window_hashes(idx.encode(w))[0] == idx.grams[g]
        assert all(train[sa[j]:sa[j] + n] == w for j in range(start, start + size))
        assert train[sa[start - 1]:sa[start - 1] + n] != w if start else True
        assert start + size == len(sa) or train[sa[start + size]:sa[start + size] + n] != w
    queries = ["".join(train[at:at + rng.randint(5, 60)] for at in (rng.randrange(5900) for _ in range(5)))
               for _ in range(30)]
    narrowed = idx.score_many(queries)
    idx.groups = None
    assert idx.score_many(queries) == narrowed


def test_wide_alphabets_and_copies_longer_than_the_compared_prefix() -> None:
    """Over 253 distinct characters the matcher packs two bytes per character; a copy longer
    than the CAP characters the search compares is still measured in full."""
    rng = random.Random(13)
    alphabet = [chr(0x400 + i) for i in range(300)]
    train = "".join(rng.choice(alphabet) for _ in range(4000))
    idx = CopyIndex(train)
    assert idx.matcher.width == 2
    for _ in range(10):  # splices of short copies: exact against the definition
        q = "".join(train[at:at + rng.randint(5, 40)] for at in (rng.randrange(3900) for _ in range(4)))
        assert (idx.score(q)["longest"], idx.score(q)["share"]) == expected(train, q)
    long = "#" * 7 + train[100:100 + 3 * suffixes.CAP] + "#"  # '#' is never in training
    s = idx.score(long)
    assert (s["longest"], s["offset"], s["train_offset"]) == (3 * suffixes.CAP, 7, 100)
    narrow = CopyIndex("ab" * 10 + train[:2000].encode("ascii", "replace").decode())
    assert narrow.matcher.width == 1


def test_of_equal_copies_the_first_of_the_longest_run_is_reported() -> None:
    """Two copies of the same length: the one in the longer run of found windows wins, and
    between runs of one length the earlier one (as a sequential search, longest run first)."""
    rng = random.Random(17)
    x, a, y, z = ("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(n)) for n in (25, 20, 10, 45))
    # training has x+a and a+y apart: in x+a+y every 20-window is found (one run of 36), and the
    # longest copy in it is x+a (45); z (45) is a run of 26 windows on its own
    train = "|".join(["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(500)), x + a, a + y, z])
    novel = "0123456789"
    s = CopyIndex(train).score(novel + z + novel + x + a + y + novel)
    assert s["longest"] == 45 and s["offset"] == 2 * len(novel) + len(z)  # the longer run's, though later
    train = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(5000))
    s = CopyIndex(train).score(novel + train[1000:1030] + novel + train[4000:4030] + novel)
    assert s["longest"] == 30 and s["offset"] == len(novel) and s["train_offset"] == 1000  # the earlier


def test_a_splice_of_many_copies_hits_the_budget_and_says_so(tmp_path: Path) -> None:
    rng = random.Random(2)
    sample = "".join(rng.choice("abcdefghijklmnop") for _ in range(2 * copying.MAX_LOOKUPS + 100))
    # training holds every 22-character window of the sample, each on its own line in shuffled
    # order: every window of the sample is found (one run), yet no copy is longer than 22, so
    # each start must be looked up: far more than the budget allows
    pieces = [sample[i:i + 22] for i in range(len(sample) - 21)]
    rng.shuffle(pieces)
    train = "\n".join(pieces)
    s = CopyIndex(train).score(sample)
    assert s["truncated"] and s["longest"] == 22 and s["share"] == 1.0
    res = CopyingMetric._result(sample, s)
    assert any(i.kind == "budget" for i in res.issues)


def _refuse(*_args):
    raise AssertionError("rebuilt although cached")


def _prepared(tmp_path: Path, text: str) -> CorpusData:
    src = tmp_path / "src.txt"
    src.write_text(text, encoding="utf-8")
    spec = CorpusSpec(name="tiny", domain="prose", split="tail", val_fraction=0.1)
    prepare(spec, Domain(), str(src), tmp_path / "corpus")
    return CorpusData(tmp_path / "corpus")


def test_metric_uses_ctx_data_and_caches_the_index(tmp_path: Path) -> None:
    rng = random.Random(5)
    text = "".join(rng.choice("abcdefgh \n") for _ in range(30_000))
    data = _prepared(tmp_path, text)
    metric = CopyingMetric()
    assert metric.check("anything", EvalContext(Domain())).metrics == {"copy_longest": None, "copy_share": None}
    ctx = EvalContext(Domain(), data)
    copied = "XYZ" + text[1000:1200] + "XYZ"
    res = metric.check(copied, ctx)
    assert res.metrics["copy_longest"] == 200
    assert any(i.kind == "copied" and i.offset == 3 for i in res.issues)
    # cached in memory (same object) and on disk (a fresh process would load, not rebuild)
    assert index_for(data) is index_for(data)
    files = sorted(p.name for p in data.path.glob("copy_*.npy"))
    assert len(files) == 5 and all(len(f.split(".")) == 3 for f in files)  # copy_index.<digest>.npy ...
    copying._cache.clear()
    names = ("suffix_array", "training_hashes", "gram_table", "bucket_starts", "window_groups", "presence_bits")
    built = {name: getattr(copying, name) for name in names}
    try:  # a fresh process loads the five files: none is rebuilt
        for name in names:
            setattr(copying, name, _refuse)
        again = index_for(data)
    finally:
        for name, fn in built.items():
            setattr(copying, name, fn)
    fresh = CopyIndex(data.text("train"))  # from the text, where the index came from the ids: the same
    assert np.array_equal(again.sa, fresh.sa) and np.array_equal(again.grams, fresh.grams)
    assert np.array_equal(again.starts, fresh.starts) and again.shift == fresh.shift
    assert np.array_equal(again.lut, fresh.lut) and np.array_equal(again.matcher.buf, fresh.matcher.buf)
    assert again.groups is not None and np.array_equal(again.groups, fresh.groups)
    assert np.array_equal(again.bits, fresh.bits) and again.bshift == fresh.bshift
    # a batch mixing samples shorter than a window (looked up not at all) with long ones scores
    # each as the index does on its own
    batch = ["XYZ", copied, text[5:5 + copying.NGRAM - 1], text[300:340]]
    for sample, got in zip(batch, metric.check_many(batch, ctx), strict=True):
        want = index_for(data).score(sample)
        assert got.metrics == {"copy_longest": float(want["longest"]), "copy_share": want["share"]}, sample
    assert metric.check_many(batch, ctx)[1].metrics == res.metrics
    assert data.text("train", 100) == data.text("train")[:100]
    # a check never raises, whatever the sample
    for weird in ["", "\x00\x01", "\ud800", "😀" * 50, "a" * 5000]:
        out = metric.check(weird, ctx)
        assert set(out.metrics) == {"copy_longest", "copy_share"}


@pytest.mark.slow
def test_index_of_5mb_of_real_text() -> None:
    """Correctness at a real size (uses ../shared/corpora); speed is measured by gen bench --eval."""
    shared = shared_corpora_dir()
    if shared is None or not (shared / "prose" / "warpeace.txt").is_file():
        pytest.skip("shared corpora not available")
    parts = [shared / "prose" / "warpeace.txt", shared / "prose" / "tinyshakespeare.txt",
             shared / "wiki" / "enwik8-prefix.xml"]
    text = "".join(p.read_text(encoding="utf-8") for p in parts if p.is_file())[:5_000_000]
    idx = CopyIndex(text)
    sa = idx.sa
    for j in random.Random(0).sample(range(len(sa) - 1), 3000):  # spot-check the order
        assert text[sa[j]:sa[j] + 300] <= text[sa[j + 1]:sa[j + 1] + 300]
    query = text[2_000_000:2_000_500] + " zq" + text[10:400]
    s = idx.score(query)
    assert s["longest"] >= 500 and s["offset"] == 0 and not s["truncated"]


def test_filter_and_slots_hold_every_training_window_and_found_stays_exact() -> None:
    rng = np.random.default_rng(3)
    grams = np.sort(rng.integers(0, 2**62, size=50_000, dtype=np.int64).astype(np.uint64) * np.uint64(3))
    shift, starts = copying.bucket_starts(grams)
    assert len(starts) - 1 >= len(grams) and starts[0] == 0 and starts[-1] == len(grams)
    top = (grams >> shift).astype(np.int64)  # every hash lies in its own slot's slice
    assert ((starts[top] <= np.arange(len(grams))) & (np.arange(len(grams)) < starts[top + 1])).all()
    shift, bits = copying.presence_bits(grams)  # the filter before the slots never misses a window
    top = grams >> shift
    assert ((bits[top >> np.uint64(3)] >> (top & np.uint64(7)).astype(np.uint8)) & 1).all()
    others = rng.integers(0, 2**63, size=50_000, dtype=np.int64).astype(np.uint64) >> shift
    assert ((bits[others >> np.uint64(3)] >> (others & np.uint64(7)).astype(np.uint8)) & 1).mean() < 0.08
    # found() is exactly membership of each window in training
    r = random.Random(5)
    train = "".join(r.choice("abcdefgh \n") for _ in range(20_000))
    query = "".join(r.choice("abcdefgh \n") for _ in range(300)) + train[5000:5100] + "zz" + train[9000:9050]
    idx = CopyIndex(train)
    found = idx.lookup(idx.encode(query))[0]
    truth = [query[i:i + copying.NGRAM] in train for i in range(len(query) - copying.NGRAM + 1)]
    assert found.tolist() == truth


def test_window_hashes_by_doubling_equal_horners_rule() -> None:
    """The doubling form gives exactly the plain rule's values (cached tables depend on them)."""
    from gen.evals.copydetect.grams import HASH_BASE, HASH_MIX, window_hashes

    def plain(codes: np.ndarray, n: int) -> np.ndarray:
        w = len(codes) - n + 1
        if w <= 0:
            return np.zeros(0, dtype=np.uint64)
        sym, h = (codes + 2).astype(np.uint64), np.zeros(w, dtype=np.uint64)
        for j in range(n):
            h = h * HASH_BASE + sym[j:j + w]
        return h * HASH_MIX

    rng = np.random.default_rng(0)
    for n in (1, 2, 3, 5, 16, 20, 31):
        for length in (0, 1, n - 1, n, n + 1, 300):
            codes = rng.integers(-1, 300, size=length)
            assert np.array_equal(window_hashes(codes, n), plain(codes, n)), (n, length)

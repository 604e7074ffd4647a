"""The prose domain: prepare, checks, calibration on the real files, tracker, features, sweep."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from conftest import shared_corpora_dir

from gen.core import checkpoint as ckpt_io
from gen.core.data import CorpusData, prepare
from gen.core.domain import EvalContext, PrepareReport
from gen.core.model import CharRNN, ModelArgs
from gen.core.registry import get_domain, resolve_corpus
from gen.core.vocab import Vocab
from gen.plugins.prose import ProseDomain, ProseStats
from gen.plugins.prose import text as pt
from gen.plugins.prose.sentences import SentenceIndex
from gen.plugins.prose.structure import ProseTracker

PLAY = """First Citizen:
Before we proceed any further, hear me speak.

All:
Speak, speak.

First Citizen:
You are all resolved rather to die than to famish?

All:
Resolved. resolved.

First Citizen:
First, you know Caius Marcius is chief enemy to the people.
We know't, we know't. Is't a verdict?

All:
No more talking on't; let it be done: away, away!
"""

NOVEL = """"Well, Prince, so Genoa and Lucca are now just family estates of the
Buonapartes. But I warn you," she said (and she meant it), "if you don't tell me.

"And the second paragraph of the same speech goes on here," she went on.

It was in July, 1805, and the speaker was the well-known Anna Pavlovna.
"""

GUTENBERG = """The Project Gutenberg EBook of Tiny, by Somebody\r
\r
This eBook is for the use of anyone anywhere at no cost.\r
\r
*** START OF THIS PROJECT GUTENBERG EBOOK TINY ***\r
\r
Produced by volunteers\r
\r
CHAPTER I\r
\r
It was a dark night.\r
\r
End of the Project Gutenberg EBook of Tiny, by Somebody\r
\r
*** END OF THIS PROJECT GUTENBERG EBOOK TINY ***\r
\r
Licence text that is not part of the book.\r
"""

D = ProseDomain()


def shared_prose() -> Path:
    shared = shared_corpora_dir()
    if shared is None or not (shared / "prose" / "tinyshakespeare.txt").is_file():
        pytest.skip("shared corpora not available")
    return shared / "prose"


# ---- prepare ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def real_corpora(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CorpusData]:
    prose = shared_prose()
    out = {}
    for name, fname in [("shakespeare", "tinyshakespeare.txt"), ("warandpeace", "warpeace.txt")]:
        path = tmp_path_factory.mktemp(name)
        prepare(resolve_corpus(name), D, str(prose / fname), path)
        out[name] = CorpusData(path)
    return out


def test_registered_with_manifests() -> None:
    assert isinstance(get_domain("prose"), ProseDomain)
    spec = resolve_corpus("prose")
    assert spec.name == "shakespeare" and spec.split == "tail" and spec.val_fraction == 0.1
    assert spec.defaults["gpu"]["n_layer"] == 3 and spec.defaults["gpu"]["n_hidden"] == 512
    assert spec.defaults["gpu"]["dropout"] > 0
    assert resolve_corpus("warandpeace").download["url"].endswith("/2600/pg2600.txt")


def test_cleaning_line_ends_bom_and_gutenberg() -> None:
    assert pt.normalise_newlines("\ufeffa\r\nb\rc\n") == "a\nb\nc\n"
    body, head, tail = pt.strip_gutenberg(pt.normalise_newlines(GUTENBERG))
    assert body == "Produced by volunteers\n\nCHAPTER I\n\nIt was a dark night.\n"
    assert head > 0 and tail > 0
    plain = "No markers here.\n\nJust text, kept as it is.  \n"
    assert pt.strip_gutenberg(plain) == (plain, 0, 0)


def test_documents_from_a_tree(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"\xef\xbb\xbfLine one\r\nLine two\rLine three\r\n")
    (tmp_path / "b.txt").write_bytes(GUTENBERG.encode())
    (tmp_path / "skip.md").write_text("not a text file of the corpus")
    spec = resolve_corpus("shakespeare")
    report = PrepareReport()
    docs = list(D.documents(tmp_path, spec, {}, report))
    assert docs == ["Line one\nLine two\nLine three\n", "Produced by volunteers\n\nCHAPTER I\n\nIt was a dark night.\n"]
    assert report.skipped == {"not matching the corpus file patterns": 1}
    assert len(report.notes) == 1 and "b.txt" in report.notes[0] and "Gutenberg" in report.notes[0]


def test_prepare_real_files_unchanged(real_corpora) -> None:
    prose = shared_prose()
    for name, fname in [("shakespeare", "tinyshakespeare.txt"), ("warandpeace", "warpeace.txt")]:
        data = real_corpora[name]
        original = (prose / fname).read_text(encoding="utf-8")
        # nothing changed but the separator after the document
        assert data.text("train") + data.text("val") == original + "\n"
        assert data.meta["val_chars"] == pytest.approx(0.1 * len(original), abs=2)
        assert data.meta["report"]["notes"] == []


# ---- checks -----------------------------------------------------------------------------

def check(sample: str, stats: ProseStats | None = None):
    ctx = EvalContext(D)
    ctx._stats, ctx._stats_built = stats, True
    return D.check(sample, ctx)


def test_word_validity_lists_invented_words() -> None:
    stats = ProseStats.from_text(PLAY)
    res = check("First Citizen:\nSpeak blorptastic, zzyqx people!\n", stats)
    assert res.metrics["word_train"] == pytest.approx(4 / 6)
    listed = {i.message.split("'")[1] for i in res.issues if i.kind == "invented_word"}
    assert listed == {"blorptastic", "zzyqx"}
    inv = next(i for i in res.issues if i.kind == "invented_word")
    assert inv.offset == 21 and "blorptastic" in inv.excerpt
    # a word cut by the length limit at the very end is not counted
    assert check("Speak, speak, peop", stats).metrics["word_train"] == 1.0


def test_word_list_when_installed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    words = tmp_path / "words"
    words.write_text("speak\nthe\npeople\nbanish\n")
    monkeypatch.setenv("GEN_WORDLIST", str(words))
    res = check("Speak the people, banish'd the zorg.\n")
    assert res.metrics["word_dict"] == pytest.approx(5 / 6)  # banish'd = banish + 'd
    assert res.metrics["word_train"] is None and res.metrics["invented"] == pytest.approx(1 / 6)
    monkeypatch.setenv("GEN_WORDLIST", "")
    res = check("Speak the people.\n")
    assert res.metrics["word_dict"] is None and res.metrics["invented"] is None


def test_quote_and_bracket_pairing() -> None:
    good = "intro\n\n" + NOVEL + "\nend\n"
    res = check(good)
    assert res.metrics["quote_pairing"] == 1.0 and res.metrics["bracket_pairing"] == 1.0
    bad = 'intro\n\n"He said so, and left.\n\nThen it rained (a lot.\n\nA stray ) here.\n\nend\n'
    res = check(bad)
    assert res.metrics["quote_pairing"] == 0.0
    assert res.metrics["bracket_pairing"] == 0.0
    kinds = [i.kind for i in res.issues]
    assert kinds.count("unpaired_quote") == 1 and kinds.count("unpaired_bracket") == 2


def test_speaker_blocks_and_known_speakers() -> None:
    stats = ProseStats.from_text(PLAY)
    assert stats.play and stats.speakers == {"First Citizen", "All"}
    assert check(PLAY, stats).metrics["speaker_blocks"] == 1.0
    broken = ("All:\nYes.\n\nGHOSTLY KING:\n\nno speaker here\nat all\n\nFirst Citizen:\nNo.\n\n"
              "All:\nAy.\nFirst Citizen:\nNay.\n\nAll:\nCome:\nspeak.\n\nAll:\nAy.\n")
    res = check(broken, stats)
    assert res.metrics["speaker_blocks"] == pytest.approx(2 / 5)
    assert any(i.kind == "speaker_block" and "second speaker" in i.message for i in res.issues)
    assert res.metrics["speaker_known"] == pytest.approx(5 / 6)
    assert any(i.kind == "unknown_speaker" and "GHOSTLY KING" in i.message for i in res.issues)
    assert ProseStats.from_text(NOVEL).play is False
    assert check(NOVEL, ProseStats.from_text(NOVEL)).metrics["speaker_blocks"] is None


def test_repetition_catches_a_loop() -> None:
    loop = "and the king said that the same thing was the same thing that was a startup " * 8
    assert check(loop).metrics["repeat_ngrams"] > 0.7
    assert any(i.kind == "repetition" for i in check(loop).issues)
    assert check(PLAY).metrics["repeat_ngrams"] < 0.1


def test_check_never_raises() -> None:
    stats = ProseStats.from_text(PLAY)
    weird = ["", "\n\n\n", ":", "A:\n", "((((", '"""', "\x00\x01\x02", "\ud800abc", "😀" * 300,
             "X:\n" * 500, "\r\n" * 10, "a" * 20_000, "".join(chr(i) for i in range(32, 3000))]
    for s in weird:
        for st in (None, stats):
            res = check(s, st)
            assert set(res.metrics) <= {m.name for m in D.metrics}
            assert not any(i.kind == "check_error" for i in res.issues), s[:20]


TRICKY = ["", "a", "don't o'er banish’d rock''n'roll 'tis x'", "Ἀθῆναι café naïve ΟΔΟΣ. Σ! İstanbul",
          "ab1cd_ef x2 ½ ² ٣", "\x00\x01\x02 a.\x02b. c!\x01", "\ud800abc\udc00 d", "It ends.’ Yes? \"No!\" (ok.) x",
          "\U0001d400bc x\U00010000y \U0001f600 \U00020000\U0002a6d6 ok",  # past the BMP: the full table
          "KING RICHARD III:\nNow is. The winter!\n\nAll:\nSpeak, speak.\nFirst Citizen:", "'a'", "a'", "''a''b"]


def _reference_sentence_lengths(text: str, play: bool, drop_ends: bool) -> list[int]:
    """The plain definition: split at the sentence ends, count each piece's words."""
    if play:
        text = "\n".join(ln for ln in text.split("\n")
                         if not (pt.SPEAKER.fullmatch(ln) and len(ln.split()) <= pt.MAX_SPEAKER_WORDS))
    pieces = pt._SENT_END.split(text)
    pieces = pieces[1:-1] if drop_ends else pieces
    return [n for n in (len(pt.WORD.findall(p)) for p in pieces) if n > 0]


def test_fast_word_and_sentence_counts_equal_the_regex_definitions() -> None:
    """words_at and sentence_lengths (numpy per character) against WORD and a split-and-count,
    on odd text and on windows of the real play text."""
    texts = TRICKY + [PLAY, PLAY[3:211], "".join(chr(i) for i in range(32, 3000))]
    for t in texts:
        words, starts = pt.words_at(t)
        assert words == pt.WORD.findall(t) and starts.tolist() == [m.start() for m in pt.WORD.finditer(t)], t
        if t in TRICKY or t == PLAY:  # (the last text has no whitespace for 3,000 characters)
            assert pt.distinct_words(t, block=24) == set(words)  # read in blocks cut at whitespace
        for play in (False, True):
            for drop in (False, True):
                assert pt.sentence_lengths(t, play, drop) == _reference_sentence_lengths(t, play, drop), (t, play)


def test_sentence_index_windows_equal_sentence_lengths() -> None:
    """Every window that starts at a line start, every end (mid-word, mid-end, past the text),
    play and not: the index's answer is sentence_lengths' answer."""
    odd = ("Hello. World!\nKING:\nNow is the: winter. Ends here.\nA: b.\n\nFIRST CITIZEN:\n"
           "\"Stop!\" he said.\u2019 Then?")
    for text in (odd, PLAY):
        for play in (False, True):
            index = SentenceIndex(text, play)
            for s in [0] + [i + 1 for i, c in enumerate(text) if c == "\n"]:
                for e in range(s, len(text) + 3, 1 if text is odd else 7):
                    assert index.window(s, e) == pt.sentence_lengths(text[s:e], play), (play, s, e)
            # many windows at once: each one's lengths, in order (empty and overlapping ones too)
            rng = random.Random(len(text))
            lines = [0] + [i + 1 for i, c in enumerate(text) if c == "\n"]
            spans = [(s, s + rng.randint(0, 80)) for s in rng.choices(lines, k=60)] + [(len(text), len(text) + 5)]
            assert index.windows(spans).tolist() == [n for s, e in spans for n in index.window(s, e)]
    assert SentenceIndex("", True).window(0, 10) == []
    assert SentenceIndex("", True).windows([]).tolist() == []


def test_repeated_ngram_share_counts_each_repeat_after_the_first() -> None:
    toks = "a b c d a b c d a b c d e".split()
    seen, repeated = set(), 0
    for i in range(len(toks) - 3):
        g = tuple(toks[i:i + 4])
        repeated += g in seen
        seen.add(g)
    assert pt.repeated_ngram_share(toks, 4) == repeated / (len(toks) - 3) > 0
    assert pt.repeated_ngram_share(toks[:4], 4) is None


# ---- calibration on the real files --------------------------------------------------------

def _mean(results, name):
    vals = [r.metrics[name] for r in results if r.metrics.get(name) is not None]
    return sum(vals) / len(vals)


@pytest.mark.parametrize("corpus", ["shakespeare", "warandpeace"])
def test_real_text_beats_corrupted_text(real_corpora, corpus: str) -> None:
    data = real_corpora[corpus]
    ctx = EvalContext(D, data)
    rng = random.Random(11)
    real = D.baseline(data, [1200] * 25, rng)
    corrupted = [D.corrupt(t, rng) for t in real]
    r = [D.check(s, ctx) for s in real]
    c = [D.check(s, ctx) for s in corrupted]
    # real held-out text scores well in absolute terms (without the system word list, wamerican,
    # "invented" counts every word the training text lacks: about 6% of real held-out words) ...
    wordlist = pt.load_wordlist() is not None
    assert _mean(r, "word_train") > 0.92 and _mean(r, "invented") < (0.03 if wordlist else 0.1)
    # ... and corrupted text clearly worse, on every figure the corruption touches
    assert _mean(c, "word_train") < _mean(r, "word_train") - 0.1
    assert _mean(c, "invented") > _mean(r, "invented") + 0.1
    if pt.load_wordlist() is not None:
        assert _mean(r, "word_dict") > 0.92
        assert _mean(c, "word_dict") < _mean(r, "word_dict") - 0.1
    if corpus == "shakespeare":
        assert _mean(r, "speaker_blocks") > 0.9
        assert _mean(c, "speaker_blocks") < _mean(r, "speaker_blocks") - 0.4
    else:
        assert _mean(r, "quote_pairing") > 0.95
        assert _mean(c, "quote_pairing") < _mean(r, "quote_pairing") - 0.2
    # a loop of real text is caught by the repetition figure, real text is not
    looped = [t[:150] * 8 for t in real[:5]]
    assert _mean([D.check(s, ctx) for s in looped], "repeat_ngrams") > 0.5 > 10 * _mean(r, "repeat_ngrams")
    # sentence lengths pooled over the set are near training's for real text, off for a loop
    # (a weak figure on 25 windows: KS noise alone is about 0.1 there)
    ks_real = D.summarize(real, r, ctx)["sentence_len_ks"]
    assert ks_real < 0.2 and D.summarize(looped * 5, [], ctx)["sentence_len_ks"] > ks_real


# ---- tracker ----------------------------------------------------------------------------

def test_tracker_bans_closers_with_nothing_open_and_closes_in_order() -> None:
    t = D.tracker()
    assert {")", "]", "}", "\u201d"} <= t.constraint().ban and '"' not in t.constraint().ban
    t.feed_text('He said "yes (and [maybe')
    assert ")" in t.constraint().ban and "]" not in t.constraint().ban
    assert '"' in t.constraint().ban  # closing the quote would cross the open brackets
    assert t.closing() == '])"' and t.violations() == 0
    t2 = D.tracker()
    t2.feed_text("a ) b (c] d")
    assert t2.violations() == 2


def test_tracker_paragraphs_and_caching() -> None:
    t = D.tracker()
    t.feed_text('"Unclosed speech.\n')
    assert "\n" not in t.constraint().ban  # an open quote may run into the next paragraph
    t.feed("\n")
    assert t.closing() == ""  # the paragraph break ended it
    t.feed_text("Some (aside\n")
    assert "\n" in t.constraint().ban  # no paragraph break inside brackets
    a = D.tracker()
    a.feed_text("x (y")
    first = a.constraint()
    a.feed_text(" (z [w] v) u")  # back to the same state: the very same Constraint object
    assert a.constraint() is first
    b = D.tracker()
    b.feed_text("((q) r")
    assert b.constraint() == first  # equal across trackers, so the sampler's mask cache hits
    only_quotes = ProseTracker(["quotes"])
    assert ")" not in only_quotes.constraint().ban and "\u201d" in only_quotes.constraint().ban


def test_tracker_never_flags_real_text() -> None:
    prose = shared_prose()
    for fname in ["tinyshakespeare.txt", "warpeace.txt"]:
        text = (prose / fname).read_text(encoding="utf-8")
        t = D.tracker()
        t.feed_text(text)  # feed() counts every character the constraint of its state banned
        assert t.violations() == 0, fname
        assert t.closing() == "" and len(t._cache) <= 12


# ---- features ---------------------------------------------------------------------------

def test_features_on_a_play_and_quotes() -> None:
    text = 'All:\nSpeak, "now" he.\n'
    f = D.features(text)
    assert set(f) == {"in_quotes", "line_position", "in_speaker_name", "word_position", "after_punctuation"}
    assert all(len(v) == len(text) and v.dtype.name == "float32" for v in f.values())
    assert "".join(c for c, v in zip(text, f["in_speaker_name"], strict=True) if v) == "All:"
    assert "".join(c for c, v in zip(text, f["in_quotes"], strict=True) if v) == '"now'
    assert f["line_position"][text.index("S")] == 1 and f["line_position"][4] == 0
    assert f["word_position"][text.index("k")] == 5 and f["word_position"][text.index(",")] == 0
    assert f["after_punctuation"][text.index(",") + 1] == 1 and f["after_punctuation"][text.index('"')] == 0


def test_features_on_real_text() -> None:
    prose = shared_prose()
    play = D.features((prose / "tinyshakespeare.txt").read_text(encoding="utf-8")[:50_000])
    assert 0.03 < play["in_speaker_name"].mean() < 0.2 and play["in_quotes"].max() == 0
    novel = D.features((prose / "warpeace.txt").read_text(encoding="utf-8")[:50_000])
    assert 0.15 < novel["in_quotes"].mean() < 0.6


# ---- temperature sweep (evals/sweep.py) ---------------------------------------------------

def test_sweep_table_plot_and_the_temperature_trade_off(tmp_path: Path) -> None:
    """A random-weight model already shows the two failure ends: greedy-ish sampling loops
    (repetition high), hot sampling spells nothing (word validity low)."""
    from gen.evals.sweep import run_sweep

    vocab = Vocab(sorted(set(PLAY)))
    torch.manual_seed(0)
    model = CharRNN(ModelArgs(vocab_size=len(vocab), n_layer=1, n_hidden=32, n_embd=8))
    ckpt = tmp_path / "m.pt"
    ckpt_io.save(ckpt, {"model_args": model.args.to_dict(), "model": model.state_dict(),
                        "vocab": vocab.to_dict(), "domain": "prose", "corpus": "x"})
    ctx = EvalContext(D)
    ctx._stats, ctx._stats_built = ProseStats.from_text(PLAY * 3), True
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 32-unit model: thread hand-offs would cost more than the maths
    try:
        res = run_sweep(ckpt, ctx, [0.01, 3.0], n=2, length=200, seed=1, out_dir=tmp_path / "sweep")
    finally:
        torch.set_num_threads(threads)
    cold, hot = res.rows
    # the generic metrics come through the eval pipeline beside the domain's own
    assert cold["repetition"] > 0.5 and cold["diversity"] < 0.5 < hot["diversity"]
    assert hot["word_train"] < 0.5 and hot["invented"] > 0.5
    assert "word_train" in res.table() and res.table().count("\n") == 3
    saved = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert saved["temperatures"] == [0.01, 3.0] and len(saved["rows"]) == 2
    assert (tmp_path / "sweep" / "sweep.png").read_bytes()[:4] == b"\x89PNG"


def test_pooled_sentence_lengths_equal_each_samples_own() -> None:
    """summarize() measures every sample in one pass (samples joined by newlines): the lengths
    are each sample's sentence_lengths, in order, for play text and not, odd samples included."""
    samples = ["", "One. Two words here. Three", "KING:\nNow is the: winter. Ends here.\n",
               PLAY, "no end at all", "Stop! Go? Yes.\n\nFIRST CITIZEN:\nWe are. Accounted poor.", "\n\n. . ."]
    for play in (False, True):
        pooled = ProseDomain._pooled_lengths(samples, play)
        assert list(pooled) == [n for s in samples for n in pt.sentence_lengths(s, play)], play


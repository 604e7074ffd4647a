"""The text domain: brackets, quotes, known words and line lengths, on tiny fixtures."""

from __future__ import annotations

import random

from gen.core.api import EvalContext
from gen.plugins.text import TextDomain, TextStats

D = TextDomain()


def check(sample: str, stats: TextStats | None = None):
    ctx = EvalContext(D)
    ctx._stats, ctx._stats_built = stats, True
    return D.check(sample, ctx)


def test_brackets_and_quotes():
    good = check('f(x) = [a, {b}]\nshe said "yes"\n')
    assert good.metrics["bracket_errors_per_kb"] == 0 and good.metrics["brackets_open_at_end"] == 0
    assert good.metrics["quote_balance"] == 1.0
    bad = check('f(x] and )\nshe said "yes\n(open')
    assert bad.metrics["bracket_errors_per_kb"] > 0 and bad.metrics["brackets_open_at_end"] == 1
    assert bad.metrics["quote_balance"] == 0.0
    assert [i.kind for i in bad.issues] == ["bracket_mismatch", "bracket_mismatch"]
    plain = check("no brackets or quotes here\n")
    assert plain.metrics["bracket_errors_per_kb"] is None and plain.metrics["quote_balance"] is None


def test_known_words_against_the_training_text():
    stats = TextStats(frozenset({"the", "cat", "sat"}), 11.0)
    res = check("The cat sat. The dog ran.", stats)
    assert res.metrics["known_words"] == 4 / 6
    assert check("The cat", None).metrics["known_words"] is None  # no --against: no figure


def test_check_never_raises_and_stays_linear():
    rng = random.Random(0)
    weird = ["", "(" * 100_000, ")" * 50_000, '"' * 1001, "\ud800x", "\x00\x01", "😀" * 500,
             "".join(rng.choice("()[]{}\"\n ab") for _ in range(200_000))]
    for s in weird:
        res = check(s, TextStats(frozenset(), None))
        assert len(res.issues) <= 5


def test_features_line_up_with_the_text():
    text = 'a (b "c")\nd'
    f = D.features(text)
    assert set(f) == {"line_position", "bracket_depth", "in_quotes"}
    assert all(len(v) == len(text) for v in f.values())
    assert f["bracket_depth"][4] == 1 and f["in_quotes"][6] == 1 and f["line_position"][10] == 1

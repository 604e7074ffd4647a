"""Guided sampling: masks applied, never a dead end, names tracker, guided-vs-unguided report."""

from __future__ import annotations

import torch

from gen.core.domain import Constraint, Tracker
from gen.core.model import CharRNN, ModelArgs
from gen.core.sample import SampleOptions, sample
from gen.core.vocab import Vocab
from gen.evals.guided import log_likelihood
from gen.plugins.names import NameTracker


class BanAll(Tracker):
    constraints = ("all",)

    def constraint(self):
        return Constraint(allow=frozenset())


class OnlyAB(Tracker):
    constraints = ("ab",)

    def constraint(self):
        return Constraint(allow=frozenset("ab"))


def _model():
    torch.manual_seed(0)
    vocab = Vocab("abcdef\n")
    return CharRNN(ModelArgs(vocab_size=len(vocab), n_layer=1, n_hidden=16, n_embd=4)).eval(), vocab


def test_mask_restricts_and_dead_end_falls_back():
    model, vocab = _model()
    texts, stats = sample(model, vocab, SampleOptions(n=3, length=50, seed=1), trackers=[OnlyAB() for _ in range(3)])
    assert all(set(t) <= set("ab") for t in texts) and stats.masked_steps == 150
    texts, stats = sample(model, vocab, SampleOptions(n=2, length=20, seed=1), trackers=[BanAll(), BanAll()])
    assert stats.fallbacks == 40 and all(len(t) == 20 for t in texts)
    # with top-k the allowed characters may all be truncated away: that is a dead end too
    texts, stats = sample(model, vocab, SampleOptions(n=2, length=20, top_k=1, seed=1), trackers=[OnlyAB(), OnlyAB()])
    assert stats.masked_steps + stats.fallbacks == 40
    texts, stats = sample(model, vocab, SampleOptions(n=1, length=30, top_k=7, seed=1), trackers=[OnlyAB()])
    assert set(texts[0]) <= set("ab") and stats.fallbacks == 0


def test_name_tracker_real_names_never_flagged(shared):
    names = (shared / "names" / "names.txt").read_text().splitlines()
    t = NameTracker()
    for name in names:
        for ch in name + "\n":
            c = t.constraint()
            assert ch not in c.ban and (c.allow is None or ch in c.allow), name
            t.feed(ch)
    assert t.violations() == 0


def test_name_tracker_bans_empty_long_and_banned():
    t = NameTracker(banned={"ann"}, max_len=5)
    assert "\n" in t.constraint().ban  # no empty name
    t.feed_text("ann")
    assert "\n" in t.constraint().ban  # ending now would copy a banned name
    t.feed_text("ie")
    assert t.constraint().allow == frozenset("\n")  # at max length only the newline is allowed
    t.feed_text("\n\n")
    assert t.violations() == 1  # the empty name fed on purpose is counted


def test_guided_names_are_nonempty_and_novel(ws, names_file, run, tmp_path):
    from conftest import TINY

    run("prepare", "nm", "--domain", "names", "--src", str(names_file))
    run("train", "nm", *TINY, "--max-steps", "40", "--run-name", "g")
    train_names = set(names_file.read_text().split())
    out = tmp_path / "g.txt"
    run("sample", "nm", "-n", "60", "--seed", "0", "--novel-only", "--out", str(out))
    names = out.read_text().split("\n")[:-1]
    assert len(names) == 60 and all(names) and not (set(names) & train_names)
    result = run("guided", "nm", "-n", "30", "-l", "20", "--seed", "0", "--against", "nm").output
    assert "unguided" in result and "model_nll" in result and "fallbacks" in result
    cost = run("bench", "--configs", "none", "--guided", "nm").output
    assert "slowdown" in cost and "names" in cost


def test_log_likelihood_prefers_likely_text():
    model, vocab = _model()
    with torch.no_grad():  # make 'a' overwhelmingly likely after anything
        model.head.bias.zero_()
        model.head.bias[vocab.stoi["a"]] = 10.0
    good, bad = log_likelihood(model, vocab, ["aaaa", "fdfd"])
    assert good < 0.01 < bad

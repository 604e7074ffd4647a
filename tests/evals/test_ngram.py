"""n-gram baselines: the numpy Kneser-Ney build against the formula computed by hand with plain
dictionaries, the cache beside the corpus, `gen baseline`, and bad input."""

from __future__ import annotations

import collections
import json
import math
import random

import numpy as np
import pytest

from gen.core.errors import GenError
from gen.evals.baselines.ngram import NO_N1_DISCOUNT, best, kn_losses


def slow_kn(train: list[int], val: list[int], vocab: int, order: int) -> float:
    """Interpolated Kneser-Ney as the module docstring states it, one dictionary per order."""
    raw = [collections.Counter() for _ in range(order + 1)]
    cont = [collections.Counter() for _ in range(order + 1)]
    for j in range(1, order + 1):
        before = collections.defaultdict(set)
        for s in range(len(train) - j + 1):
            g = tuple(train[s:s + j])
            raw[j][g] += 1
            if s > 0:
                before[g].add(train[s - 1])
        cont[j].update({g: len(chars) for g, chars in before.items()})

    def discount(counts: collections.Counter) -> float:
        n1 = sum(v == 1 for v in counts.values())
        n2 = sum(v == 2 for v in counts.values())
        return n1 / (n1 + 2 * n2) if n1 else NO_N1_DISCOUNT

    def sums(counts: collections.Counter) -> tuple[collections.Counter, collections.Counter]:
        s, t = collections.Counter(), collections.Counter()
        for g, v in counts.items():
            s[g[:-1]] += v
            t[g[:-1]] += 1
        return s, t

    tables = {(j, top): (*sums(c), discount(c)) for j in range(1, order + 1)
              for top, c in ((True, raw[j]), (False, cont[j]))}

    def prob(j: int, history: tuple, w: int, top: bool) -> float:
        if j == 0:
            return 1.0 / vocab
        counts = raw[j] if top else cont[j]
        s, t, d = tables[(j, top)]
        h = history[len(history) - (j - 1):] if j > 1 else ()
        lower = prob(j - 1, h, w, False)
        return (max(counts[h + (w,)] - d, 0) + d * t[h] * lower) / s[h] if s[h] > 0 else lower

    total = 0.0
    for i, w in enumerate(val):
        if i >= order - 1:
            total -= math.log(prob(order, tuple(val[i - order + 1:i]), w, True))
        else:  # a short history: the longest order it allows, in its continuation form
            total -= math.log(prob(i + 1, tuple(val[:i]), w, False))
    return total / len(val)


def _text(n: int, seed: int) -> list[int]:
    """A repetitive text with noise: orders matter, and some strings occur once, some twice."""
    rng = random.Random(seed)
    pattern = [0, 1, 2, 0, 1, 3, 4, 2, 5]
    return [rng.randrange(6) if rng.random() < 0.3 else pattern[i % len(pattern)] for i in range(n)]


@pytest.mark.parametrize("seed", [0, 1])
def test_kneser_ney_matches_the_formula_computed_by_hand(seed):
    ids = _text(2400, seed)
    train, val = ids[:2000], ids[2000:] + [6, 7]  # two characters only the vocabulary knows
    fast = kn_losses(np.array(train), np.array(val), 8, 7)
    assert [r.order for r in fast] == list(range(1, 8))
    for r in fast:
        assert r.val_nats == pytest.approx(slow_kn(train, val, 8, r.order), abs=1e-9)
    assert 2 <= best(fast).order <= 7  # higher orders overfit this noisy text: the best is inside


def test_every_validation_character_has_a_finite_loss_and_discounts_are_in_range():
    res = kn_losses(np.array([0, 0, 0, 0]), np.array([1, 0, 2]), 3, 3)  # unseen characters in validation
    assert all(math.isfinite(r.val_nats) for r in res)
    assert all(0 < r.discount <= 1 for r in res)
    one = kn_losses(np.array([0] * 50), np.array([0] * 10), 1, 4)  # one character: nothing to learn
    assert all(r.val_nats == pytest.approx(0.0, abs=1e-12) for r in one)


def test_bad_orders_are_refused_with_the_limit():
    with pytest.raises(GenError, match="longer than the training split"):
        kn_losses(np.array([0, 1, 2]), np.array([0]), 3, 5)
    with pytest.raises(GenError, match="choose 1 to"):
        kn_losses(np.array([0, 1, 2]), np.array([0]), 3, 0)
    with pytest.raises(GenError, match="no validation text"):
        kn_losses(np.array([0, 1, 2]), np.array([], dtype=np.int64), 3, 2)


def test_gen_baseline_table_json_and_cache(run, ws, names_file, tmp_path):
    run("prepare", "nm", "--domain", "names", "--src", str(names_file))
    out = tmp_path / "b.json"
    first = run("baseline", "nm", "--order", "5", "--json", str(out)).output
    rows = json.loads(out.read_text())["rows"]
    assert [r["order"] for r in rows] == [1, 2, 3, 4, 5] and "* best: order" in first
    assert all(r["val_bpc"] == pytest.approx(r["val_nats"] / math.log(2)) for r in rows)
    assert "building n-gram models" in first and "cached" not in first
    again = run("baseline", "nm", "--order", "3").output  # a lower order is served by the cache
    assert "cached" in again and "building" not in again
    cache = list((ws / "corpora" / "nm").glob("ngram-k*.json"))
    assert len(cache) == 1
    names_file.write_text(names_file.read_text() + "Zzyzx\nQuorra\n")  # other text: the cache is stale
    run("prepare", "nm", "--src", str(names_file))
    assert "building" in run("baseline", "nm", "--order", "3").output
    assert run("baseline", "nm", "--order", "99", code=2).exit_code == 2


def test_chunked_scoring_carries_the_state_and_dynamic_evaluation_changes_no_weights():
    import torch

    from gen.core.model import CharRNN, ModelArgs, cross_entropy
    from gen.core.scoring import Dynamic, char_losses

    torch.manual_seed(0)
    model = CharRNN(ModelArgs(vocab_size=9, n_layer=2, n_hidden=16, n_embd=4))
    ids = np.array(_text(700, 4))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    static = char_losses(model, ids, start=8, chunk=64)
    with torch.no_grad():  # the whole text in one call: what carrying the state across chunks must give
        x = torch.tensor([[8, *ids[:-1]]])
        logits, _ = model(x)
        whole = torch.nn.functional.cross_entropy(logits[0], torch.tensor(ids), reduction="none").numpy()
    assert np.allclose(static, whole, atol=1e-5)
    assert float(cross_entropy(logits, torch.from_numpy(ids[None]))) == pytest.approx(static.mean(), abs=1e-5)
    dyn = char_losses(model, ids, start=8, chunk=64, dynamic=Dynamic(lr=3e-3, decay=0.0))
    assert np.allclose(dyn[:64], static[:64], atol=1e-6)  # scored before any step
    assert dyn[64:].mean() < static[64:].mean()  # it learns the repetitive text as it reads
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # on a copy only


def test_gen_score_beside_the_ngram_dynamic_and_by_structure(run, ws, names_file, tmp_path):
    from conftest import TINY

    run("prepare", "nm", "--domain", "names", "--src", str(names_file))
    run("train", "nm", *TINY, "--max-steps", "30", "--run-name", "r")
    ckpt = ws / "runs" / "nm" / "r" / "best.pt"
    before = ckpt.read_bytes()
    out = tmp_path / "s.json"
    text = run("score", str(ckpt), "--dynamic", "--by-structure", "--order", "4", "--json", str(out)).output
    assert "model (static)" in text and "model (dynamic evaluation)" in text and "best n-gram (order" in text
    assert "loss by structure" in text and "position" in text
    s = json.loads(out.read_text())
    assert s["chars"] > 0 and s["ngram_order"] in range(1, 5)
    assert s["model_gain_over_ngram_nats"] == pytest.approx(s["ngram_nats"] - s["model_nats"])
    assert {r["feature"] for r in s["by_structure"]} and (ws / "runs" / "nm" / "r" / "structure.png").is_file()
    assert ckpt.read_bytes() == before  # dynamic evaluation never writes the adapted weights back
    from gen.core.workspace import RunDir
    from gen.evals.inspect.runpage import _ngram_line, render_page

    assert "Where the model beats counting" in render_page(ws / "runs" / "nm" / "r")  # the chart in gen report
    line = _ngram_line(RunDir(ws / "runs" / "nm" / "r"), "nm")  # gen report draws it on the curves
    assert list(line.values()) == [pytest.approx(s["ngram_nats"])] and f"order {s['ngram_order']}" in next(iter(line))
    own = tmp_path / "mine.txt"
    own.write_text("Ada\nBob\n" * 50)
    assert "on " + str(own) in run("score", str(ckpt), "--file", str(own)).output


def test_ngram_samples_only_hold_strings_of_the_training_text():
    from gen.evals.baselines.sampler import NgramSampler, build

    ids = np.array(_text(5000, 7))
    order = 4
    sampler = NgramSampler(build(ids, order, separator=5), ids, order)
    grams = {tuple(ids[s:s + order]) for s in range(len(ids) - order + 1)}
    for temperature in (0.05, 0.8, 1.5):
        out = sampler.sample([300, 50, 1], temperature, random.Random(2))
        assert [len(o) for o in out] == [300, 50, 1]
        for o in out:  # every order-long window is one the training text holds (restarts aside)
            windows = [tuple(o[s:s + order]) for s in range(len(o) - order + 1)]
            assert sum(w in grams for w in windows) >= 0.95 * len(windows)
    cold = sampler.sample([2000], 0.05, random.Random(3))[0]
    warm = sampler.sample([2000], 1.5, random.Random(3))[0]
    assert len(set(map(tuple, np.lib.stride_tricks.sliding_window_view(cold, order)))) < \
        len(set(map(tuple, np.lib.stride_tricks.sliding_window_view(warm, order))))  # colder: fewer kinds


def test_gen_eval_shows_the_ngram_column(run, ws, names_file, tmp_path):
    run("prepare", "nm", "--domain", "names", "--src", str(names_file))
    samples = tmp_path / "s.txt"
    samples.write_text("\n".join(names_file.read_text().split()[:40]) + "\n")
    out = tmp_path / "e"
    text = run("eval", "names", str(samples), "--against", "nm", "--out", str(out), "--temperature", "1.0").output
    assert "n-gram" in text.splitlines()[0] and "samples of the order-" in text and "temperature 1.0" in text
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["ngram"]) == set(summary["baseline"]) and summary["ngram_texts"] == 40
    assert isinstance(summary["ngram_as_good"], list)
    assert list((ws / "corpora" / "nm").glob("ngram_ctx.*.npy"))  # the table is cached beside the corpus
    assert "n-gram" not in run("eval", "names", str(samples), "--against", "nm", "--no-baseline").output

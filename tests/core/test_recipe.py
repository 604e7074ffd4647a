"""The recipe picked for the budget (core/recipe.py): the rule on given speeds, what it may not
touch, the speeds it times and caches, and --show-config's reasons."""

from __future__ import annotations

import json
import re

import pytest

from gen.core import recipe
from gen.core.config import TrainConfig
from gen.core.recipe import CANDIDATES, params, pick

MB = 1_000_000


def _cfg(**given) -> TrainConfig:
    """A config as resolution leaves it: the domain's CPU defaults, then what was given."""
    cfg = TrainConfig().update({"n_layer": 2, "n_hidden": 256, "dropout": 0.1, "max_time": 900.0},
                               "domain prose (cpu)")
    return cfg.update(given, "command line")


def _speeds(base: float) -> dict[tuple[int, int], float]:
    """chars/s falling with the work per character, as measured on every CPU so far."""
    return {s: base * params(2, 256, 65, 64) / params(*s, 65, 64) for s in CANDIDATES}


def test_a_longer_budget_or_faster_machine_picks_a_bigger_model():
    small = pick(_cfg(max_time=120.0), MB, 65, _speeds(40_000)).values
    big = pick(_cfg(max_time=3600.0), MB, 65, _speeds(40_000)).values
    assert params(small["n_layer"], small["n_hidden"], 65, 64) < params(big["n_layer"], big["n_hidden"], 65, 64)
    fast = pick(_cfg(max_time=120.0), MB, 65, _speeds(400_000)).values
    assert (fast["n_layer"], fast["n_hidden"]) != (small["n_layer"], small["n_hidden"])


def test_more_epochs_more_regularisation():
    few = pick(_cfg(), 40 * MB, 65, _speeds(40_000)).values  # one pass or less over 40 MB
    many = pick(_cfg(), MB // 5, 65, _speeds(40_000)).values  # many passes over 0.2 MB
    assert few["dropout"] < many["dropout"] <= recipe.MAX_DROPOUT
    assert "ema" not in few and 0.99 < many["ema"] < 1
    assert "weight_decay" in many and many["weight_drop"] > 0 and "weight_drop" not in few
    # a small corpus caps the model: never more parameters than MAX_PARAMS_PER_CHAR per character
    assert params(many["n_layer"], many["n_hidden"], 65, 64) <= recipe.MAX_PARAMS_PER_CHAR * MB // 5


def test_averaged_weights_stay_in_range_for_a_tiny_fast_model():
    """Millions of steps in the budget: the decay would round to 1.0, which the config refuses."""
    values = pick(_cfg(n_layer=1, n_hidden=8, max_time=3600.0), MB // 5, 65, {(1, 8): 5e8}).values
    assert 0.99 < values["ema"] <= recipe.RANGES["ema"][1]
    TrainConfig().update(values, "recipe for the budget")  # accepted


def test_a_short_budget_halves_the_sequence_for_more_updates():
    assert pick(_cfg(max_time=120.0), MB, 65, _speeds(5_000)).values["seq_len"] == 64
    assert pick(_cfg(max_time=3600.0), MB, 65, _speeds(40_000)).values["seq_len"] == 128


def test_what_someone_chose_is_never_replaced():
    cfg = _cfg(n_hidden=64, dropout=0.3, seq_len=32)
    cfg.update({"ema": 0.0}, "manifest corpora/x.toml (cpu)")
    picked = pick(cfg, MB // 5, 65, {(2, 64): 50_000.0})
    assert not {"n_layer", "n_hidden", "dropout", "seq_len", "ema", "weight_decay"} & set(picked.values)
    assert any("2x64: 50.0k chars/s" in line for line in picked.reasons)  # its speed is still the measure


def test_when_no_recipe_is_picked_and_why():
    assert "defaults" in recipe.applies(_cfg(recipe="defaults"), "cpu")
    assert "at least 60 s" in recipe.applies(_cfg(max_time=30.0), "cpu")
    assert "GPU" in recipe.applies(_cfg(), "cuda")
    assert recipe.applies(_cfg(), "cpu") is None


def test_speeds_are_timed_once_per_machine_and_shape(tmp_path):
    cfg = _cfg(n_hidden=32, n_layer=1, batch_size=4, seq_len=8, precision="fp32")
    cache = tmp_path / "speeds.json"
    first, why = recipe.measure_speeds(cfg, 20, cache)  # the real timing of a real model
    assert list(first) == [(1, 32)] and first[(1, 32)] > 0 and why == "timed here"
    cache.write_text("not json")  # a damaged cache is measured again, not an error
    assert recipe.measure_speeds(cfg, 20, cache)[0][(1, 32)] > 0


def test_a_cache_that_no_longer_holds_for_this_host_is_timed_again(tmp_path):
    """Every shape is timed once; later runs time only the middle one again, and keep the cache
    while it agrees (a slower host, same CPU model, times them all again)."""
    cfg, cache, timed = _cfg(precision="fp32"), tmp_path / "speeds.json", []

    def timer(speed: float):
        return lambda _cfg, _vocab, shape: timed.append(shape) or speed * 1000 / shape[1]

    first, _ = recipe.measure_speeds(cfg, 65, cache, timer(40_000))
    assert timed == list(CANDIDATES) and set(first) == set(CANDIDATES)
    timed.clear()
    again, why = recipe.measure_speeds(cfg, 65, cache, timer(40_000 * 1.1))  # noise: the cache holds
    assert again == first and timed == [(2, 384)] and "checked" in why
    timed.clear()
    slower, why = recipe.measure_speeds(cfg, 65, cache, timer(20_000))  # half as fast: all again
    assert set(timed) == set(CANDIDATES) and len(timed) == len(CANDIDATES) and "timed again" in why
    assert all(slower[s] == first[s] / 2 for s in CANDIDATES)
    assert recipe.measure_speeds(cfg, 65, cache, timer(20_000))[0] == slower  # and cached


@pytest.mark.parametrize("extra,expect,absent", [
    ((), ["recipe: 2x", "epochs of", "dropout", "recipe for the budget", "recipe: speeds: timed here"], []),
    (("--hidden", "32", "--layers", "1"), ["recipe: 1x32:", "epochs of"], ["the biggest that sees"]),
    (("--recipe", "defaults"), ["recipe = 'defaults' (command line): the domain's defaults"], ["epochs of"]),
])
def test_show_config_says_why(run, ws, names_file, extra, expect, absent):
    run("prepare", "nm", "--domain", "names", "--src", str(names_file))
    out = run("train", "nm", "--max-time", "2m", "--batch-size", "4", "--seq-len", "16", "--show-config",
              *extra).output
    for text in expect:
        assert text in out, out
    for text in absent:
        assert text not in out, out
    assert not (ws / "runs").exists()


def test_a_run_trains_with_what_the_recipe_picked(run, ws, names_file):
    """End to end: the picked values reach the run (its config.json), the reasons reach its log,
    and the speeds are cached in the workspace for the next run."""
    run("prepare", "nm", "--domain", "names", "--src", str(names_file))
    out = run("train", "nm", "--max-time", "1m", "--max-steps", "12", "--batch-size", "4", "--seq-len", "16",
              "--eval-every", "6", "--quiet", "--run-name", "r").output
    shape = re.search(r"recipe: (\d+)x(\d+) \(", out)
    assert shape, out
    config = json.loads((ws / "runs" / "nm" / "r" / "config.json").read_text())
    assert (config["n_layer"], config["n_hidden"]) == (int(shape[1]), int(shape[2]))
    assert config["max_steps"] == 12 and config["recipe"] == "auto"  # what was given still wins
    assert f"dropout {config['dropout']}:" in out
    assert (ws / "cache" / "speeds.json").exists()

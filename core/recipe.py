"""The recipe picked for the budget: shape, dropout, sequence length and averaged weights from
the corpus's size, this machine's measured speed and the time budget.

`gen train` with ``recipe = "auto"`` (the default), a time budget of at least ``MIN_BUDGET`` and a
CPU fills in every option that no manifest, config file or command line sets (those still win;
the domain's own defaults are what the recipe replaces). ``recipe = "defaults"`` keeps the
domain's defaults. Every value comes with the reason `gen train --show-config` prints.

The rule, fitted to the runs in evals/BENCHMARKS.md ("The recipe for the budget"):

* the budget buys ``chars/s x seconds`` characters for a shape (timed here, at the run's batch
  and precision, once per machine and shape: the workspace caches it, and one shape timed again
  at every run checks that the cache still holds for this host);
* the shape is the biggest candidate that sees at least ``MIN_CHARS_PER_PARAM`` characters per
  parameter in the budget (a bigger model that sees fewer is still far from trained when time
  runs out); if that shape would read the text more than ``MAX_EPOCHS`` times, the next bigger
  one (a small text is better served by a bigger model with dropout); never more than
  ``MAX_PARAMS_PER_CHAR`` parameters per training character;
* epochs = characters in the budget / training characters; how hard the model can overfit is
  epochs x parameters per training character (a small model on a big text can read it many times
  over without overfitting; a big one on a small text cannot): dropout is ``DROPOUT_PER_DOUBLING``
  per doubling of that exposure beyond ``OVERFIT_ONSET``, up to ``MAX_DROPOUT``;
* DropConnect (``WEIGHT_DROP``) where that dropout reaches ``WEIGHT_DROP_FROM``, weight decay with
  any dropout;
* averaged weights from ``EMA_MIN_EPOCHS`` epochs on, over the last ``EMA_WINDOW`` of the steps;
* sequence length 64 when the budget allows fewer than ``MIN_STEPS`` steps of 128 characters
  (a short budget is short of updates, not of characters).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gen.core.config import RANGES, TrainConfig
from gen.core.shapes import n_params

MIN_BUDGET = 60.0  # seconds: below this timing the candidates would eat the budget
CANDIDATES = ((2, 128), (2, 256), (2, 384), (2, 512), (3, 512))  # (layers, units), smallest first
MIN_CHARS_PER_PARAM = 6.0  # the biggest shape that sees this many characters per parameter
MAX_EPOCHS = 20.0  # ... unless that reads the text more often than this: then bigger
MAX_PARAMS_PER_CHAR = 6.0  # never more parameters per training character (lower kept 0.2 MB on a 2x128, which lost)
USABLE = 0.85  # share of the budget that trains (validation, checkpoints, start-up take the rest)
DROPOUT_PER_DOUBLING = 0.1
OVERFIT_ONSET = 4.0  # epochs x parameters per training character where dropout starts
MAX_DROPOUT = 0.5
WEIGHT_DECAY = 0.1  # with dropout: the pairing the Shakespeare recipe measured best
WEIGHT_DROP, WEIGHT_DROP_FROM = 0.2, 0.3  # DropConnect, where the rule's dropout is at least this
EMA_MIN_EPOCHS = 2.0  # from here on the model overfits within the budget: the average helps
EMA_WINDOW = 0.28  # the average spans about this share of the run's steps
MIN_STEPS = 2000
TIMED_STEPS = 3  # timed training steps per candidate (at least), after one warm-up step
TIMED_SECONDS = 0.5  # ... and at least this long: the fastest step, as noise only slows steps
SPOT_TOLERANCE = 1.3  # a cached speed this far off a fresh timing of one shape is timed again
OPEN = ("default", "domain")  # origins the recipe may replace (manifest, file, command line win)


@dataclass
class Recipe:
    """The picked values and one line per value saying why."""

    values: dict[str, Any] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)


def open_fields(cfg: TrainConfig) -> set[str]:
    """Options nobody chose: their value is TrainConfig's or the domain's default."""
    return {k for k in cfg.field_names() if cfg.origin(k).split(" ")[0] in OPEN}


def params(layers: int, units: int, vocab: int, embd: int, cell: str = "lstm") -> int:
    """Parameters of a char model of this shape (core/shapes.py counts them from its weights)."""
    return n_params({"vocab_size": vocab, "cell": cell, "n_layer": layers, "n_hidden": units, "n_embd": embd})


def pick(cfg: TrainConfig, train_chars: int, vocab: int, speeds: dict[tuple[int, int], float]) -> Recipe:
    """The recipe for ``cfg.max_time`` seconds on ``train_chars`` characters, given the measured
    training chars/s of each candidate shape (``speeds``); only open fields are filled."""
    free, budget, r = open_fields(cfg), cfg.max_time * USABLE, Recipe()
    mb, cell = train_chars / 1e6, cfg.cell
    if {"n_layer", "n_hidden"} <= free:
        shape, why = pick_shape(train_chars, vocab, cfg.n_embd, cell, speeds, budget)
        r.values.update(n_layer=shape[0], n_hidden=shape[1])
        r.reasons.append(f"{shape[0]}x{shape[1]} ({params(*shape, vocab, cfg.n_embd, cell) / 1e6:.2f}M parameters): "
                         f"{why} ({_speeds_line(speeds)})")
    shape = (r.values.get("n_layer", cfg.n_layer), r.values.get("n_hidden", cfg.n_hidden))
    speed = speeds[shape]
    chars = speed * budget
    epochs = chars / max(1, train_chars)
    head = (f"{shape[0]}x{shape[1]}: {speed / 1e3:.1f}k chars/s here x {budget:.0f} s "
            f"({USABLE:.0%} of {cfg.max_time:.0f} s) = {chars / 1e6:.1f}M characters = {epochs:.1f} epochs of {mb:.2f} MB")
    r.reasons.append(head)
    per_char = params(*shape, vocab, cfg.n_embd, cell) / max(1, train_chars)
    _regularise(cfg, free, r, epochs, per_char, chars)
    if "max_steps" in free:
        r.values["max_steps"] = 10_000_000
        r.reasons.append("max_steps unbounded: the time budget ends the run")
    r.reasons.append(f"batch {cfg.batch_size} and lr {cfg.lr:g} kept ({cfg.origin('lr')}): every run the rule was "
                     f"fitted to used them")
    return r


def _regularise(cfg: TrainConfig, free: set[str], r: Recipe, epochs: float, per_char: float, chars: float) -> None:
    """Dropout, weight decay, sequence length and averaged weights for a run that reads ``chars``
    characters (``epochs`` passes, ``per_char`` parameters per training character)."""
    if "dropout" in free:
        exposure = epochs * per_char
        d = round(min(MAX_DROPOUT, max(0.0, DROPOUT_PER_DOUBLING * math.log2(max(exposure / OVERFIT_ONSET, 1.0)))), 2)
        r.values["dropout"] = d
        r.reasons.append(f"dropout {d}: {epochs:.1f} epochs x {per_char:.2f} parameters per training character = "
                         f"{exposure:.1f}; {DROPOUT_PER_DOUBLING} per doubling beyond {OVERFIT_ONSET:g} (at most {MAX_DROPOUT})")
    if "weight_drop" in free and r.values.get("dropout", 0) >= WEIGHT_DROP_FROM:
        r.values["weight_drop"] = WEIGHT_DROP
        r.reasons.append(f"weight_drop {WEIGHT_DROP}: DropConnect where dropout reaches {WEIGHT_DROP_FROM} (the model "
                         f"overfits hardest: measured on the 15-minute Shakespeare run)")
    if "weight_decay" in free and r.values.get("dropout", 0) > 0:
        r.values["weight_decay"] = WEIGHT_DECAY
        r.reasons.append(f"weight decay {WEIGHT_DECAY}: paired with dropout (the measured Shakespeare recipe)")
    steps128 = chars / (cfg.batch_size * 128)
    if "seq_len" in free:
        seq = 128 if steps128 >= MIN_STEPS else 64
        r.values["seq_len"] = seq
        r.reasons.append(f"seq_len {seq}: {steps128:.0f} steps of {cfg.batch_size}x128 in the budget "
                         f"({'at least' if seq == 128 else 'fewer than'} {MIN_STEPS}: "
                         f"{'enough updates' if seq == 128 else 'twice the updates at 64'})")
    steps = chars / (cfg.batch_size * r.values.get("seq_len", cfg.seq_len))
    if "ema" in free and epochs >= EMA_MIN_EPOCHS:
        # a tiny model's millions of steps would round to 1.0: capped at the highest the config takes
        decay = min(round(1 - 1 / max(10.0, EMA_WINDOW * steps), 5), RANGES["ema"][1])
        r.values["ema"] = decay
        r.reasons.append(f"ema {decay}: {epochs:.1f} >= {EMA_MIN_EPOCHS:g} epochs overfit without it; the average "
                         f"spans about {EMA_WINDOW:.0%} of {steps:.0f} steps")


def pick_shape(train_chars: int, vocab: int, embd: int, cell: str, speeds: dict[tuple[int, int], float],
               budget: float) -> tuple[tuple[int, int], str]:
    """The candidate shape for ``budget`` training seconds, and why (see the module docstring)."""
    def n(s: tuple[int, int]) -> int:
        return params(*s, vocab, embd, cell)

    allowed = [s for s in CANDIDATES if n(s) <= MAX_PARAMS_PER_CHAR * train_chars] or [CANDIDATES[0]]
    trained = [s for s in allowed if speeds[s] * budget >= MIN_CHARS_PER_PARAM * n(s)]
    shape = trained[-1] if trained else allowed[0]
    why = (f"the biggest with >= {MIN_CHARS_PER_PARAM:g} characters per parameter in the budget "
           f"({speeds[shape] * budget / n(shape):.0f})" if trained else
           f"the smallest allowed: none reaches {MIN_CHARS_PER_PARAM:g} characters per parameter in the budget")
    for bigger in allowed[allowed.index(shape) + 1:]:  # a small text read too often: a bigger model instead
        epochs = speeds[shape] * budget / train_chars
        if epochs <= MAX_EPOCHS:
            break
        why = (f"{shape[0]}x{shape[1]} would read the text {epochs:.0f} times (> {MAX_EPOCHS:g}): a bigger model "
               f"with dropout uses the time better")
        shape = bigger
    capped = [f"{a}x{b}" for a, b in CANDIDATES if (a, b) not in allowed]
    return shape, why + (f"; {', '.join(capped)}: over {MAX_PARAMS_PER_CHAR:g} parameters per training character"
                         if capped else "")


def _speeds_line(speeds: dict[tuple[int, int], float]) -> str:
    return "timed here: " + ", ".join(f"{a}x{b} {v / 1e3:.1f}k" for (a, b), v in sorted(speeds.items())) + " chars/s"


def shapes_to_time(cfg: TrainConfig) -> tuple[tuple[int, int], ...]:
    """The candidates when the recipe picks the shape, else the run's own shape."""
    free = open_fields(cfg)
    return CANDIDATES if {"n_layer", "n_hidden"} <= free else ((cfg.n_layer, cfg.n_hidden),)


def chars_per_s(cfg: TrainConfig, vocab: int, shape: tuple[int, int]) -> float:
    """Training chars/s of one shape at the run's cell, batch, sequence length and precision:
    one warm-up step, then the fastest of at least ``TIMED_STEPS`` steps and ``TIMED_SECONDS``."""
    import torch

    from gen.core.model import CharRNN, ModelArgs
    from gen.core.precision import fastest_step

    args = ModelArgs(vocab, cfg.cell, n_layer=shape[0], n_hidden=shape[1], n_embd=cfg.n_embd)
    with torch.random.fork_rng(devices=[]):  # the run's seeded stream stays untouched
        torch.manual_seed(0)
        x = torch.randint(vocab, (cfg.batch_size, cfg.seq_len))  # (B, T)
        model = CharRNN(args)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        seconds = fastest_step(model, opt, x, cfg.precision == "bf16", TIMED_STEPS, TIMED_SECONDS)
    return cfg.batch_size * cfg.seq_len / seconds


def measure_speeds(cfg: TrainConfig, vocab: int, cache: Path | None,
                   timer: Callable[[TrainConfig, int, tuple[int, int]], float] = chars_per_s,
                   ) -> tuple[dict[tuple[int, int], float], str]:
    """Training chars/s of each shape to time (:func:`shapes_to_time`), cached per machine and
    shape, and a line that says where they come from. A cached table is checked first: its
    middle shape is timed again, and when that is more than ``SPOT_TOLERANCE`` off every shape
    is timed again (the same CPU model can run at half the speed on a busier host)."""
    from gen.core.atomic import atomic_write_text
    from gen.core.precision import machine_id, read_cache

    table = read_cache(cache) if cache is not None else {}  # missing or damaged: measure again
    machine = machine_id()
    keys = {(a, b): f"{machine}|{cfg.cell}{a}x{b}e{cfg.n_embd}v{vocab}b{cfg.batch_size}t{cfg.seq_len}|{cfg.precision}"
            for a, b in shapes_to_time(cfg)}
    speeds = {s: float(table[k]) for s, k in keys.items() if isinstance(table.get(k), int | float)}
    note, stale = "timed here", False
    if speeds:
        spot = sorted(speeds)[len(speeds) // 2]
        now = timer(cfg, vocab, spot)
        ratio, was = now / speeds[spot], f"{spot[0]}x{spot[1]} {now / 1e3:.1f}k chars/s now"
        stale = not 1 / SPOT_TOLERANCE <= ratio <= SPOT_TOLERANCE
        note = (f"{was}, {ratio:.2f}x the cached {speeds[spot] / 1e3:.1f}k: every shape timed again" if stale else
                f"cached {table.get('_measured', '')}, checked: {was} ({ratio:.2f}x the cached)")
        speeds = {spot: now} if stale else speeds
    missing = [s for s in keys if s not in speeds]
    speeds.update({s: timer(cfg, vocab, s) for s in missing})
    if (missing or stale) and cache is not None:
        table.update({keys[s]: v for s, v in speeds.items()})
        table["_measured"] = time.strftime("%Y-%m-%d %H:%M:%S")
        atomic_write_text(cache, json.dumps(table, indent=1, sort_keys=True) + "\n")
    return speeds, note


def applies(cfg: TrainConfig, device_type: str) -> str | None:
    """Why the recipe is not picked for this run (None: it is)."""
    if cfg.recipe != "auto":
        return f"recipe = {cfg.recipe!r} ({cfg.origin('recipe')}): the domain's defaults"
    if device_type != "cpu":
        return "recipe: the domain's GPU defaults (the rule was fitted on CPUs)"
    if cfg.max_time < MIN_BUDGET:
        return f"recipe: the domain's defaults (a time budget of at least {MIN_BUDGET:.0f} s picks one)"
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return "recipe: the domain's defaults under torchrun (every rank would time the same cores)"
    return None

"""Guided vs unguided sampling, side by side: the proof that guidance fixes structure.

``gen guided CHECKPOINT`` samples the same number of texts from the same checkpoint, temperature
and seed twice, without and with the domain's structure tracker, evaluates both sets with the
domain's checks, and adds the samples' log-likelihood under the model (nats/char), which shows
whether guidance damaged the text it does not constrain.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from gen.core import table
from gen.core.config import SampleOptions
from gen.core.hookspecs import hookimpl
from gen.core.options import device_option
from gen.core.table import fmt_num
from gen.core.vocab import Vocab
from gen.core.workspace import evals_dir
from gen.evals.harness import BETTER

if TYPE_CHECKING:  # torch loads when a comparison runs, not when the CLI starts
    from gen.core.model import CharRNN


def log_likelihood(model: CharRNN, vocab: Vocab, texts: list[str], start: str = "\n") -> list[float]:
    """Mean negative log-likelihood (nats/char) of each text under the model, read after ``start``."""
    import torch

    out = []
    for text in texts:
        ids = vocab.encode(start + text)
        if len(ids) < 2:
            out.append(float("nan"))
            continue
        x = torch.tensor(ids[:-1]).unsqueeze(0)
        y = torch.tensor(ids[1:]).unsqueeze(0)
        with torch.no_grad():
            logits, _ = model(x)
        out.append(torch.nn.functional.cross_entropy(logits[0], y[0]).item())
    return out


def compare(target: str, ws: Path, n: int, length: int, temperature: float, seed: int,
            against: str | None, constraints: list[str] | None = None, log=lambda _m: None,
            device: str = "cpu") -> dict[str, Any]:
    """Sample unguided and guided with identical settings; evaluate both. Returns a summary dict."""
    from gen.core.models import load_model, sample_texts
    from gen.core.registry import get_domain
    from gen.evals.harness import eval_context, score

    loaded = load_model(target, ws)
    domain = get_domain(loaded.ckpt["domain"])
    ctx = eval_context(domain, against, ws, {})
    result: dict[str, Any] = {"checkpoint": str(loaded.path), "domain": domain.name, "n": n, "length": length,
                              "temperature": temperature, "seed": seed, "sets": {}}
    for guided in (False, True):
        log(f"sampling {n} x {length} characters {'with' if guided else 'without'} guidance ...")
        opts = SampleOptions(n=n, length=length, temperature=temperature, seed=seed, device=device, guided=guided,
                             constraints=constraints)
        texts, stats = sample_texts(loaded, opts, stats=ctx.stats if guided else None)
        scored = score(domain, texts, ctx)
        nll = [v for v in log_likelihood(loaded.model, loaded.vocab, texts, loaded.separator) if not math.isnan(v)]
        values = dict(scored.values)
        values["model_nll"] = sum(nll) / len(nll) if nll else None
        result["sets"]["guided" if guided else "unguided"] = {
            "metrics": values, "masked_steps": stats.masked_steps, "fallbacks": stats.fallbacks,
            "higher_is_better": {k: s.higher_is_better for k, s in scored.specs.items()}}
    return result


def guided_cost(target: str, ws: Path, length: int = 2000, rounds: int = 3, seed: int = 0) -> dict[str, Any]:
    """Seconds per generated character for one stream, unguided vs guided (same checkpoint and
    seed), interleaved over ``rounds`` so machine noise hits both; medians."""
    import statistics
    import time

    from gen.core.models import load_model, sample_texts

    loaded = load_model(target, ws)
    times: dict[bool, list[float]] = {False: [], True: []}
    for r in range(rounds):
        for guided in (False, True):
            # stop=[] keeps the domain's stop string off, so every sample is `length` long
            opts = SampleOptions(n=1, length=length, seed=seed + r, stop=[], close=False, guided=guided)
            t0 = time.perf_counter()
            texts, _ = sample_texts(loaded, opts)
            times[guided].append((time.perf_counter() - t0) / max(1, len(texts[0])))
    u, g = statistics.median(times[False]), statistics.median(times[True])
    return {"checkpoint": str(loaded.path), "domain": loaded.ckpt["domain"], "unguided_chars_per_s": 1 / u,
            "guided_chars_per_s": 1 / g, "slowdown": g / u - 1}


def format_comparison(result: dict[str, Any]) -> str:
    u, g = result["sets"]["unguided"], result["sets"]["guided"]
    better = {**u["higher_is_better"], "model_nll": False}
    rows = [[k, BETTER[better.get(k)], fmt_num(u["metrics"][k]), fmt_num(g["metrics"].get(k))] for k in u["metrics"]]
    lines = [table.render(rows, [["metric", "better", "unguided", "guided"]], align="<<>>")]
    lines.append(f"guided: {g['masked_steps']} masked steps, {g['fallbacks']} fallbacks to the unmasked distribution")
    return "\n".join(lines)


@hookimpl
def register_commands(cli):
    @cli.command()
    @click.argument("target")
    @click.option("-n", "--num", default=20, show_default=True, type=click.IntRange(1))
    @click.option("-l", "--length", default=1000, show_default=True, type=click.IntRange(1))
    @click.option("-t", "--temperature", default=SampleOptions.temperature, show_default=True,
                  type=click.FloatRange(0.0))
    @click.option("--seed", default=0, show_default=True)
    @click.option("--against", default=None, help="training corpus for corpus-aware checks")
    @click.option("--constraint", "constraints", multiple=True, help="only these constraint families")
    @click.option("--json", "as_json", type=click.Path(dir_okay=False),
                  help="where to write the comparison (default: the workspace's evals/ folder)")
    @device_option
    def guided(target, num, length, temperature, seed, against, constraints, as_json, device):
        """Compare guided and unguided samples from one checkpoint (same temperature and seed)."""
        from gen.core.atomic import atomic_write_text

        ws = click.get_current_context().obj
        result = compare(target, ws, num, length, temperature, seed, against, list(constraints) or None,
                         log=lambda m: click.echo(m, err=True), device=device)
        click.echo(format_comparison(result))
        path = Path(as_json) if as_json else evals_dir(ws, f"guided-{result['domain']}").with_suffix(".json")
        atomic_write_text(path, json.dumps(result, indent=2, ensure_ascii=False))
        click.echo(f"wrote {path}", err=True)

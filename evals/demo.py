"""`gen demo`: prepare the offline census names, train for a time budget, sample 20 names and
judge their novelty against the training names (the README's first command)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from gen.core.hookspecs import hookimpl


def run_demo(ws: Path, seconds: float, log) -> dict[str, Any]:
    """Train ``seconds`` on the census names and return the names, their summary and the run."""
    import torch

    from gen.core.config import SampleOptions, resolve_config
    from gen.core.corpora import load_corpus, prepare_corpus
    from gen.core.domain import EvalContext
    from gen.core.models import load_checkpoint, sample_texts
    from gen.core.registry import get_domain, resolve_corpus
    from gen.core.train import train
    from gen.core.workspace import CorpusDir, new_run_dir, timestamp
    from gen.evals.harness import evaluate

    spec = resolve_corpus("census")
    if not CorpusDir.of(ws, spec.name).is_prepared():
        meta = prepare_corpus(spec.name, None, ws)
        log(f"prepared {spec.name}: {meta['report']['documents']:,} names from {meta['src']}")
    spec, data = load_corpus(spec.name, ws)
    cfg = resolve_config(spec, get_domain(spec.domain), {"device": "cpu"} if not torch.cuda.is_available() else {})
    cfg.max_time = seconds
    run = new_run_dir(ws, spec.name, "demo-" + timestamp())
    log(f"training {cfg.n_layer}x{cfg.n_hidden} {cfg.cell} for up to {seconds:.0f} s in {run}")
    res = train(data, cfg, run.path, spec.domain, log=log)
    # a budget too short for one full validation leaves no best.pt (a shortened one is never a
    # best): the last weights then speak for the run
    checkpoint = run.best if run.best.exists() else run.last
    loaded = load_checkpoint(checkpoint)
    opts = SampleOptions(n=20, length=40, seed=0, guided=True, constraints=["nonempty", "maxlen"])
    texts, _ = sample_texts(loaded, opts)
    ctx = EvalContext(loaded.domain, data)
    report = evaluate(loaded.domain, texts, ctx, baseline=False)
    return {"names": texts, "train_names": ctx.stats["names"], "summary": report.summary(),
            "checkpoint": checkpoint, "result": res}


@click.command()
@click.option("--seconds", default=150.0, show_default=True, help="training time budget")
def demo(seconds: float) -> None:
    """Prepare the offline census names, train about a minute on CPU (at most --seconds), print 20 new names."""
    ws = click.get_current_context().find_root().obj
    out = run_demo(ws, seconds, click.echo)
    m = out["summary"]["metrics"]
    click.echo("\n20 generated names:")
    for name in out["names"]:
        mark = "" if name in out["train_names"] else "  (new)"
        click.echo(f"  {name}{mark}")
    click.echo(f"\nnovel (not in the training names): {m['novel']['value']:.0%}   unique: "
               f"{m['unique_share']['value']:.0%}   mean length {m['length']['value']:.1f} "
               f"(training {m['length_train']['value']:.1f})")
    best = out["result"].best_val
    click.echo((f"best val loss {best:.4f} nats" if best < float("inf") else
                "no full validation fitted in the time budget") + f"; checkpoint: {out['checkpoint']}")
    click.echo(f"more: gen sample {out['checkpoint']} -n 20   |   gen eval names FILE --against census")


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(demo)

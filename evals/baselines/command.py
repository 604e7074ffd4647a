"""`gen baseline CORPUS [--order K]`: what character n-gram models reach on the corpus; and
`gen score TARGET`: a checkpoint's loss beside the best of them.

The table gives every order's validation loss over the whole split (nats/char and bits/char),
its distinct contexts, its discount, the seconds and memory it took, and marks the best order;
``--json FILE`` writes the same rows.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from gen.core.atomic import atomic_write_text
from gen.core.hookspecs import hookimpl
from gen.evals.baselines.ngram import DEFAULT_ORDER, MAX_ORDER


@click.command()
@click.argument("corpus")
@click.option("--order", default=DEFAULT_ORDER, show_default=True, type=click.IntRange(1, MAX_ORDER),
              help="build every order from 1 to this")
@click.option("--json", "as_json", type=click.Path(dir_okay=False), help="also write the rows to this file")
@click.option("--rebuild", is_flag=True, help="ignore the cached figures")
def baseline(corpus: str, order: int, as_json: str | None, rebuild: bool) -> None:
    """Interpolated Kneser-Ney character n-gram models of orders 1..K on a prepared corpus: the
    loss counting alone reaches, to read a model's loss against."""
    from gen.core import table
    from gen.core.corpora import load_corpus
    from gen.evals.baselines.ngram import best
    from gen.evals.baselines.store import baselines

    ws = click.get_current_context().find_root().obj
    spec, data = load_corpus(corpus, ws)
    results, cached = baselines(data, order, log=lambda m: click.echo(m, err=True), rebuild=rebuild)
    top = best(results)
    rows = [[str(r.order) + (" *" if r is top else ""), f"{r.val_nats:.4f}", f"{r.val_bpc:.3f}", f"{r.contexts:,}",
             f"{r.grams:,}", f"{r.discount:.3f}", f"{r.build_s:.2f}", f"{r.table_mb:.1f}"] for r in results]
    click.echo(table.render(rows, [["order", "val nats", "val bpc", "contexts", "strings", "D", "build s", "MB"]],
                            align="<>>>>>>>"))
    click.echo(f"* best: order {top.order}, {top.val_nats:.4f} nats/char ({top.val_bpc:.3f} bpc) over "
               f"{len(data.ids('val')):,} validation characters of {spec.name}"
               + (" (cached; --rebuild to measure again)" if cached else ""))
    if as_json:
        atomic_write_text(Path(as_json), json.dumps({"corpus": spec.name, "best_order": top.order,
                                                     "rows": [r.to_dict() for r in results]}, indent=2))
        click.echo(f"wrote {as_json}", err=True)




@click.command("score")
@click.argument("target")
@click.option("--file", "file", type=click.Path(exists=True, dir_okay=False),
              help="score this text instead of the corpus's validation split")
@click.option("--chars", type=click.IntRange(1), default=None, help="score only the first N characters")
@click.option("--order", default=DEFAULT_ORDER, show_default=True, type=click.IntRange(1, MAX_ORDER),
              help="n-gram orders to pick the best from (cached by gen baseline)")
@click.option("--dynamic", is_flag=True, help="also score with dynamic evaluation (weights adapt as they read)")
@click.option("--lr", type=click.FloatRange(0, min_open=True), default=None, help="dynamic evaluation's step size")
@click.option("--decay", type=click.FloatRange(0, 1), default=None, help="dynamic evaluation's pull to the trained weights")
@click.option("--by-structure", is_flag=True, help="loss by the domain's structural features, model vs n-gram")
@click.option("--json", "as_json", type=click.Path(dir_okay=False), help="also write the figures here")
def score_command(target: str, file: str | None, chars: int | None, order: int, dynamic: bool, lr: float | None,
                  decay: float | None, by_structure: bool, as_json: str | None) -> None:
    """A checkpoint's loss on held-out text (nats/char, bpc) beside the corpus's best n-gram model;
    --dynamic adds dynamic evaluation, --by-structure where the model beats counting."""
    from gen.evals.baselines.report import run_score

    ws = click.get_current_context().find_root().obj
    click.echo(run_score(ws, target, file, chars, order, dynamic, lr, decay, by_structure, as_json,
                         log=lambda m: click.echo(m, err=True)))


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(baseline)
    cli.add_command(score_command)

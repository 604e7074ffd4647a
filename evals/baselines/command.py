"""`gen baseline CORPUS [--order K]`: what character n-gram models reach on the corpus.

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


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(baseline)

"""CLI commands `gen viz`, `gen neurons` and `gen report`, added through the plugin hook.

Registered like any plugin (entry point ``viz = "gen.evals.inspect.commands"`` in the ``gen``
group); the commands only parse options and print, the work is in viz.py, neurons.py and
runpage.py.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from gen.core.errors import GenError
from gen.core.hookspecs import hookimpl
from gen.core.options import device_option

DEFAULT_CHARS = {"viz": 5000, "neurons": 20000}


def _ws() -> Path:
    return click.get_current_context().find_root().obj


def held_out_text(corpus: str, ws: Path, chars: int, offset: int = 0) -> tuple[str, str]:
    """A window of ``chars`` characters of the corpus's validation split, starting at a document
    boundary at or after ``offset``; returns (text, description)."""
    from gen.core.corpora import load_corpus

    spec, data = load_corpus(corpus, ws)
    split = "val" if len(data.ids("val")) > 0 else "train"
    text = data.text(split, offset + chars + 10_000)
    # a per-document split's val (and train) begins with a whole document; a tail split's val
    # begins wherever the cut fell, so skip to the next separator
    aligned = offset == 0 and (split == "train" or data.meta.get("split") == "hash")
    start = offset
    if not aligned:
        cut = text.find(data.separator, offset)
        start = cut + len(data.separator) if cut >= 0 else offset
    window = text[start:start + chars]
    if not window:
        raise GenError(f"corpus {spec.name!r} has no {split} text at offset {offset}")
    return window, f"corpus {spec.name}, {split} split, characters {start:,}-{start + len(window):,}"


def load_text(loaded, text_file: str | None, corpus: str | None, chars: int | None, offset: int,
              ws: Path, command: str) -> tuple[str, str]:
    """The text to look at: --text FILE, else a held-out window of --corpus (default: the
    corpus the checkpoint was trained on)."""
    if text_file and corpus:
        raise GenError("give --text or --corpus, not both")
    if text_file:
        raw = Path(text_file).read_text(encoding="utf-8", errors="replace")
        text = raw[offset:offset + chars] if chars else raw[offset:]
        if not text:
            raise GenError(f"{text_file} has no text (after --offset {offset})")
        return text, f"file {text_file}" + (f", characters {offset:,}-{offset + len(text):,}" if chars or offset else "")
    corpus = corpus or loaded.ckpt.get("corpus")
    if not corpus:
        raise GenError("say what text to run: --text FILE or --corpus NAME")
    return held_out_text(corpus, ws, chars or DEFAULT_CHARS[command], offset)


def _info(loaded, source: str) -> dict[str, str]:
    a = loaded.model.args
    return {"checkpoint": str(loaded.path), "model": f"{a.n_layer}x{a.n_hidden} {a.cell}",
            "trained on": f"{loaded.ckpt.get('corpus', '?')} ({loaded.ckpt.get('domain', '?')}), "
                          f"step {loaded.ckpt.get('step', '?')}", "text": source}


def _trace(loaded, text: str, device: str = "cpu"):
    from gen.core.device import pick_device
    from gen.evals.inspect.viz import trace

    t0 = time.perf_counter()
    tr = trace(loaded.model, loaded.vocab, text, start=loaded.separator, device=pick_device(device))
    secs = time.perf_counter() - t0
    click.echo(f"ran {len(text):,} characters through the model in {secs:.1f} s "
               f"({len(text) / max(secs, 1e-9):,.0f} chars/s); mean loss {tr.loss.mean():.3f} nats/char", err=True)
    if tr.mapped:
        click.echo("note: characters the model never saw were read as "
                   + ", ".join(f"{k!r}->{v!r}" for k, v in sorted(tr.mapped.items())), err=True)
    return tr


def _parse_cell(key: str, args) -> tuple[int, str, int]:
    """LAYER:KIND:INDEX checked against the model (before the trace, so a typo fails fast)."""
    kinds = ("c", "h") if args.cell == "lstm" else ("h",)
    try:
        layer, kind, index = key.split(":")
        cell = int(layer), kind, int(index)
    except ValueError:
        raise GenError(f"--cell {key!r}: write LAYER:KIND:INDEX, e.g. 1:c:37") from None
    if not (0 <= cell[0] < args.n_layer and cell[1] in kinds and 0 <= cell[2] < args.n_hidden):
        raise GenError(f"--cell {key}: this {args.n_layer}x{args.n_hidden} {args.cell} has layers 0-{args.n_layer - 1}, "
                       f"kinds {'/'.join(kinds)} and units 0-{args.n_hidden - 1}")
    return cell


_text_options = [
    click.option("--text", "text_file", type=click.Path(exists=True, dir_okay=False), help="a text file to run"),
    click.option("--corpus", help="a prepared corpus: a window of its held-out (val) text"),
    click.option("--chars", type=int, default=None, help="characters to run (viz 5000, neurons 20000 by default)"),
    click.option("--offset", type=int, default=0, help="start this many characters into the text"),
    click.option("--max-mb", type=float, default=16.0, show_default=True,
                 help="activation data the page may embed (more cells than fit are left out)"),
]


def _with_text_options(f):
    for opt in reversed(_text_options):
        f = opt(f)
    return f


@click.command()
@click.argument("checkpoint")
@_with_text_options
@click.option("--cell", "cells", multiple=True, help="list this cell first in the page (LAYER:KIND:INDEX)")
@click.option("--out", type=click.Path(dir_okay=False), help="the HTML file (default: viz.html beside the checkpoint)")
@device_option
def viz(checkpoint: str, text_file: str | None, corpus: str | None, chars: int | None, offset: int,
        max_mb: float, cells: tuple[str, ...], out: str | None, device: str) -> None:
    """Write one HTML page showing a text through the model's eyes: top-5 guesses under each
    character, per-character loss, and any cell's activation as colour."""
    from gen.core.models import load_model
    from gen.evals.inspect.viz import write_page

    loaded = load_model(checkpoint, _ws())
    pinned = [{"cell": _parse_cell(c, loaded.model.args), "label": "asked for"} for c in cells]
    text, source = load_text(loaded, text_file, corpus, chars, offset, _ws(), "viz")
    tr = _trace(loaded, text, device)
    path = Path(out) if out else loaded.run.viz
    write_page(path, tr, f"Inside {loaded.path.parent.name}/{loaded.path.name}", _info(loaded, source),
               pinned=pinned, max_bytes=int(max_mb * (1 << 20)))
    click.echo(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB); open it in a browser "
               f"(add #cell=LAYER:KIND:INDEX to colour by one cell)")


@click.command()
@click.argument("checkpoint")
@_with_text_options
@click.option("--domain", "domain_name", help="whose features to correlate with (default: the checkpoint's)")
@click.option("--top", default=3, show_default=True, help="cells listed per feature")
@click.option("--out", type=click.Path(file_okay=False),
              help="folder for neurons.json, neurons.md and viz.html (default: neurons/ beside the checkpoint)")
@device_option
def neurons(checkpoint: str, text_file: str | None, corpus: str | None, chars: int | None, offset: int,
            max_mb: float, domain_name: str | None, top: int, out: str | None, device: str) -> None:
    """Find interpretable cells: correlate every cell with the domain's structural features."""
    from gen.core.models import load_model
    from gen.core.registry import get_domain
    from gen.evals.inspect.neurons import find_cells, format_table, write_outputs

    loaded = load_model(checkpoint, _ws())
    domain = get_domain(domain_name or loaded.ckpt.get("domain", ""))
    text, source = load_text(loaded, text_file, corpus, chars, offset, _ws(), "neurons")
    tr = _trace(loaded, text, device)
    t0 = time.perf_counter()
    feats = domain.features(text)
    t1 = time.perf_counter()
    if not feats:
        raise GenError(f"domain {domain.name!r} defines no per-character features (Domain.features)")
    rep = find_cells(tr, feats, top=top)
    click.echo(f"{len(feats)} features of domain {domain.name} in {t1 - t0:.1f} s; correlated with "
               f"{tr.n_cells:,} cells in {time.perf_counter() - t1:.2f} s", err=True)
    out_dir = Path(out) if out else loaded.run.neurons
    info = {**_info(loaded, source), "domain": domain.name}
    paths = write_outputs(out_dir, tr, rep, f"Interpretable cells of {loaded.path.parent.name}/{loaded.path.name}",
                          info, max_bytes=int(max_mb * (1 << 20)))
    click.echo(format_table(rep, str(paths["page"])))
    click.echo(f"wrote {paths['json']}, {paths['table']} and {paths['page']}", err=True)


@click.command()
@click.argument("run", metavar="RUN_DIR")
@click.option("--out", type=click.Path(dir_okay=False), help="the HTML file (default: RUN_DIR/report.html)")
def report(run: str, out: str | None) -> None:
    """Write the run's report page: learning curves, samples during training, configuration.
    RUN_DIR may also be a checkpoint in it, or a corpus name (its latest run)."""
    from gen.core import workspace as ws_mod
    from gen.core.registry import resolve_corpus
    from gen.evals.inspect.runpage import write_run_page

    path = Path(run)
    if path.is_file():
        path = path.parent
    elif not path.exists():
        path = ws_mod.latest_checkpoint(_ws(), resolve_corpus(run, _ws()).name).parent
    click.echo(f"wrote {write_run_page(path, out)}")


@hookimpl
def register_commands(cli: click.Group) -> None:
    for command in (viz, neurons, report):
        cli.add_command(command)


@hookimpl
def register_run_writers(register) -> None:
    from gen.evals.inspect.runpage import write_run_page

    register(write_run_page)

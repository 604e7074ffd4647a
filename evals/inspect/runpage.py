"""One HTML report page per training run: learning curves, the evolution of samples, the config.

Reads what training leaves in a run folder (through :class:`gen.core.workspace.RunDir`) and
renders ``templates/run.html`` into ``report.html``: self-contained (the loss plot is inlined as a
base64 PNG), every text from the run autoescaped (a sample containing ``<script>`` shows as
text), no script at all. Registered as a run writer, so `gen train` writes it at the end.
"""

from __future__ import annotations

import base64
import math
import statistics
from pathlib import Path
from typing import Any

from gen.core.atomic import atomic_write_text
from gen.core.errors import GenError
from gen.core.plot import plot_losses
from gen.core.units import LN2, bpc
from gen.core.workspace import RunDir
from gen.evals.inspect.templates import render


def summary(metrics: list[dict[str, Any]]) -> dict[str, Any]:
    train = [m for m in metrics if "loss" in m]
    val = [m for m in metrics if "val_loss" in m and math.isfinite(m["val_loss"])]
    cps = [m["chars_per_s"] for m in train if "chars_per_s" in m]
    out: dict[str, Any] = {}
    if metrics:
        out["steps"] = max(m.get("step", 0) for m in metrics)
        out["training time"] = f"{max(m.get('time', 0.0) for m in metrics):,.0f} s"
    if train:
        out["last train loss"] = f"{train[-1]['loss']:.4f} nats ({bpc(train[-1]['loss']):.3f} bpc)"
    if val:
        best = min(val, key=lambda m: m["val_loss"])
        out["best val loss"] = f"{best['val_loss']:.4f} nats ({bpc(best['val_loss']):.3f} bpc) at step {best['step']}"
        out["last val loss"] = f"{val[-1]['val_loss']:.4f} nats at step {val[-1]['step']}"
    if cps:
        out["throughput"] = f"{statistics.median(cps):,.0f} chars/s (median)"
    return out


def _ngram_line(run: RunDir, corpus: str | None) -> dict[str, float]:
    """The best n-gram's validation loss, when `gen baseline` has figures for the corpus as it is now."""
    from gen.core.data import CorpusData
    from gen.core.workspace import CorpusDir
    from gen.evals.baselines.ngram import best
    from gen.evals.baselines.store import cached

    folder = CorpusDir(run.path.parent.parent.parent / "corpora" / corpus) if corpus else None
    if folder is None or not folder.stale_baselines() or not folder.is_prepared():
        return {}
    found = cached(CorpusData(folder.path))
    if not found:
        return {}
    top = best(found)
    return {f"best n-gram (order {top.order})": top.val_nats}


def _loss_png(run: RunDir, metrics: list[dict[str, Any]], corpus: str | None = None) -> str | None:
    lines = _ngram_line(run, corpus)
    if metrics and (lines or not run.loss_plot.is_file()):
        plot_losses(run, lines)  # with the n-gram's line, or a run from before loss.png existed
    if not run.loss_plot.is_file():
        return None
    return base64.b64encode(run.loss_plot.read_bytes()).decode("ascii")


def _evolution(run: RunDir) -> list[dict[str, Any]]:
    samples = run.read_evolution()
    out = []
    for k, s in enumerate(samples):
        loss = s.get("train_loss")
        out.append({"step": s.get("step"), "text": s.get("text", ""),
                    "loss": f"{loss:.3f}" if isinstance(loss, float) and math.isfinite(loss) else "untrained",
                    "open": k in (0, len(samples) - 1) or len(samples) <= 8})
    return out


def render_page(run_dir: str | Path, out: Path | None = None) -> str:
    run = RunDir(run_dir)
    config = run.read_config()
    metrics = run.read_metrics()
    head = {k: config[k] for k in ("corpus", "domain") if k in config}
    if "n_layer" in config:
        head["model"] = (f"{config['n_layer']}x{config.get('n_hidden')} {config.get('cell', 'lstm')}, "
                         f"{config.get('params', 0):,} parameters")
    out = out or run.report
    links = sorted(p.relative_to(run.path).as_posix() for p in run.path.rglob("*.html") if p != out and p.is_file())
    return render("run.html", title=f"Run {run.path.name}" + (f" · {config['corpus']}" if "corpus" in config else ""),
                  path=str(run.path.resolve()), head={**head, **summary(metrics)}, loss_png=_loss_png(run, metrics, config.get("corpus")),
                  structure_png=base64.b64encode(run.structure.read_bytes()).decode("ascii")
                  if run.structure.is_file() else None,
                  val=[m for m in metrics if "val_loss" in m], ln2=LN2, evolution=_evolution(run),
                  links=links, config=config)


def write_run_page(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write ``report.html`` (or ``out``) for the run in ``run_dir``; returns its path."""
    run = RunDir(run_dir)
    if not run.path.is_dir():
        raise GenError(f"{run.path} is not a run folder")
    if not run.is_run():
        raise GenError(f"{run.path} does not look like a gen run folder (no config.json, metrics.jsonl or "
                       f"checkpoint); pass the folder `gen train` printed")
    out = Path(out) if out else run.report
    atomic_write_text(out, render_page(run.path, out))
    return out

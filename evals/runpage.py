"""One HTML report page per training run: learning curves, the evolution of samples, the config.

Reads what :mod:`gen.core.train` leaves in a run folder (config.json, metrics.jsonl, loss.png,
samples-during-training.txt) and writes ``report.html`` beside them: self-contained (the loss
plot is inlined as a base64 PNG), every text from the run escaped (a sample containing
``<script>`` shows as text), no script at all.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
import statistics
from pathlib import Path
from typing import Any

_SAMPLE_HEADER = re.compile(r"^=== step (\d+) \| (?:train loss (\S+)|untrained) ===$", re.M)

CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;max-width:960px;margin:1em auto;padding:0 1em;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.92em}td,th{border:1px solid #ddd;padding:.2em .6em;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;border:1px solid #eee}
pre{white-space:pre-wrap;word-break:break-word;background:#f7f7f5;border:1px solid #e4e4e0;padding:.5em;
 font:13px/1.4 "DejaVu Sans Mono",Menlo,Consolas,monospace;margin:.3em 0 .8em}
summary{cursor:pointer;font-weight:600}.muted{color:#666}
"""


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # a run killed mid-write leaves a torn last line
            continue
    return out


def read_evolution(run_dir: Path) -> list[tuple[int, str, str]]:
    """(step, train loss as written, sample text) from samples-during-training.txt."""
    path = run_dir / "samples-during-training.txt"
    if not path.is_file():
        return []
    raw = path.read_text(encoding="utf-8", errors="replace")
    heads = list(_SAMPLE_HEADER.finditer(raw))
    out = []
    for k, m in enumerate(heads):
        end = heads[k + 1].start() if k + 1 < len(heads) else len(raw)
        text = raw[m.end() + 1:end]
        out.append((int(m.group(1)), m.group(2) or "untrained", text[:-2] if text.endswith("\n\n") else text.rstrip("\n")))
    return out


def summary(metrics: list[dict[str, Any]]) -> dict[str, Any]:
    train = [m for m in metrics if "loss" in m]
    val = [m for m in metrics if "val_loss" in m and math.isfinite(m["val_loss"])]
    cps = [m["chars_per_s"] for m in train if "chars_per_s" in m]
    out: dict[str, Any] = {}
    if metrics:
        out["steps"] = max(m.get("step", 0) for m in metrics)
        out["training time"] = f"{max(m.get('time', 0.0) for m in metrics):,.0f} s"
    if train:
        out["last train loss"] = f"{train[-1]['loss']:.4f} nats ({train[-1]['loss'] / math.log(2):.3f} bpc)"
    if val:
        best = min(val, key=lambda m: m["val_loss"])
        out["best val loss"] = f"{best['val_loss']:.4f} nats ({best['val_loss'] / math.log(2):.3f} bpc) at step {best['step']}"
        out["last val loss"] = f"{val[-1]['val_loss']:.4f} nats at step {val[-1]['step']}"
    if cps:
        out["throughput"] = f"{statistics.median(cps):,.0f} chars/s (median)"
    return out


def _table(rows: dict[str, Any]) -> str:
    cells = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows.items())
    return f"<table>{cells}</table>"


def _loss_image(run_dir: Path, metrics: list[dict[str, Any]]) -> str:
    png = run_dir / "loss.png"
    if not png.is_file() and metrics:
        from gen.core.train import plot_losses

        plot_losses(run_dir)  # a run from before loss.png existed: draw it from metrics.jsonl
    if not png.is_file():
        return "<p class=\"muted\">No loss.png and no metrics.jsonl in this run folder.</p>"
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    return f"<img alt=\"training and validation loss against step\" src=\"data:image/png;base64,{data}\">"


def _val_table(metrics: list[dict[str, Any]]) -> str:
    val = [m for m in metrics if "val_loss" in m]
    if not val:
        return ""
    rows = "".join(f"<tr><td class=n>{m['step']}</td><td class=n>{m['val_loss']:.4f}</td>"
                   f"<td class=n>{m['val_loss'] / math.log(2):.3f}</td><td class=n>{m.get('time', 0):,.0f}</td></tr>"
                   for m in val)
    return ("<details><summary>validation loss at each evaluation</summary><table><tr><th>step</th>"
            f"<th>val loss (nats)</th><th>bpc</th><th>time (s)</th></tr>{rows}</table></details>")


def _evolution(samples: list[tuple[int, str, str]]) -> str:
    if not samples:
        return ("<p class=\"muted\">No samples were written during training (train with "
                "<code>--sample-every N</code> to see how samples evolve).</p>")
    parts = []
    for k, (step, loss, text) in enumerate(samples):
        opened = " open" if k in (0, len(samples) - 1) or len(samples) <= 8 else ""
        parts.append(f"<details{opened}><summary>step {step} · train loss {html.escape(loss)}</summary>"
                     f"<pre>{html.escape(text)}</pre></details>")
    return "\n".join(parts)


def _links(run_dir: Path, out: Path) -> str:
    """Other pages in the run folder (gen viz / gen neurons output), linked relatively."""
    pages = sorted(p for p in run_dir.rglob("*.html") if p != out and p.is_file())
    if not pages:
        return ""
    items = "".join(f"<li><a href=\"{html.escape(p.relative_to(run_dir).as_posix(), quote=True)}\">"
                    f"{html.escape(p.relative_to(run_dir).as_posix())}</a></li>" for p in pages)
    return f"<h2>Other pages of this run</h2><ul>{items}</ul>"


def render(run_dir: Path, out: Path | None = None) -> str:
    run_dir = Path(run_dir)
    config: dict[str, Any] = {}
    if (run_dir / "config.json").is_file():
        try:
            config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            config = {"config.json": "unreadable"}
    metrics = read_metrics(run_dir)
    head = {k: config[k] for k in ("corpus", "domain") if k in config}
    if "n_layer" in config:
        head["model"] = (f"{config['n_layer']}x{config.get('n_hidden')} {config.get('cell', 'lstm')}, "
                         f"{config.get('params', 0):,} parameters")
    title = f"Run {run_dir.name}" + (f" · {config['corpus']}" if "corpus" in config else "")
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body>\n<h1>{html.escape(title)}</h1>\n"
            f"<p class=\"muted\">{html.escape(str(run_dir.resolve()))}</p>\n{_table({**head, **summary(metrics)})}\n"
            f"<h2>Learning curves</h2>\n{_loss_image(run_dir, metrics)}\n{_val_table(metrics)}\n"
            f"<h2>Samples during training</h2>\n{_evolution(read_evolution(run_dir))}\n"
            f"{_links(run_dir, out or run_dir / 'report.html')}\n"
            f"<h2>Configuration</h2>\n{_table(config)}\n</body></html>\n")


def write_run_page(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write ``report.html`` (or ``out``) for the run in ``run_dir``; returns its path."""
    from gen.core.atomic import atomic_write_text
    from gen.core.errors import GenError

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise GenError(f"{run_dir} is not a run folder")
    if not any((run_dir / n).is_file() for n in ("config.json", "metrics.jsonl", "best.pt", "last.pt")):
        raise GenError(f"{run_dir} does not look like a gen run folder (no config.json, metrics.jsonl or "
                       f"checkpoint); pass the folder `gen train` printed")
    out = Path(out) if out else run_dir / "report.html"
    atomic_write_text(out, render(run_dir, out))
    return out

"""Interpretable-cell search: correlate every cell with every structural feature of a text.

The blog found its interpretable cells (quote detector, line-length counter, ``if``-body cell
...) by eye, about 5% of them. Here the domain plugin says what structure a text has
(``Domain.features(text)``: name -> one float per character, e.g. "inside a string", "brace
depth"), the model's state after every character is recorded (:func:`gen.evals.inspect.viz.trace`,
every layer, ``c`` and ``h``), and the Pearson correlation of every (cell, feature) pair is one
matrix product of standardised columns. For each feature we report the best cell and its r, and
how many cells match some feature strongly, with a link into the viz page coloured by that cell.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gen.core import table
from gen.core.units import bpc
from gen.evals.inspect.viz import Trace, cell_key

THRESHOLDS = (0.8, 0.5)
BLOCK = 2048  # cells standardised at a time: bounds the extra memory to T x BLOCK floats


def correlate(acts: np.ndarray, feats: np.ndarray) -> np.ndarray:
    """Pearson r of each feature row of ``feats`` (F, T) with each column of ``acts`` (T, N) -> (F, N).

    A constant column or feature has no correlation: its r is 0, not NaN."""
    feats = np.asarray(feats, dtype=np.float64)
    fz = feats - feats.mean(axis=1, keepdims=True)
    fn = np.sqrt((fz * fz).sum(axis=1))
    fz = (fz / np.where(fn > 0, fn, 1.0)[:, None]).astype(np.float32)
    out = np.zeros((feats.shape[0], acts.shape[1]), dtype=np.float32)
    for lo in range(0, acts.shape[1], BLOCK):
        a = acts[:, lo:lo + BLOCK]
        a = a - a.mean(axis=0, dtype=np.float64).astype(np.float32)
        an = np.sqrt(np.einsum("ij,ij->j", a, a, dtype=np.float64)).astype(np.float32)
        r = (fz @ a) / np.where(an > 0, an, 1.0)
        r[:, an == 0] = 0.0
        out[:, lo:lo + BLOCK] = r
    out[fn == 0] = 0.0
    return np.clip(out, -1.0, 1.0)


@dataclass
class FeatureMatch:
    feature: str
    cells: list[tuple[tuple[int, str, int], float]]  # best first: ((layer, kind, index), r)
    mean: float  # the feature's mean over the text (its share of characters, for a 0/1 feature)

    @property
    def best(self) -> tuple[tuple[int, str, int], float]:
        return self.cells[0]


@dataclass
class NeuronReport:
    matches: list[FeatureMatch]
    n_cells: int
    strong: dict[float, int]  # threshold -> cells whose |r| with some feature reaches it
    skipped: dict[str, str] = field(default_factory=dict)  # feature -> why it was left out
    chars: int = 0

    def share(self, threshold: float) -> float:
        return self.strong[threshold] / self.n_cells if self.n_cells else 0.0

    def to_dict(self, link: str | None = None) -> dict[str, Any]:
        feats = {}
        for m in self.matches:
            (layer, kind, index), r = m.best
            key = cell_key(layer, kind, index)
            feats[m.feature] = {
                "cell": key, "layer": layer, "kind": kind, "index": index, "r": round(r, 4),
                "feature_mean": round(m.mean, 4),
                "top": [{"cell": cell_key(*c), "r": round(v, 4)} for c, v in m.cells],
                **({"link": f"{link}#cell={key}"} if link else {}),
            }
        return {"chars": self.chars, "n_cells": self.n_cells, "features": feats,
                **{f"share_abs_r_ge_{t}": round(self.share(t), 4) for t in sorted(self.strong, reverse=True)},
                **{f"cells_abs_r_ge_{t}": n for t, n in sorted(self.strong.items(), reverse=True)},
                "skipped_features": self.skipped}


def find_cells(tr: Trace, features: dict[str, np.ndarray], top: int = 3,
               thresholds: tuple[float, ...] = THRESHOLDS) -> NeuronReport:
    """Best cells of ``tr`` for each feature. Features that are constant on the text (nothing to
    correlate with), of the wrong length or not finite are skipped, with the reason."""
    n = len(tr.text)
    names, rows, skipped, means = [], [], {}, []
    for name, values in features.items():
        arr = np.asarray(values, dtype=np.float64).reshape(-1)
        if len(arr) != n:
            skipped[name] = f"has {len(arr)} values for {n} characters (a domain plugin bug)"
        elif not np.isfinite(arr).all():
            skipped[name] = "has NaN or infinite values"
        elif arr.min() == arr.max():
            skipped[name] = f"is constant ({arr[0]:g}) on this text"
        else:
            names.append(name)
            rows.append(arr)
            means.append(float(arr.mean()))
    if not names:
        return NeuronReport([], tr.n_cells, {t: 0 for t in thresholds}, skipped, n)
    r = correlate(tr.acts, np.stack(rows))
    absr = np.abs(r)
    matches = []
    for i, name in enumerate(names):
        order = np.argsort(-absr[i], kind="stable")[:top]
        matches.append(FeatureMatch(name, [(tr.cell(int(c)), float(r[i, c])) for c in order], means[i]))
    best_per_cell = absr.max(axis=0)
    strong = {t: int((best_per_cell >= t).sum()) for t in thresholds}
    return NeuronReport(matches, tr.n_cells, strong, skipped, n)


def format_table(rep: NeuronReport, link: str | None = None) -> str:
    """A Markdown table (readable in a terminal too): the best cell per feature, strongest first."""
    rows = []
    for m in sorted(rep.matches, key=lambda m: -abs(m.best[1])):
        (layer, kind, index), r = m.best
        key = cell_key(layer, kind, index)
        rest = ", ".join(f"{cell_key(*c)} {v:+.2f}" for c, v in m.cells[1:])
        rows.append([m.feature, key, f"{r:+.3f}", rest, f"{link}#cell={key}" if link else ""])
    lines = [table.render(rows, [["feature", "best cell", "r", "runners-up", "link"]], align="<<><<", markdown=True),
             ""]
    for t in sorted(rep.strong, reverse=True):
        lines.append(f"cells with |r| >= {t} for some feature: {rep.strong[t]} of {rep.n_cells} "
                     f"({rep.share(t):.1%})")
    for name, why in rep.skipped.items():
        lines.append(f"skipped feature {name}: {why}")
    return "\n".join(lines)


def pinned_cells(rep: NeuronReport) -> list[dict[str, Any]]:
    """The best cell of each feature, labelled, for the viz page's "cells of interest" list."""
    out, seen = [], {}
    for m in sorted(rep.matches, key=lambda m: -abs(m.best[1])):
        cell, r = m.best
        if cell in seen:  # one cell best for several features: one entry naming them all
            seen[cell]["label"] += f", {m.feature} r={r:+.2f}"
            continue
        seen[cell] = {"cell": cell, "label": f"{m.feature} r={r:+.2f}"}
        out.append(seen[cell])
    return out


def write_outputs(out_dir: Path, tr: Trace, rep: NeuronReport, title: str, info: dict[str, Any],
                  max_bytes: int = 16 << 20) -> dict[str, Path]:
    """neurons.json, neurons.md and viz.html (the page the links point into) in ``out_dir``."""
    from gen.core.atomic import atomic_write_text
    from gen.evals.inspect.viz import write_page

    out_dir.mkdir(parents=True, exist_ok=True)
    page = (out_dir / "viz.html").resolve()
    write_page(page, tr, title, info, pinned=pinned_cells(rep), max_bytes=max_bytes)
    data = {**info, **rep.to_dict(str(page))}
    atomic_write_text(out_dir / "neurons.json", json.dumps(data, indent=2, ensure_ascii=False))
    bits = bpc(float(np.mean(tr.loss)))
    atomic_write_text(out_dir / "neurons.md", f"# {title}\n\n{len(tr.text):,} characters, {bits:.3f} bits/char\n\n"
                      + format_table(rep, str(page)) + "\n")
    return {"page": page, "json": out_dir / "neurons.json", "table": out_dir / "neurons.md"}

"""A model against counting: its loss on held-out text beside the best n-gram's, overall and by
the text's structure (Goldberg's argument as a number per domain).

:func:`score` scores the validation split (or a file) with a checkpoint, character by character
(core/scoring.py; with dynamic evaluation when asked), and with the corpus's best n-gram model
(ngram.py, the order ``gen baseline`` picks). :func:`by_structure` groups both losses by the
domain's per-character features (the ones `gen neurons` uses: depth of brackets and
environments, inside a string, comment, quote or math, position in the line ...): where the
LSTM beats counting most.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gen.core.units import bpc

POSITION_BUCKETS = ((0, 0), (1, 9), (10, 39), (40, None))  # characters into the line (or name)
DEPTH_BUCKETS = ((0, 0), (1, 1), (2, 2), (3, None))  # brackets, environments, braces open


@dataclass
class Scores:
    """Per-character nats of one text under the model (static, dynamic) and the n-gram."""

    chars: int
    model: np.ndarray
    ngram: np.ndarray | None = None
    ngram_order: int | None = None
    dynamic: np.ndarray | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"chars": self.chars, "model_nats": float(self.model.mean()),
                               "model_bpc": bpc(float(self.model.mean())), "seconds": self.seconds}
        if self.dynamic is not None:
            out.update(dynamic_nats=float(self.dynamic.mean()), dynamic_bpc=bpc(float(self.dynamic.mean())),
                       dynamic_gain_nats=float(self.model.mean() - self.dynamic.mean()))
        if self.ngram is not None:
            out.update(ngram_order=self.ngram_order, ngram_nats=float(self.ngram.mean()),
                       ngram_bpc=bpc(float(self.ngram.mean())),
                       model_gain_over_ngram_nats=float(self.ngram.mean() - self.model.mean()))
        return out


def score(model: Any, ids: np.ndarray, start: int, train_ids: np.ndarray | None, vocab_size: int,
          ngram_order: int | None, dynamic: Any = None) -> Scores:
    """Every character of ``ids`` under the model (and dynamically, and under the order
    ``ngram_order`` n-gram of ``train_ids`` when given)."""
    from gen.core.scoring import char_losses
    from gen.evals.baselines.ngram import char_nats

    t0 = time.perf_counter()
    out = Scores(len(ids), char_losses(model, ids, start))
    out.seconds["model"] = time.perf_counter() - t0
    if dynamic is not None:
        t0 = time.perf_counter()
        out.dynamic = char_losses(model, ids, start, dynamic=dynamic)
        out.seconds["dynamic"] = time.perf_counter() - t0
    if train_ids is not None and ngram_order:
        t0 = time.perf_counter()
        out.ngram, out.ngram_order = char_nats(train_ids, ids, vocab_size, ngram_order), ngram_order
        out.seconds["ngram"] = time.perf_counter() - t0
    return out


def _buckets(name: str, values: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """(label, mask) per group of a feature: yes/no for a flag, ranges for a depth or a position."""
    if np.isin(values, (0.0, 1.0)).all():
        return [("no", values == 0), ("yes", values == 1)]
    edges = POSITION_BUCKETS if "pos" in name else DEPTH_BUCKETS
    out = []
    for lo, hi in edges:
        label = f"{lo}" if lo == hi else f"{lo}+" if hi is None else f"{lo}-{hi}"
        out.append((label, (values >= lo) & (values <= (hi if hi is not None else np.inf))))
    return out


def by_structure(scores: Scores, features: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """One row per feature and group: characters, the model's and the n-gram's mean nats, and how
    much lower the model's is (the n-gram's minus the model's)."""
    rows = []
    for name, values in features.items():
        values = np.asarray(values, dtype=np.float64)[:scores.chars]
        for label, mask in _buckets(name, values):
            n = int(mask.sum())
            if n == 0:
                continue
            model = float(scores.model[mask].mean())
            ngram = float(scores.ngram[mask].mean()) if scores.ngram is not None else None
            rows.append({"feature": name, "group": label, "chars": n, "model_nats": model, "ngram_nats": ngram,
                         "gain_nats": ngram - model if ngram is not None else None})
    return rows


def plot_structure(rows: list[dict[str, Any]], path: Any, title: str) -> None:
    """Bar chart of the model's gain over the n-gram per feature group."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r["gain_nats"] is not None]
    fig, ax = plt.subplots(figsize=(8, 0.28 * len(rows) + 1.2))
    ax.barh([f"{r['feature']} = {r['group']}" for r in rows], [r["gain_nats"] for r in rows], color="#4a7")
    ax.invert_yaxis()
    ax.set_xlabel("n-gram loss minus model loss (nats/char): where the model beats counting")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

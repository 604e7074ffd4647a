"""See inside the model: per-character activations, top-5 guesses and loss, as one HTML page.

:func:`trace` runs a text through a trained :class:`CharRNN` and records, after every character,
each layer's LSTM cell state ``c`` and hidden state ``h`` (``h`` only for GRU/RNN), the model's
five likeliest next characters and the loss of every character. :func:`write_page` turns that
into one self-contained HTML file (templates/viz.html with its CSS and JS inlined, data as JSON in
a script tag, no network).

Why layer by layer: ``nn.LSTM`` returns every step's ``h`` of the layer it runs, so running each
layer alone over the whole text gives all ``h`` exactly with the fused kernel, several times
faster than stepping :class:`FusedStepper` once per character on CPU (evals/BENCHMARKS.md, "Design measurements"). ``c`` is not returned per step, but
with every ``h`` known the gates of all steps are one batched matmul, and ``c_t = f_t c_{t-1} +
i_t g_t`` is then a cheap elementwise scan.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from gen.core.model import CELLS, CharRNN
from gen.core.units import bpc
from gen.core.vocab import Vocab
from gen.evals.inspect.templates import render, script_json

TOP_K = 5


@dataclass
class Trace:
    """What the model did on ``text``; row ``t`` of every array belongs to character ``t``.

    ``acts[t]``: the state after reading ``text[t]``, columns ordered layer, then kind, then
    unit (see :meth:`column`). ``top_ids/top_p[t]``: the guesses for ``text[t+1]``.
    ``loss[t]``: -ln p(text[t] | everything before it), in nats.
    """

    text: str
    acts: np.ndarray  # (T, n_layer * len(kinds) * hidden) float32
    kinds: tuple[str, ...]  # ("c", "h") for LSTM, ("h",) otherwise
    n_layer: int
    hidden: int
    top_ids: np.ndarray  # (T, 5) int
    top_p: np.ndarray  # (T, 5) float32
    loss: np.ndarray  # (T,) float32
    chars: list[str] = field(default_factory=list)  # the vocabulary (top_ids index it)
    mapped: dict[str, str] = field(default_factory=dict)  # unseen text chars -> what they were read as

    @property
    def n_cells(self) -> int:
        return self.acts.shape[1]

    def column(self, layer: int, kind: str, index: int) -> int:
        if not (0 <= layer < self.n_layer and kind in self.kinds and 0 <= index < self.hidden):
            raise ValueError(f"no cell {layer}:{kind}:{index} (layers 0-{self.n_layer - 1}, kinds "
                             f"{'/'.join(self.kinds)}, units 0-{self.hidden - 1})")
        return (layer * len(self.kinds) + self.kinds.index(kind)) * self.hidden + index

    def cell(self, column: int) -> tuple[int, str, int]:
        """(layer, kind, index) of an ``acts`` column."""
        block, index = divmod(column, self.hidden)
        layer, k = divmod(block, len(self.kinds))
        return layer, self.kinds[k], index


def cell_key(layer: int, kind: str, index: int) -> str:
    """The cell name used in tables, JSON and the page's ``#cell=`` fragment."""
    return f"{layer}:{kind}:{index}"


def _layer_module(model: CharRNN, k: int) -> nn.Module:
    """Layer ``k`` of the model's stacked RNN as a one-layer module with the same weights."""
    a, rnn = model.args, model.rnn
    mod = CELLS[a.cell](a.n_embd if k == 0 else a.n_hidden, a.n_hidden, num_layers=1, batch_first=True)
    mod.load_state_dict({f"{n}_l0": getattr(rnn, f"{n}_l{k}") for n in
                         ("weight_ih", "weight_hh", "bias_ih", "bias_hh")})
    return mod.eval().to(rnn.weight_ih_l0.device)  # on the model's device (viz --device cuda)


def _lstm_cells(layer: nn.Module, x: torch.Tensor, h: torch.Tensor) -> np.ndarray:
    """Every step's cell state of one LSTM layer, given its inputs x (T, in) and outputs h (T, H)."""
    h_prev = torch.cat([torch.zeros_like(h[:1]), h[:-1]])
    gates = x @ layer.weight_ih_l0.t() + layer.bias_ih_l0 + h_prev @ layer.weight_hh_l0.t() + layer.bias_hh_l0
    i, f, g, _ = gates.split(h.shape[1], 1)  # PyTorch gate order: input, forget, cell, output
    f = torch.sigmoid(f).cpu().numpy()
    u = (torch.sigmoid(i) * torch.tanh(g)).cpu().numpy()
    c = np.empty_like(u)
    state = np.zeros(u.shape[1], dtype=np.float32)
    for t in range(len(u)):  # the recurrence is elementwise: one small step per character
        state = f[t] * state + u[t]
        c[t] = state
    return c


def trace(model: CharRNN, vocab: Vocab, text: str, start: str = "\n", threads: int = 1,
          device: torch.device | None = None) -> Trace:
    """Run ``text`` through ``model`` (read after ``start``, as sampling does) and record it all.

    One stream is a chain of tiny (1, H) x (H, 4H) products: extra threads only add
    synchronisation (measured several times slower with 2 threads than 1 on a busy 2-core machine: evals/BENCHMARKS.md)."""
    if not text:
        raise ValueError("nothing to trace: the text is empty")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _trace(model, vocab, text, start, device or torch.device("cpu"))
    finally:
        torch.set_num_threads(before)


@torch.no_grad()
def _trace(model: CharRNN, vocab: Vocab, text: str, start: str, device: torch.device) -> Trace:
    """fp32 on ``device`` (activations are for display: no reduced precision); arrays return to the CPU."""
    model = model.float().eval().to(device)
    a = model.args
    vocab.mapped = {}
    lead = start if start and start in vocab.stoi else ""
    ids = torch.tensor(vocab.encode(lead + text), dtype=torch.long, device=device)
    mapped = dict(vocab.mapped)
    x = model.embed(ids)  # (T', E), T' = len(lead) + T
    kinds = ("c", "h") if a.cell == "lstm" else ("h",)
    blocks = []
    for k in range(a.n_layer):
        layer = _layer_module(model, k)
        h = layer(x[None])[0][0]  # (T', H)
        if a.cell == "lstm":
            blocks.append(_lstm_cells(layer, x, h))
        blocks.append(h.cpu().numpy())
        x = h
    logits = model.head(x)  # (T', V): row t predicts character t + 1 of lead + text
    if not lead:  # no start character: the first character is predicted from the zero state
        logits = torch.cat([model.head(torch.zeros(1, a.n_hidden, device=device)), logits])
    logp = torch.log_softmax(logits.float(), -1).cpu()
    targets = ids[len(lead):].cpu()
    loss = -logp[:-1].gather(1, targets[:, None])[:, 0]
    top_p, top_ids = logp[1:].exp().topk(min(TOP_K, a.vocab_size), dim=-1)
    n = len(lead)
    acts = np.concatenate([b[n:] for b in blocks], axis=1).astype(np.float32)
    return Trace(text=text, acts=acts, kinds=kinds, n_layer=a.n_layer, hidden=a.n_hidden,
                 top_ids=top_ids.numpy(), top_p=top_p.numpy().astype(np.float32),
                 loss=loss.numpy().astype(np.float32), chars=list(vocab.chars), mapped=mapped)


# ---- the page -------------------------------------------------------------------------------

def _b64(arr: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(arr).tobytes()).decode("ascii")


def choose_cells(tr: Trace, max_bytes: int, pinned: list[int] | None = None) -> list[int]:
    """Which activation columns fit the page: all when they fit, else pinned ones first, then the
    most varying (a flat cell says little), returned in column order for the selector."""
    pinned = list(dict.fromkeys(pinned or []))
    room = max(1, max_bytes // max(1, len(tr.text)))
    if tr.n_cells <= room:
        return list(range(tr.n_cells))
    order = np.argsort(-tr.acts.std(axis=0), kind="stable").tolist()
    chosen = list(dict.fromkeys(pinned + order))[:max(room, len(pinned))]
    return sorted(chosen)


def page_data(tr: Trace, title: str, info: dict[str, Any] | None = None, pinned: list[dict] | None = None,
              max_bytes: int = 16 << 20) -> dict[str, Any]:
    """The JSON the page script reads. Activations are quantised to one byte per cell and char
    (per-cell scale: max |value|), stored cell-major so one cell is one contiguous slice."""
    pinned = pinned or []
    pin_cols = [tr.column(*p["cell"]) for p in pinned]
    cols = choose_cells(tr, max_bytes, pin_cols)
    sub = tr.acts[:, cols]
    scale = np.abs(sub).max(axis=0)
    scale[scale == 0] = 1.0
    q = np.clip(np.rint(sub / scale * 127) + 128, 1, 255).astype(np.uint8).T  # (cells, T)
    loss = tr.loss.astype(np.float64)
    return {
        "title": title, "text": tr.text, "vocab": tr.chars, "layers": tr.n_layer, "kinds": list(tr.kinds),
        "hidden": tr.hidden, "total_cells": tr.n_cells, "k": int(tr.top_ids.shape[1]),
        "cells": [[*tr.cell(c), float(s)] for c, s in zip(cols, scale.tolist(), strict=True)],
        "acts": _b64(q), "top_ids": _b64(tr.top_ids.astype("<u2")),
        "top_p": _b64(np.rint(tr.top_p * 255).astype(np.uint8)),
        "loss": [round(v, 2) for v in loss.tolist()],
        "mean_loss": float(loss.mean()), "info": info or {},
        "pinned": [{"cell": cell_key(*p["cell"]), "label": p.get("label", "")} for p in pinned],
        "mapped": tr.mapped,
    }


def render_page(data: dict[str, Any]) -> str:
    return render("viz.html", title=data["title"], info=data["info"], n_chars=len(data["text"]),
                  mean_loss=data["mean_loss"], bpc=bpc(data["mean_loss"]), n_cells=len(data["cells"]),
                  total_cells=data["total_cells"], data_json=script_json(data))


def write_page(path: str | Path, tr: Trace, title: str, info: dict[str, Any] | None = None,
               pinned: list[dict] | None = None, max_bytes: int = 16 << 20) -> Path:
    """Write the self-contained page for ``tr``. ``pinned``: [{"cell": (layer, kind, index),
    "label": str}] cells listed first in the page's selector (and always embedded)."""
    from gen.core.atomic import atomic_write_text

    path = Path(path)
    atomic_write_text(path, render_page(page_data(tr, title, info, pinned, max_bytes)))
    return path

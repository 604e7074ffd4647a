"""A model's loss on a text, character by character: static, or with dynamic evaluation.

Static: one stream reads the text in chunks, its state carried, each character predicted from
everything before it (the first from the corpus separator, as sampling starts). Dynamic
(Krause et al. 2018, "Dynamic Evaluation of Neural Sequence Models"): after each chunk is
scored, the weights take one step on that chunk's loss, so later text is predicted by a model
adapted to what it has read; the step is RMS-normalised SGD (the gradient divided by the root of
a running mean of its squares, bias-corrected) followed by a decay back to the trained weights,
``theta += decay * (theta_trained - theta)``. Every character is still scored before the model
learns from it. The adapted weights live on a copy: the caller's model, and so the checkpoint
it came from, are never changed.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch

from gen.core.model import CharRNN, detach_hidden


@dataclass(frozen=True)
class Dynamic:
    """Dynamic evaluation's settings (measured on a 15-minute tiny-Shakespeare model)."""

    lr: float = 3e-4  # step size on the RMS-normalised gradient
    decay: float = 1e-3  # pull back to the trained weights per step: keeps the model from drifting
    beta: float = 0.99  # how slowly the running mean of squared gradients forgets
    eps: float = 1e-8


@torch.no_grad()
def _static(model: CharRNN, x: torch.Tensor, y: torch.Tensor, chunk: int) -> np.ndarray:
    out, hidden = np.empty(len(y), dtype=np.float64), None
    for i in range(0, len(y), chunk):
        logits, hidden = model(x[None, i:i + chunk], hidden)  # (1, T, V)
        out[i:i + chunk] = torch.nn.functional.cross_entropy(logits[0].float(), y[i:i + chunk],
                                                             reduction="none").double().numpy()
    return out


def _dynamic(model: CharRNN, x: torch.Tensor, y: torch.Tensor, chunk: int, dyn: Dynamic) -> np.ndarray:
    adapted = copy.deepcopy(model)  # the caller's weights are never touched
    adapted.train(False)  # dropout off: adaptation, not regularised training
    params = [p for p in adapted.parameters() if p.requires_grad]
    trained = [p.detach().clone() for p in params]
    mean_sq = [torch.zeros_like(p) for p in params]
    out, hidden = np.empty(len(y), dtype=np.float64), None
    for step, i in enumerate(range(0, len(y), chunk), start=1):
        logits, hidden = adapted(x[None, i:i + chunk], hidden)  # (1, T, V)
        losses = torch.nn.functional.cross_entropy(logits[0].float(), y[i:i + chunk], reduction="none")
        out[i:i + chunk] = losses.detach().double().numpy()  # scored before learning from it
        adapted.zero_grad(set_to_none=True)
        losses.mean().backward()
        hidden = detach_hidden(hidden)
        with torch.no_grad():
            for p, base, ms in zip(params, trained, mean_sq, strict=True):
                ms.mul_(dyn.beta).addcmul_(p.grad, p.grad, value=1 - dyn.beta)
                rms = (ms / (1 - dyn.beta ** step)).sqrt_().add_(dyn.eps)
                p.sub_(dyn.lr * p.grad / rms)
                p.add_(base - p, alpha=dyn.decay)
    return out


def char_losses(model: CharRNN, ids: np.ndarray, start: int, chunk: int = 256,
                dynamic: Dynamic | None = None) -> np.ndarray:
    """Nats for every character of ``ids`` (character ids of the model's vocabulary), the first
    predicted after the id ``start`` (the corpus separator); ``dynamic`` adapts as it reads."""
    if len(ids) == 0:
        return np.zeros(0)
    y = torch.as_tensor(np.asarray(ids, dtype=np.int64))
    x = torch.cat([torch.tensor([start]), y[:-1]])
    was = model.training
    model.eval()
    try:
        return _dynamic(model, x, y, chunk, dynamic) if dynamic else _static(model, x, y, chunk)
    finally:
        model.train(was)

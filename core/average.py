"""Averaged weights for training: an exponential moving average of the parameters.

The averaged model is what AWD-LSTM (Merity et al. 2018) evaluates and keeps: the last part of
training jitters around a minimum, and the average of those weights sits nearer it than any one
of them. Here the average is exponential (Polyak averaging with a decay per step), with a
warm-up (the decay starts small, as TensorFlow's ExponentialMovingAverage with num_updates) so
the early average follows the fast-moving weights instead of the random start. It is part of
the checkpoint, so a resumed run averages exactly as an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch


class WeightAverage:
    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay, self.updates = decay, 0
        self.shadow = [p.detach().clone() for p in model.parameters()]

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        """After an optimizer step: shadow <- d * shadow + (1 - d) * weights."""
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        torch._foreach_lerp_(self.shadow, [p.detach() for p in model.parameters()], 1.0 - d)

    @contextmanager
    @torch.no_grad()
    def applied(self, model: torch.nn.Module) -> Iterator[None]:
        """The model holds the averaged weights inside the block, its own again after it."""
        params = list(model.parameters())
        saved = [p.detach().clone() for p in params]
        for p, s in zip(params, self.shadow, strict=True):
            p.copy_(s)
        try:
            yield
        finally:
            for p, s in zip(params, saved, strict=True):
                p.copy_(s)

    def averaged_state(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """The model's state_dict with the averaged weights (what best.pt samples with)."""
        names = [n for n, _ in model.named_parameters()]
        state = dict(model.state_dict())
        state.update({n: s.detach().clone() for n, s in zip(names, self.shadow, strict=True)})
        return state

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "updates": self.updates, "shadow": [s.detach().cpu() for s in self.shadow]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.updates = int(state["updates"])
        for s, t in zip(self.shadow, state["shadow"], strict=True):
            s.copy_(t)

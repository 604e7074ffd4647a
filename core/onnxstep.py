"""One recurrent step as an ONNX graph, and a stepper that runs it in onnxruntime.

The graph is the model's own step, written with plain tensor ops that every ONNX runtime has
(gather, matmul, sigmoid, tanh): character ids (B,) and the recurrent state (S, B, H) in,
logits (B, V) and the next state out, the batch dimension dynamic. S stacks each layer's h
(and, for an LSTM, its c right after it): the layout of :meth:`FusedStepper.init_state`.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from gen.core.errors import GenError
from gen.core.model import CharRNN

INPUTS = ("ids", "state")
OUTPUTS = ("logits", "state_out")
OPSET = 18  # the first opset onnxruntime-web and torch's exporter both cover fully


def state_rows(cell: str, n_layer: int) -> int:
    """S: the rows of the state tensor (h per layer, and c after it for an LSTM)."""
    return n_layer * (2 if cell == "lstm" else 1)


class StepGraph(nn.Module):
    """CharRNN's recurrence for one character, in the gate order and bias layout of nn.LSTM,
    nn.GRU and nn.RNN (LSTM: i, f, g, o; GRU: r, z, n), on the model's own weights."""

    def __init__(self, model: CharRNN) -> None:
        super().__init__()
        a = model.args
        self.cell, self.L, self.H = a.cell, a.n_layer, a.n_hidden
        w = {k: v.detach().float().clone() for k, v in model.state_dict().items()}
        self.embed = nn.Parameter(w["embed.weight"], requires_grad=False)  # (V, E)
        for k in range(a.n_layer):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                setattr(self, f"{name}_l{k}", nn.Parameter(w[f"rnn.{name}_l{k}"], requires_grad=False))
        self.head_w = nn.Parameter(w["head.weight"], requires_grad=False)  # (V, H)
        self.head_b = nn.Parameter(w["head.bias"], requires_grad=False)

    def forward(self, ids: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ids (B,) int64, state (S, B, H) -> logits (B, V), state (S, B, H)."""
        H = self.H
        x = self.embed[ids]  # (B, E)
        out = []
        for k in range(self.L):
            w_ih, w_hh = getattr(self, f"weight_ih_l{k}"), getattr(self, f"weight_hh_l{k}")
            b_ih, b_hh = getattr(self, f"bias_ih_l{k}"), getattr(self, f"bias_hh_l{k}")
            if self.cell == "lstm":
                h, c = state[2 * k], state[2 * k + 1]
                g = x @ w_ih.t() + b_ih + h @ w_hh.t() + b_hh  # (B, 4H)
                i, f, gg, o = g[:, :H], g[:, H:2 * H], g[:, 2 * H:3 * H], g[:, 3 * H:]
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(gg)
                h = torch.sigmoid(o) * torch.tanh(c)
                out += [h, c]
            elif self.cell == "gru":
                h = state[k]
                gi, gh = x @ w_ih.t() + b_ih, h @ w_hh.t() + b_hh  # (B, 3H) each
                r = torch.sigmoid(gi[:, :H] + gh[:, :H])
                z = torch.sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H])
                n = torch.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
                h = n + z * (h - n)
                out.append(h)
            else:
                h = torch.tanh(x @ w_ih.t() + b_ih + state[k] @ w_hh.t() + b_hh)
                out.append(h)
            x = h
        return x @ self.head_w.t() + self.head_b, torch.stack(out)


def write_onnx(model: CharRNN, path: Path) -> None:
    """Export one step of ``model`` to ``path`` with torch's ONNX exporter (needs onnxscript)."""
    try:
        import onnxscript  # noqa: F401  (torch's exporter imports it; said here in one line)
    except ImportError:
        raise GenError("model.onnx needs the ONNX exporter's packages: pip install 'gen-charrnn[onnx]' "
                       "(or export with --no-onnx)") from None
    graph = StepGraph(model).eval()
    a = model.args
    ids, state = torch.zeros(2, dtype=torch.long), torch.zeros(state_rows(a.cell, a.n_layer), 2, a.n_hidden)
    batch = torch.export.Dim("batch")
    # the exporter reports its progress, deprecations and the torchvision ops it skips on stdout,
    # as warnings and through logging: none of it concerns this graph
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(graph, (ids, state), dynamo=True, opset_version=OPSET, verbose=False,
                                        input_names=list(INPUTS), output_names=list(OUTPUTS),
                                        dynamic_shapes=({0: batch}, {1: batch}))
            program.save(str(path), external_data=False)
    finally:
        quiet.setLevel(level)


class OnnxStepper:
    """:class:`FusedStepper`'s interface over an onnxruntime session of ``model.onnx``: the same
    state list (per layer h, then c), so :func:`gen.core.sample.sample` draws through it alike."""

    def __init__(self, path: Path, cell: str, n_layer: int, n_hidden: int) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise GenError("running model.onnx needs onnxruntime: pip install onnxruntime") from None
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.rows, self.H = state_rows(cell, n_layer), n_hidden
        self.device, self.dtype = torch.device("cpu"), torch.float32

    def init_state(self, n: int) -> list[torch.Tensor]:
        return [torch.zeros(n, self.H) for _ in range(self.rows)]

    def step(self, ids: torch.Tensor, state: list[torch.Tensor]) -> torch.Tensor:
        """Feed ids (N,); ``state`` is updated in place, logits (N, V) returned."""
        feed: dict[str, Any] = {"ids": ids.numpy().astype(np.int64),
                                "state": torch.stack(state).numpy()}
        logits, new = self.session.run(list(OUTPUTS), feed)
        state[:] = list(torch.from_numpy(new).unbind(0))
        return torch.from_numpy(logits)

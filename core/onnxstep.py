"""One recurrent step as an ONNX graph, and a stepper that runs it in onnxruntime.

The graph is the step `gen sample` runs (:class:`FusedStepper` in fp32: a table lookup for layer
0, one matrix product per layer, sigmoid and tanh: ops every ONNX runtime has): character ids
(B,) and the recurrent state (S, B, H) in, logits (B, V) and the next state out, the batch
dimension dynamic. S stacks each layer's h
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
from gen.core.model import CharRNN, FusedStepper

INPUTS = ("ids", "state")
OUTPUTS = ("logits", "state_out")
OPSET = 18  # the first opset onnxruntime-web and torch's exporter both cover fully


def state_rows(cell: str, n_layer: int) -> int:
    """S: the rows of the state tensor (h per layer, and c after it for an LSTM)."""
    return n_layer * (2 if cell == "lstm" else 1)


class StepGraph(nn.Module):
    """One character through :class:`FusedStepper` (fp32), the stepper `gen sample` runs, as a
    module torch's exporter can trace: the state list as one (S, B, H) tensor in and out."""

    def __init__(self, model: CharRNN) -> None:
        super().__init__()
        self.stepper = FusedStepper(model, "cpu", torch.float32)

    def forward(self, ids: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ids (B,) int64, state (S, B, H) -> logits (B, V), state (S, B, H)."""
        rows = list(state.unbind(0))
        logits = self.stepper.step(ids, rows)  # updates rows in place
        return logits, torch.stack(rows)


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

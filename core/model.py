"""CharRNN: embedding -> multi-layer LSTM/GRU/RNN (cuDNN on GPU) -> linear head. No I/O here.

Training runs whole sequences through ``nn.LSTM`` (one fused kernel per layer, no Python loop
over time). Generation uses :class:`FusedStepper`, a hand-fused single-step cell: per layer one
matrix product of ``[x, h]`` with the concatenated weights, and for layer 0 a table lookup of
the precomputed input projection, which avoids ``nn.LSTM``'s per-call overhead.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


@dataclass
class ModelArgs:
    vocab_size: int
    cell: str = "lstm"  # lstm | gru | rnn (tanh), as in char-rnn / min-char-rnn
    n_layer: int = 2  # stacked recurrent layers
    n_hidden: int = 512  # units per layer
    n_embd: int = 64  # character embedding size (char-rnn used one-hot; a small embedding is cheaper)
    dropout: float = 0.0  # between recurrent layers and before the head (Zaremba et al. 2014)
    # AWD-LSTM's two other dropouts (Merity et al. 2018), training only: DropConnect zeroes a share
    # of each hidden-to-hidden weight matrix once per batch (the same mask at every time step, so
    # the fused kernel still runs); embedding dropout removes whole characters' embeddings
    weight_drop: float = 0.0
    embed_drop: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


# the arguments the weights' shapes depend on: a resume cannot change them (the dropouts it can)
SHAPE = ("vocab_size", "cell", "n_layer", "n_hidden", "n_embd")

Hidden = tuple[torch.Tensor, torch.Tensor] | torch.Tensor  # (h, c) for LSTM, h otherwise


class CharRNN(nn.Module):
    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        if args.cell not in CELLS:
            raise ValueError(f"unknown cell {args.cell!r}; choose one of {sorted(CELLS)}")
        self.args = args
        self.embed = nn.Embedding(args.vocab_size, args.n_embd)
        self.rnn = CELLS[args.cell](args.n_embd, args.n_hidden, num_layers=args.n_layer, batch_first=True,
                                    dropout=args.dropout if args.n_layer > 1 else 0.0)
        self.drop = nn.Dropout(args.dropout)
        self.head = nn.Linear(args.n_hidden, args.vocab_size)

    def forward(self, idx: torch.Tensor, hidden: Hidden | None = None) -> tuple[torch.Tensor, Hidden]:
        """idx (B, T) -> logits (B, T, V), new hidden state."""
        x = self._embed(idx)  # (B, T, E)
        if x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            # oneDNN's bf16 LSTM needs bf16 input; autocast leaves the embedding output in fp32
            x = x.to(torch.get_autocast_dtype("cpu"))
        if self.training and self.args.weight_drop > 0:
            out, hidden = functional_call(self.rnn, self._dropped_weights(), (x, hidden))  # (B, T, H)
        else:
            out, hidden = self.rnn(x, hidden)  # (B, T, H)
        return self.head(self.drop(out)), hidden

    def _embed(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, T) -> (B, T, E); in training a character's whole embedding is dropped with
        probability embed_drop (the rest scaled up), the same for every place it occurs."""
        p = self.args.embed_drop
        if not self.training or p <= 0:
            return self.embed(idx)
        w = self.embed.weight  # (V, E)
        keep = w.new_empty(w.size(0), 1).bernoulli_(1 - p) / (1 - p)  # (V, 1)
        return F.embedding(idx, w * keep)

    def _dropped_weights(self) -> dict[str, torch.Tensor]:
        """The recurrent layer's parameters with DropConnect on each weight_hh_l*: gradients
        flow back to the real parameters through the mask."""
        p = self.args.weight_drop
        return {name: F.dropout(w, p, training=True) if name.startswith("weight_hh") else w
                for name, w in self.rnn.named_parameters()}

    def init_hidden(self, batch: int, device: torch.device | str = "cpu") -> Hidden:
        shape = (self.args.n_layer, batch, self.args.n_hidden)
        h = torch.zeros(shape, device=device)
        return (h, torch.zeros(shape, device=device)) if self.args.cell == "lstm" else h

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


def detach_hidden(hidden: Hidden) -> Hidden:
    if isinstance(hidden, tuple):
        return tuple(h.detach() for h in hidden)
    return hidden.detach()


def flops_per_char(args: ModelArgs, training: bool = True) -> float:
    """Matmul FLOPs per character: forward 2*G*H*(in+H) per layer + 2*H*V head, G gates
    (4 LSTM, 3 GRU, 1 RNN); training counts forward + backward as 3x forward."""
    gates = {"lstm": 4, "gru": 3, "rnn": 1}[args.cell]
    fwd = 0.0
    for layer in range(args.n_layer):
        n_in = args.n_embd if layer == 0 else args.n_hidden
        fwd += 2 * gates * args.n_hidden * (n_in + args.n_hidden)
    fwd += 2 * args.n_hidden * args.vocab_size
    return 3 * fwd if training else fwd


class FusedStepper:
    """One-character-at-a-time inference for N streams, for sampling and visualisation.

    Weights are rearranged once: layer 0's input projection becomes a (V, G*H) lookup table
    (embedding @ W_ih^T + biases); deeper layers use one matmul of [x, h] (B, 2H) with the
    stacked weights (2H, G*H). Gate order follows PyTorch (LSTM: i, f, g, o; GRU: r, z, n).

    ``device`` and ``dtype``: where and in what the matrix products run. With bf16 the weights
    and the matmul inputs are bf16 (half the bytes read per character, and native bf16 units
    where the chip has them); gates, cell state and logits stay fp32, so rounding does not build
    up along the sequence. The input table is built in fp32 and rounded once. With ``torch.qint8``
    (CPU only) the weights are int8, one scale per output column, prepacked for fbgemm, and each
    product quantizes its input on the fly (dynamic quantization): a quarter of fp32's bytes per
    character and int8 arithmetic, measured faster for big layers on CPUs without bf16 units.
    """

    def __init__(self, model: CharRNN, device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32) -> None:
        a = model.args
        self.args, self.cell = a, a.cell
        self.device, self.dtype = torch.device(device), dtype
        # state_dict tensors are detached, so nothing here can build an autograd graph
        w = {k: v.detach().float().to(self.device) for k, v in model.state_dict().items()}
        self.w_in0 = w["embed.weight"] @ w["rnn.weight_ih_l0"].t() + w["rnn.bias_ih_l0"]  # (V, G*H)
        self.w_hh0 = w["rnn.weight_hh_l0"].t().contiguous()  # (H, G*H)
        self.b_hh0 = w["rnn.bias_hh_l0"]
        self.layers = []
        for k in range(1, a.n_layer):
            w_ih, w_hh = w[f"rnn.weight_ih_l{k}"], w[f"rnn.weight_hh_l{k}"]
            b_ih, b_hh = w[f"rnn.bias_ih_l{k}"], w[f"rnn.bias_hh_l{k}"]
            if self.cell == "gru":  # GRU needs the hidden part separately (r gates only h's n-part)
                self.layers.append((w_ih.t().contiguous(), w_hh.t().contiguous(), b_ih, b_hh))
            else:
                self.layers.append((torch.cat([w_ih, w_hh], 1).t().contiguous(), b_ih + b_hh))
        self.w_head = w["head.weight"].t().contiguous()  # (H, V)
        self.b_head = w["head.bias"]
        self.H = a.n_hidden
        if dtype != torch.float32:  # matmul operands only; biases are added in fp32
            low = _int8_pack if dtype == torch.qint8 else (lambda t: t.to(dtype))
            self.w_hh0, self.w_head = low(self.w_hh0), low(self.w_head)
            self.layers = [tuple(low(t) if t.dim() == 2 else t for t in layer) for layer in self.layers]

    def init_state(self, n: int) -> list[torch.Tensor]:
        """Per layer h (and c for LSTM), each (N, H) fp32, flattened into one list."""
        per = 2 if self.cell == "lstm" else 1
        return [torch.zeros(n, self.H, device=self.device) for _ in range(per * self.args.n_layer)]

    def _mm(self, bias: torch.Tensor, x: torch.Tensor, w: Any) -> torch.Tensor:
        """bias + x @ w in fp32 out: (N, K) x (K, M); x rounded to the weights' dtype first."""
        if isinstance(w, tuple):  # (fp32, int8 prepacked): int8 only where it pays for its overhead
            if x.size(0) * w[0].numel() < INT8_MIN_MACS:
                return torch.addmm(bias, x, w[0])
            # reduce_range: 7-bit inputs, because AVX2's u8 x s8 multiply-add saturates at 16 bits
            return torch.ops.quantized.linear_dynamic(x, w[1], True).add_(bias)
        if w.dtype == torch.float32:
            return torch.addmm(bias, x, w)
        return (x.to(w.dtype) @ w).float().add_(bias)

    def step(self, ids: torch.Tensor, state: list[torch.Tensor]) -> torch.Tensor:
        """Feed ids (N,) and update ``state`` in place; returns logits (N, V)."""
        H, cell = self.H, self.cell
        per = 2 if cell == "lstm" else 1
        x = None
        for k in range(self.args.n_layer):
            h = state[per * k]
            if cell == "gru":
                if k == 0:
                    gi, gh = self.w_in0[ids], self._mm(self.b_hh0, h, self.w_hh0)
                else:
                    w_ih, w_hh, b_ih, b_hh = self.layers[k - 1]
                    gi, gh = self._mm(b_ih, x, w_ih), self._mm(b_hh, h, w_hh)
                r = torch.sigmoid(gi[:, :H] + gh[:, :H])
                z = torch.sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H])
                n = torch.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
                h = n + z * (h - n)
            else:
                if k == 0:
                    g = self._mm(self.w_in0[ids] + self.b_hh0, h, self.w_hh0)  # (N, G*H)
                else:
                    w, b = self.layers[k - 1]
                    g = self._mm(b, torch.cat([x, h], 1), w)
                if cell == "lstm":
                    c = state[per * k + 1]
                    i, f, gg, o = g.split(H, 1)
                    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(gg)
                    h = torch.sigmoid(o) * torch.tanh(c)
                    state[per * k + 1] = c
                else:
                    h = torch.tanh(g)
            state[per * k] = h
            x = h
        return self._mm(self.b_head, x, self.w_head)


def int8_available() -> bool:
    """Whether this torch has the x86 int8 kernels (fbgemm) the int8 stepper runs on."""
    engines = torch.backends.quantized.supported_engines
    return ("fbgemm" in engines or "x86" in engines) and hasattr(torch.ops.quantized, "linear_dynamic")


# An int8 product (fbgemm, dynamic quantization) pays a fixed cost per call over fp32's addmm
# (quantizing its input), so it pays only from about a million multiply-adds per call
# (evals/BENCHMARKS.md, "int8 sampling").
INT8_MIN_MACS = 1 << 20


def _int8_pack(w: torch.Tensor) -> tuple[torch.Tensor, Any]:
    """(K, M) fp32 -> (it, fbgemm's prepacked int8 weight of the linear map x @ w): the fp32 copy
    serves the calls too small for int8. One scale per output column: a gate whose weights are
    small keeps its own fine step instead of the largest one's."""
    wt = w.t().contiguous()  # (M, K): a linear layer's (out, in) layout
    scale = (wt.abs().amax(1) / 127).clamp_min(1e-12).double()
    zero = torch.zeros(len(scale), dtype=torch.long)
    with warnings.catch_warnings():  # torch 2.13 flags quantized tensors as deprecated (kept in 2.x)
        warnings.simplefilter("ignore")
        q = torch.quantize_per_channel(wt, scale, zero, 0, torch.qint8)
        return w, torch.ops.quantized.linear_prepack(q, None)


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-character loss in nats; logits (B, T, V), targets (B, T)."""
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1))

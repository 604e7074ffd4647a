"""A model's shape checked before anything is allocated: its declared arguments, the tensors its
weights must have, and the memory it needs to train or sample.

Everything here is arithmetic on the declared shape (no torch), so a hand-edited config or a
checkpoint that declares an absurd shape is refused with the figure and the limit, instead of a
process that asks the allocator for tens of gigabytes, hangs, or dies with a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gen.core.config import CHOICES, check_value
from gen.core.errors import GenError

GATES = {"lstm": 4, "gru": 3, "rnn": 1}  # weight blocks per layer of each recurrent cell
ARG_TYPES = {"vocab_size": int, "cell": str, "n_layer": int, "n_hidden": int, "n_embd": int, "dropout": float,
             "weight_drop": float, "embed_drop": float}
TRAINING_ONLY = ("dropout", "weight_drop", "embed_drop")  # may be absent (older checkpoints and exports)
MAX_VOCAB = 1 << 21  # every Unicode code point fits
FLOAT_BYTES = 4
# training holds weights, gradients and Adam's two moments; activations kept for backward per
# character and layer: the gate pre-activations, the cell and hidden states, their gradients
TRAIN_COPIES = 4
ACTIVATIONS_PER_UNIT = 16


def check_args(args: Any, where: str) -> dict[str, Any]:
    """The model arguments ``args`` (a dict, e.g. a checkpoint's) checked for keys, types and
    ranges; a GenError names ``where`` and the field."""
    if not isinstance(args, dict):
        raise GenError(f"{where}: model arguments are missing or not a table")
    unknown = sorted(set(args) - set(ARG_TYPES))
    missing = sorted(set(ARG_TYPES) - set(args) - set(TRAINING_ONLY))
    if unknown or missing:
        raise GenError(f"{where}: model arguments {'unknown ' + str(unknown) if unknown else ''}"
                       f"{' missing ' + str(missing) if missing else ''}; expected {sorted(ARG_TYPES)}")
    for key, value in args.items():
        want = ARG_TYPES[key]
        if isinstance(value, bool) or not isinstance(value, want if want is not float else int | float):
            raise GenError(f"{where}: {key} = {value!r} must be {want.__name__}")
    if args["cell"] not in CHOICES["cell"]:
        raise GenError(f"{where}: cell = {args['cell']!r}: choose one of {', '.join(CHOICES['cell'])}")
    if not 1 <= args["vocab_size"] <= MAX_VOCAB:
        raise GenError(f"{where}: vocab_size = {args['vocab_size']} is out of range: allowed 1 to {MAX_VOCAB}")
    for key in ("n_layer", "n_hidden", "n_embd", *TRAINING_ONLY):
        if key in args:
            check_value(key, args[key], where)
    return args


def weight_shapes(args: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """The state_dict names and shapes of a CharRNN with these arguments (core/model.py)."""
    v, e, h, g = args["vocab_size"], args["n_embd"], args["n_hidden"], GATES[args["cell"]] * args["n_hidden"]
    shapes: dict[str, tuple[int, ...]] = {"embed.weight": (v, e)}
    for k in range(args["n_layer"]):
        shapes.update({f"rnn.weight_ih_l{k}": (g, e if k == 0 else h), f"rnn.weight_hh_l{k}": (g, h),
                       f"rnn.bias_ih_l{k}": (g,), f"rnn.bias_hh_l{k}": (g,)})
    shapes.update({"head.weight": (v, h), "head.bias": (v,)})
    return shapes


def check_weights(args: dict[str, Any], state: Any, where: str) -> None:
    """The weights a checkpoint holds are the ones its arguments declare (names and shapes)."""
    if not isinstance(state, dict):
        raise GenError(f"{where}: the weights are missing")
    want = weight_shapes(args)
    have = {k: tuple(getattr(t, "shape", ())) for k, t in state.items()}
    if set(have) != set(want):
        extra, lost = sorted(set(have) - set(want))[:3], sorted(set(want) - set(have))[:3]
        raise GenError(f"{where}: the weights do not match the declared {args['n_layer']}x{args['n_hidden']} "
                       f"{args['cell']} (unexpected {extra}, missing {lost})")
    for name, shape in want.items():
        if have[name] != shape:
            raise GenError(f"{where}: {name} has shape {have[name]}, but the declared arguments "
                           f"({args['n_layer']}x{args['n_hidden']} {args['cell']}, embedding {args['n_embd']}, "
                           f"vocabulary {args['vocab_size']}) need {shape}")


def n_params(args: dict[str, Any]) -> int:
    total = 0
    for shape in weight_shapes(args).values():
        n = 1
        for d in shape:
            n *= d
        total += n
    return total


def training_bytes(args: dict[str, Any], batch: int, seq: int) -> int:
    """Memory one training step needs, roughly: weights, gradients and optimizer state, and the
    activations backpropagation keeps for ``batch`` x ``seq`` characters."""
    acts = batch * seq * (args["n_layer"] * args["n_hidden"] * ACTIVATIONS_PER_UNIT + 3 * args["vocab_size"]
                          + args["n_embd"])
    return FLOAT_BYTES * (TRAIN_COPIES * n_params(args) + acts)


def sampling_bytes(args: dict[str, Any]) -> int:
    """Memory to load and sample from a model: its weights, and a copy the stepper packs."""
    return 2 * FLOAT_BYTES * n_params(args)


def available(device: str = "cpu") -> int | None:
    """Bytes a new allocation can have on ``device`` (None where unknown)."""
    if device.startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            index = int(device.split(":")[1]) if ":" in device else torch.cuda.current_device()
            return int(torch.cuda.mem_get_info(index)[0])
        return None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def check_fits(need: int, device: str, what: str, fix: str) -> None:
    """Refuse ``what`` when it needs more memory than ``device`` has free, saying both figures."""
    free = available(device)
    if free is not None and need > free:
        raise GenError(f"{what} needs about {need / 1e9:.1f} GB; {free / 1e9:.1f} GB is available on "
                       f"{'the GPU' if device.startswith('cuda') else 'this machine'}. {fix}")

"""Checkpoints: versioned, written atomically, loaded without executing pickled code.

A checkpoint is one ``torch.save`` file of plain containers (dicts, lists, numbers, strings)
and tensors, read back with ``torch.load(weights_only=True)``, which refuses arbitrary
objects. It holds everything to sample (weights, model args, vocabulary) and everything to
resume exactly (optimizer, step, RNG states, carried hidden state, best validation loss).
"""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import torch

from gen.core import shapes
from gen.core.atomic import atomic_write
from gen.core.errors import GenError
from gen.core.model import SHAPE, CharRNN, ModelArgs
from gen.core.vocab import Vocab

FORMAT_NAME = "gen-checkpoint"
FORMAT_VERSION = 1


def rng_state() -> dict[str, Any]:
    version, internal, gauss = random.getstate()
    state = {"python": [version, list(internal), gauss], "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(path: str | Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` (plain containers + tensors) atomically, stamped with the format."""
    payload = {"format": FORMAT_NAME, "version": FORMAT_VERSION, **payload}
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write(path, lambda fh: fh.write(buf.getbuffer()))


def load(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint safely; a missing, truncated, corrupt or foreign file is a GenError."""
    path = Path(path)
    if not path.is_file():
        raise GenError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise GenError(f"checkpoint {path} cannot be read: it is truncated, corrupt or not a gen checkpoint "
                       f"({type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}). "
                       f"Use the run's other checkpoint (best.pt / last.pt) or train again.") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT_NAME:
        raise GenError(f"{path} is not a gen checkpoint (no '{FORMAT_NAME}' format stamp)")
    if ckpt.get("version", 0) > FORMAT_VERSION:
        raise GenError(f"checkpoint {path} has format version {ckpt['version']}, newer than this gen "
                       f"understands ({FORMAT_VERSION}): upgrade gen")
    return ckpt


def model_from_checkpoint(ckpt: dict[str, Any], where: str = "checkpoint") -> tuple[CharRNN, Vocab]:
    """Rebuild the model (eval mode, CPU) and its vocabulary from a loaded checkpoint. Its
    declared shape is checked against the ranges, its vocabulary and its own weights, and its
    memory against what is free, before anything is allocated (core/shapes.py)."""
    args = shapes.check_args(ckpt.get("model_args"), where)
    vocab = ckpt.get("vocab")
    if not isinstance(vocab, dict) or not isinstance(vocab.get("chars"), list) \
            or len(vocab["chars"]) != args["vocab_size"]:
        raise GenError(f"{where}: its vocabulary does not hold the {args['vocab_size']} characters its "
                       "model arguments declare")
    shapes.check_weights(args, ckpt.get("model"), where)
    shapes.check_fits(shapes.sampling_bytes(args), "cpu", f"loading {where}", "Use a machine with more memory")
    model = CharRNN(ModelArgs(**args))
    model.load_state_dict(ckpt["model"])
    model.eval()
    return model, Vocab.from_dict(vocab)


def check_resumable(ckpt: dict[str, Any], corpus: str, vocab: Vocab, model_args: ModelArgs) -> None:
    """Refuse a resume that cannot work, naming the cause."""
    if ckpt.get("corpus") != corpus:
        raise GenError(f"cannot resume: the checkpoint was trained on corpus {ckpt.get('corpus')!r}, "
                       f"not {corpus!r}. Resume with `gen train {ckpt.get('corpus')} --resume ...`.")
    if ckpt["vocab"]["chars"] != vocab.chars:
        raise GenError("cannot resume: the corpus vocabulary changed since the checkpoint was written "
                       f"({len(ckpt['vocab']['chars'])} -> {len(vocab)} characters); the corpus was probably "
                       "re-prepared from a different source. Re-prepare from the original source or train anew.")
    saved, now = ckpt["model_args"], model_args.to_dict()
    diff = [k for k in SHAPE if saved.get(k) != now[k]]
    if diff:
        detail = ", ".join(f"{k}: checkpoint {saved.get(k)!r}, asked {now[k]!r}" for k in diff)
        raise GenError(f"cannot resume with a different model shape ({detail}): the weights have the "
                       f"checkpoint's shape. Drop those options, or train a new run.")

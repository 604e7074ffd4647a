"""The exported model folder (`gen export`): its file names, and reading it back.

An export is a Hugging Face-style model folder: ``config.json`` (model arguments, the whole
vocabulary in order, separator, domain, corpus, training figures), ``model.safetensors`` (the
weights, in the layout of the model's ``state_dict``), ``model.onnx`` (one step), ``README.md``
(the model card) and ``web/`` (a page that samples in the browser). Reading one uses JSON and
safetensors only, never pickle; the declared shape is checked against the ranges and against
the tensor table in the safetensors header before any weight is read (core/shapes.py). A Hub
repository id (``hf:user/name``) is fetched through ``huggingface_hub``'s own download and cache.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from gen.core import shapes
from gen.core.errors import GenError

FORMAT_NAME = "gen-export"
FORMAT_VERSION = 1
CONFIG = "config.json"
WEIGHTS = "model.safetensors"
ONNX = "model.onnx"
CARD = "README.md"
WEB = "web"
HUB_PREFIX = "hf:"
HUB_FILES = [CONFIG, WEIGHTS, CARD]  # what sampling needs from a Hub repository (and the card)
REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}")
MAX_CONFIG_BYTES = 64 << 20  # the vocabulary of every Unicode code point fits many times over


def is_export(path: Path) -> bool:
    """Whether ``path`` is a folder that holds an export (a config.json and weights)."""
    return path.is_dir() and (path / CONFIG).is_file() and (path / WEIGHTS).exists()


def read_config(folder: Path) -> dict[str, Any]:
    """config.json, checked: the format stamp, the model arguments and the vocabulary."""
    path = folder / CONFIG
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise GenError(f"{path} is {path.stat().st_size:,} bytes: not a gen export's config")
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GenError(f"{path} cannot be read as JSON ({exc}); export the model again") from None
    if not isinstance(cfg, dict) or cfg.get("format") != FORMAT_NAME:
        raise GenError(f"{path} is not a gen export's config (no '{FORMAT_NAME}' format stamp)")
    if not isinstance(cfg.get("format_version"), int) or cfg["format_version"] > FORMAT_VERSION:
        raise GenError(f"{path} has export format {cfg.get('format_version')!r}, newer than this gen "
                       f"understands ({FORMAT_VERSION}): upgrade gen")
    shapes.check_args(cfg.get("model_args"), str(path))
    chars = cfg["vocab"].get("chars") if isinstance(cfg.get("vocab"), dict) else None
    # the count against the model is checked where every checkpoint's is (model_from_checkpoint)
    if not isinstance(chars, list) or not all(isinstance(c, str) and len(c) == 1 for c in chars):
        raise GenError(f"{path}: its vocabulary is not a list of single characters")
    for key in ("domain", "corpus", "separator"):
        if not isinstance(cfg.get(key), str):
            raise GenError(f"{path}: {key!r} is missing or not a string")
    return cfg


class _Declared:
    """A tensor as the safetensors header declares it: the shape, before anything is read."""

    def __init__(self, shape: list[int]) -> None:
        self.shape = tuple(shape)


def read_weights(folder: Path, args: dict[str, Any]) -> dict[str, Any]:
    """model.safetensors as a state_dict, after its header's tensor table matched ``args``."""
    from safetensors import SafetensorError, safe_open

    path = folder / WEIGHTS
    try:
        with safe_open(str(path), framework="pt") as fh:
            declared = {k: _Declared(fh.get_slice(k).get_shape()) for k in fh.keys()}
            shapes.check_weights(args, declared, str(path))
            state = {k: fh.get_tensor(k) for k in declared}
    except (SafetensorError, OSError, ValueError) as exc:
        raise GenError(f"{path} cannot be read: its header or data is damaged ({str(exc)[:160]}); "
                       "export the model again") from None
    bad = [k for k, t in state.items() if not t.is_floating_point()]
    if bad:
        raise GenError(f"{path}: {bad[0]} is {state[bad[0]].dtype}, not floating point")
    return {k: t.float() for k, t in state.items()}


def read_export(folder: Path) -> dict[str, Any]:
    """An export folder as the checkpoint dict sampling takes (core/checkpoint.py's keys)."""
    cfg = read_config(folder)
    shapes.check_fits(shapes.sampling_bytes(cfg["model_args"]), "cpu", f"loading {folder}",
                      "Use a machine with more memory")
    state = read_weights(folder, cfg["model_args"])
    training = cfg.get("training") if isinstance(cfg.get("training"), dict) else {}
    return {"model_args": cfg["model_args"], "model": state, "vocab": cfg["vocab"], "separator": cfg["separator"],
            "domain": cfg["domain"], "corpus": cfg["corpus"], "step": training.get("step"),
            "best_val": training.get("best_val_loss_nats"), "export": cfg}


def hub_folder(target: str) -> Path:
    """``hf:user/name`` -> the local snapshot folder, through huggingface_hub's download and cache
    (offline, or with HF_HUB_OFFLINE=1: the cache only)."""
    repo = target[len(HUB_PREFIX):]
    if not REPO_ID.fullmatch(repo) or ".." in repo:
        raise GenError(f"{target!r}: a Hub model is hf:OWNER/NAME (letters, digits, '-', '_', '.')")
    try:
        import huggingface_hub
        from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError
    except ImportError:
        raise GenError("loading from the Hugging Face Hub needs huggingface_hub: "
                       "pip install 'gen-charrnn[hub]'") from None
    try:
        return Path(huggingface_hub.snapshot_download(repo, allow_patterns=HUB_FILES))
    except LocalEntryNotFoundError:
        raise GenError(f"{repo} is not in the local Hugging Face cache ({os.environ.get('HF_HUB_CACHE') or 'default'}) "
                       "and the Hub cannot be reached (offline, or HF_HUB_OFFLINE is set): "
                       "connect, or download the folder elsewhere and pass its path") from None
    except RepositoryNotFoundError:
        raise GenError(f"{repo} was not found on the Hugging Face Hub (or it is private: `hf auth login`)") from None
    except Exception as exc:  # network errors of every kind: one line, not a traceback
        raise GenError(f"downloading {repo} from the Hugging Face Hub failed: "
                       f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}") from None

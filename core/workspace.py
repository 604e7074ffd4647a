"""Where prepared corpora and training runs live.

One workspace directory holds ``corpora/<name>/`` (train.bin, val.bin, vocab.json, meta.json)
and ``runs/<corpus>/<run>/`` (checkpoints, metrics.jsonl, loss.png, samples). Default:
``$XDG_DATA_HOME/gen`` (usually ``~/.local/share/gen``); ``GEN_HOME`` or ``--workspace``
override it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from gen.core.errors import GenError

ENV_HOME = "GEN_HOME"


def workspace_dir(override: str | os.PathLike | None = None) -> Path:
    if override:
        return Path(override).expanduser()
    if os.environ.get(ENV_HOME):
        return Path(os.environ[ENV_HOME]).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(xdg) / "gen"


def corpus_dir(ws: Path, corpus: str) -> Path:
    return ws / "corpora" / corpus


def is_prepared(ws: Path, corpus: str) -> bool:
    d = corpus_dir(ws, corpus)
    return (d / "meta.json").is_file() and (d / "train.bin").is_file()


def runs_dir(ws: Path, corpus: str) -> Path:
    return ws / "runs" / corpus


def new_run_dir(ws: Path, corpus: str, name: str | None = None) -> Path:
    """A fresh run folder, named by time unless a name is given."""
    base = runs_dir(ws, corpus)
    name = name or time.strftime("%Y%m%d-%H%M%S")
    path, n = base / name, 1
    while path.exists():
        n += 1
        path = base / f"{name}-{n}"
    path.mkdir(parents=True)
    return path


def latest_checkpoint(ws: Path, corpus: str) -> Path:
    """The best (else last) checkpoint of the most recently modified run of a corpus."""
    base = runs_dir(ws, corpus)
    runs = sorted((p for p in base.glob("*") if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True)
    for run in runs:
        for name in ("best.pt", "last.pt"):
            if (run / name).is_file():
                return run / name
    raise GenError(f"no trained checkpoint for corpus {corpus!r} under {base}. "
                   f"Train one first: gen train {corpus}  (or pass a checkpoint path)")

"""Where prepared corpora and training runs live.

One workspace directory holds ``corpora/<name>/`` (:class:`CorpusDir` names its files),
``runs/<corpus>/<run>/`` (:class:`RunDir` names its files), ``downloads/<corpus>/``,
``manifests/`` (user corpora), ``evals/``, ``exported/<name>/`` (what is sampled or drawn from
an exported model, whose own folder may be read-only) and ``cache/`` (measurements such as the precision
probe's, safe to delete). Default:
``$XDG_DATA_HOME/gen`` (usually ``~/.local/share/gen``); ``GEN_HOME`` or ``--workspace``
override it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gen.core.atomic import atomic_write_text
from gen.core.errors import GenError
from gen.core.locks import FolderLock, SwapLock

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def check_name(name: str, what: str) -> str:
    """A run or corpus name is a name, not a path: refuse separators, '..', absolute paths."""
    if not _NAME.fullmatch(name or "") or ".." in name:
        raise GenError(f"{what} {name!r} is not a valid name: use 1-100 letters, digits, '.', '_' or '-', "
                       f"starting with a letter or digit (a name, not a path: no '/', no '..')")
    return name

ENV_HOME = "GEN_HOME"


def workspace_dir(override: str | os.PathLike | None = None) -> Path:
    if override:
        return Path(override).expanduser()
    if os.environ.get(ENV_HOME):
        return Path(os.environ[ENV_HOME]).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(xdg) / "gen"


def corpus_dir(ws: Path, corpus: str) -> Path:
    return ws / "corpora" / check_name(corpus, "corpus name")


def downloads_dir(ws: Path, corpus: str) -> Path:
    """Where a corpus's download is fetched and kept."""
    return ws / "downloads" / check_name(corpus, "corpus name")


def exported_outputs(ws: Path, name: str) -> RunDir:
    """Where samples and pages of an exported model go (its folder may be a read-only Hub cache)."""
    return RunDir(ws / "exported" / re.sub(r"[^\w.-]+", "--", name).strip("-.") or "model")


def evals_dir(ws: Path, what: str) -> Path:
    """A fresh folder name for an eval's output: ``evals/WHAT-TIMESTAMP``."""
    return ws / "evals" / f"{what}-{timestamp()}"


def timestamp() -> str:
    """The time as gen names folders and files by it (sortable, no separators a shell minds)."""
    return time.strftime("%Y%m%d-%H%M%S")


def remove_tree(path: Path) -> int:
    """Delete a folder (never following links out of it); returns the bytes it held."""
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())
    shutil.rmtree(path, ignore_errors=True)
    return size


def runs_dir(ws: Path, corpus: str) -> Path:
    return ws / "runs" / corpus


def precision_cache(ws: Path) -> Path:
    """The precision probe's answers, per machine, torch version and model shape."""
    return ws / "cache" / "precision.json"


def speed_cache(ws: Path) -> Path:
    """Training chars/s of the recipe's candidate shapes (core/recipe.py), per machine."""
    return ws / "cache" / "speeds.json"


class _Folder:
    """A folder that names its own files: usable wherever a path is."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)


class CorpusDir(_Folder):
    """One prepared corpus's folder: the only place that names its files, as RunDir does for runs.

    ``train.bin``/``val.bin`` (ids), ``vocab.json``, ``meta.json``, and caches derived from them
    (a domain's statistics, the copy detector's index, the n-gram baselines), each named with a
    digest of the text it was built from, so a re-prepared corpus never meets a stale cache."""

    SPLITS = ("train", "val")

    @classmethod
    def of(cls, ws: Path, corpus: str) -> CorpusDir:
        return cls(corpus_dir(ws, corpus))

    # ---- the files of a corpus -------------------------------------------------------------
    def ids(self, split: str) -> Path:  # "train" | "val": uint16/uint32 character ids
        return self.path / f"{split}.bin"

    def text(self, split: str) -> Path:  # prepare's scratch text of a split, in its work folder
        return self.path / f"{split}.txt"

    vocab = property(lambda self: self.path / "vocab.json")
    meta = property(lambda self: self.path / "meta.json")
    digested = property(lambda self: (self.ids("train"), self.ids("val"), self.vocab))  # what caches depend on

    def stats(self, domain: str, version: int, digest: str) -> Path:
        """A domain's cached corpus statistics (core/statscache.py)."""
        return self.path / f"stats-{domain}-v{version}.{digest}.json"

    def stale_stats(self, domain: str) -> list[Path]:
        return sorted(self.path.glob(f"stats-{domain}-*.json"))

    def index(self, name: str, digest: str) -> Path:
        """An array cached beside the corpus (``NAME.DIGEST.npy``: the copy detector's index)."""
        return self.path / f"{name}.{digest}.npy"

    def stale_indexes(self, name: str) -> list[Path]:
        return sorted(self.path.glob(f"{name}.*.npy"))

    def read_index(self, name: str, digest: str, mmap: bool = False) -> Any:
        """A cached array (None when missing or damaged); ``mmap`` maps it instead of reading it:
        a lookup that touches a few pages reads no more than those."""
        import numpy as np

        try:
            return np.load(self.index(name, digest), allow_pickle=False, mmap_mode="r" if mmap else None)
        except (OSError, ValueError):
            return None

    def write_index(self, name: str, digest: str, arr: Any) -> None:
        """Cache ``arr`` as ``name`` for ``digest``, replacing another text's (atomically; a
        read-only corpus folder just means building it again next time)."""
        import numpy as np

        from gen.core.atomic import atomic_write

        for old in self.stale_indexes(name):
            old.unlink(missing_ok=True)
        try:
            atomic_write(self.index(name, digest), lambda fh: np.save(fh, np.asarray(arr), allow_pickle=False))
        except OSError:
            pass

    def baseline(self, order: int, digest: str) -> Path:
        """The n-gram baselines of orders 1..``order`` (evals/baselines)."""
        return self.path / f"ngram-k{order}.{digest}.json"

    def stale_baselines(self) -> list[Path]:
        return sorted(self.path.glob("ngram-k*.json"))

    # ---- state ------------------------------------------------------------------------------
    def is_prepared(self) -> bool:
        """Whether the folder holds a prepared corpus (a prepare swapping one in is waited for,
        never seen half-done)."""
        if not self.path.exists() and not self._swap_file.exists():
            return False  # never prepared (a swap in progress has its lock file): no lock file made
        with self.swap_lock(shared=True):
            return self.meta.is_file() and self.ids("train").is_file()

    def read_meta(self) -> dict[str, Any]:
        """meta.json ({} when missing or unreadable)."""
        try:
            return json.loads(self.meta.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return {}

    def lock(self) -> FolderLock:
        """Held while the corpus is prepared (beside the folder: the folder itself is swapped)."""
        return FolderLock(self.path.parent / f".{self.path.name}.lock", f"corpus {self.path.name!r} (being prepared)")

    def swap_lock(self, shared: bool) -> SwapLock:
        """Held shared while a reader takes a generation of the corpus, exclusive while prepare
        swaps a new one in (both brief), beside the folder."""
        return SwapLock(self._swap_file, shared)

    _swap_file = property(lambda self: self.path.parent / f".{self.path.name}.swap.lock")

    @property
    def work_prefix(self) -> str:
        """How the temporary folder that a prepare writes before swapping it in begins."""
        return f".{self.path.name}.prepare-"

    def replaced(self) -> Path:
        """Where the previous data waits while a prepare swaps the new data in."""
        return self.path.with_name(f".{self.path.name}.old-{os.getpid()}")

    def orphans(self) -> list[Path]:
        """Temporary folders that an interrupted prepare left beside this one (:meth:`work`
        folders, :meth:`replaced` data)."""
        pattern = re.compile(rf"\.{re.escape(self.path.name)}\.(prepare-[^/]+|old-\d+)")
        return sorted(p for p in self.path.parent.glob(f".{self.path.name}.*") if pattern.fullmatch(p.name))


class RunDir(_Folder):
    """One training run's folder: the only place that names its files.

    Everything that reads or writes a run (training, sampling, the run page, viz, neurons)
    asks this class for the path, so a file is renamed in one line.
    """

    @classmethod
    def of(cls, checkpoint: str | os.PathLike) -> RunDir:
        """The run a checkpoint file belongs to."""
        return cls(Path(checkpoint).parent)

    # ---- the files of a run ------------------------------------------------------------
    def checkpoint(self, name: str) -> Path:  # "best" | "last"
        return self.path / f"{name}.pt"

    best = property(lambda self: self.checkpoint("best"))
    last = property(lambda self: self.checkpoint("last"))
    config = property(lambda self: self.path / "config.json")  # the resolved training config
    metrics = property(lambda self: self.path / "metrics.jsonl")  # one record per log step / validation
    loss_plot = property(lambda self: self.path / "loss.png")
    structure = property(lambda self: self.path / "structure.png")  # gen score --by-structure
    evolution = property(lambda self: self.path / "samples-during-training.jsonl")  # --sample-every
    report = property(lambda self: self.path / "report.html")  # gen report
    viz = property(lambda self: self.path / "viz.html")  # gen viz
    neurons = property(lambda self: self.path / "neurons")  # gen neurons
    samples = property(lambda self: self.path / "samples")  # gen sample output

    def lock(self) -> FolderLock:
        """Held for the life of a training process in this folder."""
        return FolderLock(self.path / ".lock", f"run folder {self.path}")

    def remove_orphans(self) -> list[str]:
        """Temporary files of atomic writes that a killed process left here; removed (hold the lock)."""
        gone = []
        for p in sorted(self.path.glob(".*.tmp")):
            if p.is_file() and not p.is_symlink():
                p.unlink()
                gone.append(p.name)
        return gone

    def trim_after(self, step: int) -> None:
        """Drop log records a killed process wrote after ``step`` (the step a resume restarts
        from), so a resumed run logs each step and validation once: metrics after ``step``,
        evolution samples from ``step`` on (the resumed run writes that one again)."""
        for path, keep in ((self.metrics, lambda e: e.get("step", 0) <= step),
                           (self.evolution, lambda e: e.get("step", 0) < step)):
            if path.is_file():
                records = list(_read_jsonl(path))
                kept = [e for e in records if keep(e)]
                if len(kept) != len(records):
                    atomic_write_text(path, "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in kept))

    def is_run(self) -> bool:
        return any(p.is_file() for p in (self.config, self.metrics, self.best, self.last))

    def model_checkpoint(self) -> Path:
        """best.pt, else last.pt (the file to sample from)."""
        return next((p for p in (self.best, self.last) if p.is_file()), self.best)

    # ---- readers and writers of its records ------------------------------------------------
    def write_config(self, config: dict[str, Any]) -> None:
        atomic_write_text(self.config, json.dumps(config, indent=2))

    def read_config(self) -> dict[str, Any]:
        try:
            return json.loads(self.config.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except json.JSONDecodeError:
            return {"config.json": "unreadable"}

    def read_metrics(self) -> list[dict[str, Any]]:
        return list(_read_jsonl(self.metrics))

    def add_evolution_sample(self, step: int, loss: float | None, text: str) -> None:
        """Append one sample written during training (the blog's evolution of samples)."""
        with open(self.evolution, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"step": step, "train_loss": loss, "text": text}, ensure_ascii=False) + "\n")

    def read_evolution(self) -> list[dict[str, Any]]:
        return list(_read_jsonl(self.evolution))


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    if not path.is_file():
        return
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            yield json.loads(line)
        except json.JSONDecodeError:  # a run killed mid-write leaves a torn last line
            continue


def new_run_dir(ws: Path, corpus: str, name: str | None = None) -> RunDir:
    """A fresh run folder, named by time unless a name is given."""
    base = runs_dir(ws, corpus)
    name = check_name(name, "run name") if name is not None else timestamp()
    base.mkdir(parents=True, exist_ok=True)
    path, n = base / name, 1
    while True:  # mkdir is the claim: two processes asking for one name get two folders
        try:
            path.mkdir()
            return RunDir(path)
        except FileExistsError:
            n += 1
            path = base / f"{name}-{n}"


def trained_corpora(ws: Path) -> list[str]:
    """The corpora that have a run with a checkpoint, by name (what `gen serve` serves by default)."""
    root = ws / "runs"
    if not root.is_dir():
        return []
    return sorted(c.name for c in root.iterdir() if c.is_dir()
                  and any(RunDir(r).model_checkpoint().is_file() for r in c.iterdir() if r.is_dir()))


def latest_checkpoint(ws: Path, corpus: str) -> Path:
    """The best (else last) checkpoint of the most recently modified run of a corpus."""
    base = runs_dir(ws, corpus)
    runs = sorted((p for p in base.glob("*") if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True)
    for run in map(RunDir, runs):
        path = run.model_checkpoint()
        if path.is_file():
            return path
    raise GenError(f"no trained checkpoint for corpus {corpus!r} under {base}. "
                   f"Train one first: gen train {corpus}  (or pass a checkpoint path)")

"""The steps the commands run, as plain functions: resolve names, prepare, train, sample.

The CLI parses options and prints; everything with logic lives here or below, so the same
steps are usable from Python (tests, notebooks, `gen demo`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gen.core import checkpoint as ckpt_io
from gen.core import workspace as ws_mod
from gen.core.config import TrainConfig
from gen.core.data import CorpusData, prepare
from gen.core.domain import CorpusSpec, Domain, EvalContext
from gen.core.errors import GenError
from gen.core.registry import default_source, get_domain, resolve_corpus
from gen.core.sample import SampleOptions, SampleStats, make_trackers, sample


def prepare_corpus(name: str, src: str | None, ws: Path, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Prepare a corpus into the workspace; ``options`` are the domain's prepare options."""
    spec = resolve_corpus(name)
    domain = get_domain(spec.domain)
    src = src or default_source(spec)
    if src is None:
        raise GenError(f"corpus {spec.name!r} needs --src PATH (no default source found here; "
                       f"its manifest looks for: {', '.join(spec.sources) or 'nothing'})")
    return prepare(spec, domain, str(src), ws_mod.corpus_dir(ws, spec.name), options or {})


def load_corpus(name: str, ws: Path) -> tuple[CorpusSpec, CorpusData]:
    spec = resolve_corpus(name)
    if not ws_mod.is_prepared(ws, spec.name):
        hint = "" if spec.sources else " --src PATH"
        raise GenError(f"corpus {spec.name!r} is not prepared in workspace {ws}. "
                       f"Run: gen prepare {spec.name}{hint}")
    return spec, CorpusData(ws_mod.corpus_dir(ws, spec.name))


def resolve_config(spec: CorpusSpec, overrides: dict[str, Any], gpu: bool | None = None) -> TrainConfig:
    """TrainConfig defaults <- domain defaults <- manifest defaults <- overrides, for cpu or gpu."""
    kind = "gpu" if (torch.cuda.is_available() if gpu is None else gpu) else "cpu"
    if overrides.get("device", "auto") == "cpu":
        kind = "cpu"
    domain = get_domain(spec.domain)
    cfg = TrainConfig()
    cfg.update(domain.defaults.get(kind, {}), f"domain {domain.name} defaults")
    cfg.update(spec.defaults.get(kind, {}), f"corpus manifest {spec.origin}")
    cfg.update(overrides, "command line")
    return cfg


@dataclass
class Loaded:
    """A checkpoint loaded for sampling: the model (eval mode, CPU), its vocabulary and domain."""

    model: Any
    vocab: Any
    ckpt: dict[str, Any]
    path: Path

    @property
    def run(self) -> ws_mod.RunDir:
        return ws_mod.RunDir.of(self.path)

    @property
    def separator(self) -> str:
        """The training corpus's document separator (checkpoints before it was saved: newline)."""
        return self.ckpt.get("separator", "\n")

    @property
    def domain(self) -> Domain:
        return get_domain(self.ckpt["domain"])


def load_model(target: str, ws: Path) -> Loaded:
    """A checkpoint path, a run folder, or a corpus/domain name meaning its latest run's best checkpoint."""
    path = Path(target)
    if not (path.suffix == ".pt" or path.is_file() or path.is_dir()):
        spec = resolve_corpus(target)
        path = ws_mod.latest_checkpoint(ws, spec.name)
    elif path.is_dir():
        path = ws_mod.RunDir(path).model_checkpoint()
    return load_checkpoint(path)


def load_checkpoint(path: str | Path) -> Loaded:
    """One checkpoint file, ready to sample from."""
    ckpt = ckpt_io.load(path)
    model, vocab = ckpt_io.model_from_checkpoint(ckpt)
    return Loaded(model, vocab, ckpt, Path(path))


def sample_texts(loaded: Loaded, opts: SampleOptions, guided: bool = False,
                 constraints: list[str] | None = None, on_char=None,
                 stats: Any = None) -> tuple[list[str], SampleStats]:
    """Sample from a loaded checkpoint with its domain's rules (the one sampling function)."""
    domain = loaded.domain
    trackers = make_trackers(domain, opts.n, constraints, stats) if guided else None
    return sample(loaded.model, loaded.vocab, opts, separator=loaded.separator, domain=domain,
                  trackers=trackers, on_char=on_char)


def eval_context(domain: Domain, against: str | None, ws: Path, options: dict[str, Any]) -> EvalContext:
    data = None
    if against:
        spec, data = load_corpus(against, ws)
        if spec.domain != domain.name:
            raise GenError(f"--against {against!r} is a {spec.domain!r} corpus, not {domain.name!r}")
    return EvalContext(domain, data, options)

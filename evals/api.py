"""gen from Python: prepare, train, load, sample and score, as the commands do.

The commands are thin layers over the same functions (``gen.core.pipeline`` for prepare, train
and sample; ``gen.evals.harness`` for scoring), so the two cannot drift::

    from gen.evals import api

    api.prepare("mynames", src="names.txt", domain="names")
    result = api.train("mynames", {"max_steps": 300}, on_step=lambda step, loss: step >= 200)
    model = api.load("mynames")                    # its latest run's best checkpoint
    names = model.sample(n=10, temperature=0.8, seed=1, novel_only=True)
    report = api.score("names", names, against="mynames")
    print(report.summary()["metrics"]["novel"]["value"])
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gen.core import pipeline
from gen.core import workspace as ws_mod
from gen.core.config import TrainConfig
from gen.core.registry import get_domain
from gen.evals.harness import EvalReport, evaluate, write_report

if TYPE_CHECKING:  # torch loads when training starts, not when `gen eval` scores a file
    from gen.core.train import TrainResult

__all__ = ["Model", "TrainConfig", "TrainResult", "load", "prepare", "score", "train", "workspace"]


def __getattr__(name: str) -> Any:
    """``TrainResult`` on first use: importing this module (every `gen` command does) loads no torch."""
    if name == "TrainResult":
        from gen.core.train import TrainResult

        return TrainResult
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def workspace(path: str | Path | None = None) -> Path:
    """The workspace a call uses: ``path``, else $GEN_HOME, else ~/.local/share/gen."""
    return ws_mod.workspace_dir(path)


def prepare(corpus: str, src: str | Path | None = None, domain: str | None = None,
            workspace: str | Path | None = None, log: Callable[[str], None] | None = None,
            **options: Any) -> dict[str, Any]:
    """`gen prepare CORPUS --src SRC [--domain D] [--option ...]`: a built-in corpus, or your own
    text under the name CORPUS (domain given or inferred); returns the corpus's meta.json."""
    return pipeline.prepare_corpus(corpus, str(src) if src else None, ws_mod.workspace_dir(workspace), options,
                                   domain, log or (lambda _m: None))


def train(corpus: str, config: TrainConfig | dict[str, Any] | None = None, workspace: str | Path | None = None,
          run_name: str | None = None, resume: str | Path | None = None,
          on_step: Callable[[int, float], bool | None] | None = None,
          log: Callable[[str], None] | None = None, progress: bool = False) -> TrainResult:
    """`gen train CORPUS`: ``config`` is a full TrainConfig, or a dict of options over the
    domain's defaults; ``on_step(step, loss)`` runs after every step and stops the run (saved,
    resumable) by returning True. Returns the result; ``result.run_dir`` is the run folder."""
    ws = ws_mod.workspace_dir(workspace)
    overrides = config.to_dict() if isinstance(config, TrainConfig) else dict(config or {})
    plan = pipeline.plan_training(corpus, ws, overrides, resume=resume)
    return pipeline.run_training(plan, ws, run_name, time.monotonic(), log=log or (lambda _m: None),
                                 progress=progress, on_step=on_step)


class Model:
    """A trained checkpoint, ready to sample from (see :func:`load`)."""

    def __init__(self, loaded: pipeline.Loaded, ws: Path) -> None:
        self.loaded, self.workspace = loaded, ws

    @property
    def path(self) -> Path:
        return self.loaded.path

    @property
    def domain(self) -> str:
        return self.loaded.domain.name

    def sample(self, n: int = 1, length: int | None = None, temperature: float = 0.8, top_k: int = 0,
               top_p: float = 1.0, prime: str = "", stop: list[str] | None = None, seed: int | None = None,
               guided: bool = False, constraints: list[str] | None = None, novel_only: bool = False,
               on_char: Callable[[int, str], None] | None = None) -> list[str]:
        """`gen sample` with the same options; returns the samples."""
        texts, _ = self.loaded.generate(self.workspace, n, length, temperature, top_k, top_p, prime, stop, seed,
                                        guided, constraints, novel_only, on_char)
        return texts


def load(target: str | Path, workspace: str | Path | None = None) -> Model:
    """A checkpoint file, a run folder, or a corpus name (its latest run's best checkpoint)."""
    ws = ws_mod.workspace_dir(workspace)
    return Model(pipeline.load_model(str(target), ws), ws)


def score(domain: str, texts: list[str], against: str | None = None, workspace: str | Path | None = None,
          baseline: bool = True, out: str | Path | None = None, sink: Callable[[list[dict]], None] | None = None,
          **options: Any) -> EvalReport:
    """`gen eval DOMAIN`: score ``texts`` with the domain's checks (and ``against`` a prepared
    corpus: novelty, copying, and real/corrupted held-out text beside them). ``options`` are the
    domain's eval options (``gcc=True``, ``compile=True`` ...); ``out`` also writes
    records.jsonl and summary.json there; ``sink`` gets the records as they are scored."""
    dom = get_domain(domain)
    values = {o.name: o.default for o in dom.eval_options}
    unknown = set(options) - set(values)
    if unknown:
        from gen.core.errors import GenError

        raise GenError(f"unknown eval option(s) {sorted(unknown)} for domain {domain!r}; "
                       f"its options: {sorted(values) or 'none'}")
    ctx = pipeline.eval_context(dom, against, ws_mod.workspace_dir(workspace), {**values, **options})
    report = evaluate(dom, list(texts), ctx, baseline=baseline, sink=sink)
    if out is not None:
        write_report(report, Path(out))
    return report

"""gen from Python: prepare, train, load, sample and score, as the commands do.

The commands are thin layers over the same functions (core/corpora.py, core/plan.py and
core/models.py for prepare, train and sample; evals/harness.py for scoring), so the two cannot
drift::

    import gen

    gen.prepare("mynames", src="names.txt", domain="names")
    result = gen.train("mynames", {"max_steps": 300}, on_step=lambda step, loss: step >= 200)
    model = gen.load("mynames")                    # its latest run's best checkpoint
    names = model.sample(n=10, seed=1, novel_only=True)
    report = gen.score("names", names, against="mynames")
    print(report.summary()["metrics"]["novel"]["value"])

Importing ``gen`` loads nothing heavy (every ``gen.core`` module import runs this file first):
torch loads when a model trains or samples, the judge when something is scored.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gen.core.config import TrainConfig
    from gen.core.models import Loaded
    from gen.core.train import TrainResult
    from gen.evals.harness import EvalReport

__all__ = ["Model", "SampleOptions", "TrainConfig", "TrainResult", "load", "prepare", "score", "train", "workspace"]


def __getattr__(name: str) -> Any:
    """``TrainConfig``, ``SampleOptions`` and ``TrainResult`` on first use, so ``import gen``
    stays light."""
    if name in ("TrainConfig", "SampleOptions"):
        from gen.core import config

        return getattr(config, name)
    if name == "TrainResult":
        from gen.core.train import TrainResult

        return TrainResult
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def workspace(path: str | Path | None = None) -> Path:
    """The workspace a call uses: ``path``, else $GEN_HOME, else ~/.local/share/gen."""
    from gen.core.workspace import workspace_dir

    return workspace_dir(path)


def prepare(corpus: str, src: str | Path | None = None, domain: str | None = None,
            workspace: str | Path | None = None, log: Callable[[str], None] | None = None,
            **options: Any) -> dict[str, Any]:
    """`gen prepare CORPUS --src SRC [--domain D] [--option ...]`: a built-in corpus, or your own
    text under the name CORPUS (domain given or inferred); returns the corpus's meta.json."""
    from gen.core.corpora import prepare_corpus

    return prepare_corpus(corpus, str(src) if src else None, _ws(workspace), options, domain, log or (lambda _m: None))


def train(corpus: str, config: TrainConfig | dict[str, Any] | None = None, workspace: str | Path | None = None,
          run_name: str | None = None, resume: str | Path | None = None,
          on_step: Callable[[int, float], bool | None] | None = None,
          log: Callable[[str], None] | None = None, progress: bool = False) -> TrainResult:
    """`gen train CORPUS`: ``config`` is a full TrainConfig, or a dict of options over the
    domain's defaults; ``on_step(step, loss)`` runs after every step and stops the run (saved,
    resumable) by returning True. Returns the result; ``result.run_dir`` is the run folder."""
    from gen.core.config import TrainConfig
    from gen.core.plan import plan_training, run_training

    ws = _ws(workspace)
    overrides = config.to_dict() if isinstance(config, TrainConfig) else dict(config or {})
    plan = plan_training(corpus, ws, overrides, resume=resume)
    return run_training(plan, ws, run_name, time.monotonic(), log=log or (lambda _m: None), progress=progress,
                        on_step=on_step)


class Model:
    """A trained checkpoint, ready to sample from (see :func:`load`)."""

    def __init__(self, loaded: Loaded, ws: Path) -> None:
        self.loaded, self.workspace = loaded, ws

    @property
    def path(self) -> Path:
        return self.loaded.path

    @property
    def domain(self) -> str:
        return self.loaded.domain.name

    def sample(self, on_char: Callable[[int, str], None] | None = None, **options: Any) -> list[str]:
        """`gen sample` with the same options (:class:`gen.core.config.SampleOptions`: n, length,
        temperature, top_k, top_p, prime, stop, seed, guided, constraints, novel_only ...);
        returns the samples."""
        from gen.core.config import SampleOptions

        texts, _ = self.loaded.generate(self.workspace, SampleOptions(**options), on_char)
        return texts


def _ws(path: str | Path | None) -> Path:
    from gen.core.workspace import workspace_dir

    return workspace_dir(path)


def load(target: str | Path, workspace: str | Path | None = None) -> Model:
    """A checkpoint file, a run folder, or a corpus name (its latest run's best checkpoint)."""
    from gen.core.models import load_model

    ws = _ws(workspace)
    return Model(load_model(str(target), ws), ws)


def score(domain: str, texts: list[str], against: str | None = None, workspace: str | Path | None = None,
          baseline: bool = True, out: str | Path | None = None, sink: Callable[[list[dict]], None] | None = None,
          **options: Any) -> EvalReport:
    """`gen eval DOMAIN`: score ``texts`` with the domain's checks (and ``against`` a prepared
    corpus: novelty, copying, and real/corrupted held-out text beside them). ``options`` are the
    domain's eval options (``gcc=True``, ``compile=True`` ...); ``out`` also writes
    records.jsonl and summary.json there; ``sink`` gets the records as they are scored."""
    from gen.evals.harness import score_texts
    from gen.evals.records import write_report

    report = score_texts(domain, list(texts), against, _ws(workspace), baseline, sink, options)
    if out is not None:
        write_report(report, Path(out))
    return report

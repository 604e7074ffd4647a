"""The steps the CLI runs, as plain functions: resolve names, prepare, train, sample, evaluate.

The CLI parses options and prints; everything with logic lives here or below, so the same
steps are usable from Python (tests, notebooks, `gen demo`).
"""

from __future__ import annotations

import json
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
from gen.core.sample import SampleOptions, SampleStats, generate


def parse_prepare_options(domain: Domain, args: list[str]) -> dict[str, Any]:
    """Domain flags given after the known options, e.g. ['--text-only', '--max-file-kb', '512']."""
    by_flag = {o.flag: o for o in domain.prepare_options}
    out: dict[str, Any] = {}
    it = iter(args)
    for arg in it:
        flag, _, inline = arg.partition("=")
        opt = by_flag.get(flag)
        if opt is None:
            valid = ", ".join(by_flag) or "(none)"
            raise GenError(f"unknown option {arg!r} for domain {domain.name!r}. Its prepare options: {valid}")
        if isinstance(opt.default, bool):
            out[opt.name] = True
        else:
            raw = inline or next(it, None)
            if raw is None:
                raise GenError(f"{flag} needs a value")
            try:
                out[opt.name] = type(opt.default)(raw) if opt.default is not None else raw
            except ValueError:
                raise GenError(f"{flag}: {raw!r} is not a valid {type(opt.default).__name__}") from None
    return out


def prepare_corpus(name: str, src: str | None, ws: Path, extra_args: list[str] | None = None) -> dict[str, Any]:
    spec = resolve_corpus(name)
    domain = get_domain(spec.domain)
    options = parse_prepare_options(domain, extra_args or [])
    src = src or default_source(spec)
    if src is None:
        raise GenError(f"corpus {spec.name!r} needs --src PATH (no default source found here; "
                       f"its manifest looks for: {', '.join(spec.sources) or 'nothing'})")
    return prepare(spec, domain, str(src), ws_mod.corpus_dir(ws, spec.name), options)


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
    model: Any
    vocab: Any
    ckpt: dict[str, Any]
    path: Path


def load_model(target: str, ws: Path) -> Loaded:
    """A checkpoint path, or a corpus/domain name meaning its latest run's best checkpoint."""
    path = Path(target)
    if not (path.suffix == ".pt" or path.is_file() or path.is_dir()):
        spec = resolve_corpus(target)
        path = ws_mod.latest_checkpoint(ws, spec.name)
    elif path.is_dir():
        path = next((path / n for n in ("best.pt", "last.pt") if (path / n).is_file()), path / "best.pt")
    ckpt = ckpt_io.load(path)
    model, vocab = ckpt_io.model_from_checkpoint(ckpt)
    return Loaded(model, vocab, ckpt, path)


def sample_texts(loaded: Loaded, opts: SampleOptions, guided: bool = False,
                 constraints: list[str] | None = None, on_char=None,
                 stats: Any = None) -> tuple[list[str], SampleStats]:
    domain = get_domain(loaded.ckpt["domain"])
    if not opts.stop and domain.stop:
        opts.stop = [domain.stop]
    trackers = None
    if guided:
        trackers = [domain.tracker(constraints, stats) for _ in range(opts.n)]
        if trackers[0] is None:
            raise GenError(f"domain {domain.name!r} has no structure tracker; sample without --guided")
    return generate(loaded.model, loaded.vocab, opts, trackers, on_char)


def eval_context(domain: Domain, against: str | None, ws: Path, options: dict[str, Any]) -> EvalContext:
    data = None
    if against:
        spec, data = load_corpus(against, ws)
        if spec.domain != domain.name:
            raise GenError(f"--against {against!r} is a {spec.domain!r} corpus, not {domain.name!r}")
    return EvalContext(domain, data, options)


def write_json(path: Path, obj: Any) -> None:
    from gen.core.atomic import atomic_write_text

    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False))


def run_demo(ws: Path, seconds: float, log) -> dict[str, Any]:
    """`gen demo`: prepare the offline census names, train for ``seconds``, sample 20 novel-looking
    names and report novelty against the training names."""
    from gen.core.train import train
    from gen.evals.report import evaluate

    spec = resolve_corpus("census")
    if not ws_mod.is_prepared(ws, spec.name):
        meta = prepare_corpus(spec.name, None, ws)
        log(f"prepared {spec.name}: {meta['report']['documents']:,} names from {meta['src']}")
    spec, data = load_corpus(spec.name, ws)
    cfg = resolve_config(spec, {"device": "cpu"} if not torch.cuda.is_available() else {})
    cfg.max_time = seconds
    run_dir = ws_mod.new_run_dir(ws, spec.name, "demo-" + __import__("time").strftime("%Y%m%d-%H%M%S"))
    log(f"training {cfg.n_layer}x{cfg.n_hidden} {cfg.cell} for up to {seconds:.0f} s in {run_dir}")
    res = train(data, cfg, run_dir, spec.domain, log=log)
    loaded = load_model(str(run_dir / "best.pt"), ws)
    texts, _ = sample_texts(loaded, SampleOptions(n=20, length=40, temperature=0.8, seed=0), guided=True,
                            constraints=["nonempty", "maxlen"])
    domain = get_domain(spec.domain)
    ctx = EvalContext(domain, data)
    report = evaluate(domain, texts, ctx, baseline=False)
    return {"names": texts, "train_names": ctx.stats["names"], "summary": report.summary(), "checkpoint": run_dir / "best.pt", "result": res}

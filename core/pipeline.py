"""The steps the commands run, as plain functions: resolve names, prepare, train, sample.

The CLI parses options and prints; everything with logic lives here or below, so the same
steps are usable from Python (tests, notebooks, `gen demo`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gen.core import workspace as ws_mod
from gen.core.config import TrainConfig, read_config_file
from gen.core.data import CorpusData, prepare
from gen.core.domain import CorpusSpec, Domain, EvalContext
from gen.core.download import fetch, sha256_of
from gen.core.errors import GenError
from gen.core.registry import all_corpora, default_source, get_domain, infer_domain, resolve_corpus
from gen.core.usercorpora import new_user_spec, save_user_corpus

if TYPE_CHECKING:  # torch loads only where a command trains or samples (`gen eval` of a file never does)
    from gen.core.sample import SampleOptions, SampleStats
    from gen.core.train import TrainResult


def corpus_to_prepare(name: str, src: str | None, ws: Path, domain: str | None = None, log=print) -> CorpusSpec:
    """The corpus `gen prepare NAME` means: a built-in one (from its own text only), a user
    corpus (re-prepared, perhaps from a new source), or a new user corpus named NAME."""
    try:
        spec = resolve_corpus(name, ws)
    except GenError:
        if src is None:
            raise
        dom, why = (domain, "as given") if domain else infer_domain(src)
        get_domain(dom)  # an unknown --domain lists the valid ones
        log(f"new corpus {name!r}: domain {dom} ({why})")
        reg_default = get_domain(dom).default_corpus
        return new_user_spec(name, dom, src, all_corpora(ws).get(reg_default), {})
    if spec.user:
        if domain and domain != spec.domain:
            log(f"corpus {spec.name!r}: domain {spec.domain} -> {domain}")
            spec.domain = domain
        if src and src != "-" and str(Path(src).resolve()) != spec.src:
            log(f"re-preparing {spec.name!r} from a new source: {Path(src).resolve()} (was {spec.src})")
            spec.src = str(Path(src).resolve())
        return spec
    if domain and domain != spec.domain:
        raise GenError(f"{spec.name!r} is a built-in {spec.domain} corpus; for your own {domain} text: "
                       f"gen prepare MYNAME --domain {domain} --src {src or 'PATH'}")
    pinned = spec.download.get("sha256")
    if src and pinned and (src == "-" or (Path(src).is_file() and sha256_of(Path(src)) != pinned)):
        raise GenError(f"{spec.name!r} is a built-in corpus ({spec.description}) whose text is {spec.download['url']}; "
                       f"{'standard input' if src == '-' else src} is other text (or cannot be checked). Prepare yours under "
                       f"its own name: gen prepare "
                       f"{'MYNAME' if src == '-' else _suggest_name(src)} --domain {spec.domain} --src {src}")
    return spec


def _suggest_name(src: str) -> str:
    stem = "".join(c if c.isalnum() or c in "._-" else "-" for c in Path(src).stem).strip(".-_") or "mytext"
    return stem if stem[0].isalnum() else "my" + stem


def prepare_corpus(name: str, src: str | None, ws: Path, options: dict[str, Any] | None = None,
                   domain: str | None = None, log=print, spec: CorpusSpec | None = None) -> dict[str, Any]:
    """Prepare a corpus into the workspace; ``options`` are the domain's prepare options. With
    no ``src``: a package's resource, or the manifest's download (fetched and verified).
    ``spec``: what :func:`corpus_to_prepare` already said NAME means."""
    spec = spec or corpus_to_prepare(name, src, ws, domain, log)
    dom = get_domain(spec.domain)
    if src is None and spec.user:
        src = spec.src
    src = src or default_source(spec)
    if src is None and spec.download:
        src = str(fetch(spec.name, spec.download, ws / "downloads" / spec.name, log))
    if src is None:
        raise GenError(f"corpus {spec.name!r} needs --src PATH (its manifest names no download)")
    meta = prepare(spec, dom, str(src), ws_mod.corpus_dir(ws, spec.name), options or {})
    if spec.user:
        spec.options = {**spec.options, **(options or {})}
        save_user_corpus(ws, spec)
    return meta


def load_corpus(name: str, ws: Path) -> tuple[CorpusSpec, CorpusData]:
    spec = resolve_corpus(name, ws)
    if not ws_mod.is_prepared(ws, spec.name):
        hint = "" if spec.sources else " --src PATH"
        raise GenError(f"corpus {spec.name!r} is not prepared in workspace {ws}. "
                       f"Run: gen prepare {spec.name}{hint}")
    return spec, CorpusData(ws_mod.corpus_dir(ws, spec.name))


SHAPE = ("cell", "n_layer", "n_hidden", "n_embd")  # options a resume cannot change: the weights have them


def resolve_config(spec: CorpusSpec, overrides: dict[str, Any], gpu: bool | None = None,
                   config_file: str | Path | None = None, variant: str | None = None) -> TrainConfig:
    """TrainConfig defaults <- domain defaults <- manifest defaults <- config file <- overrides,
    for the device kind (cpu/gpu); each value remembers where it came from. ``variant`` ("bf16")
    adds that sub-table of the kind's defaults (``[defaults.cpu.bf16]``: a recipe for CPUs
    where the precision probe picks bf16) over the kind's own."""
    file_values = read_config_file(config_file) if config_file else {}
    device = overrides.get("device") or file_values.get("device") or "auto"
    if gpu is None:
        import torch

        gpu = torch.cuda.is_available()
    kind = "gpu" if gpu else "cpu"
    if device == "cpu":
        kind = "cpu"
    domain = get_domain(spec.domain)
    cfg = TrainConfig()
    for source, table in ((f"domain {domain.name}", domain.defaults), (f"manifest {spec.origin}", spec.defaults)):
        own = table.get(kind, {})
        cfg.update({k: v for k, v in own.items() if not isinstance(v, dict)}, f"{source} ({kind})")
        if variant and isinstance(own.get(variant), dict):
            cfg.update(own[variant], f"{source} ({kind}, {variant})")
    cfg.update(file_values, f"file {config_file}")
    cfg.update(overrides, "command line")
    return cfg


def resolve_precision(spec: CorpusSpec, data: CorpusData, given: dict[str, Any], ws: Path,
                      config_file: str | Path | None = None) -> tuple[TrainConfig, str]:
    """The config with ``precision = "auto"`` decided (core/precision.py), and the line that says
    why. On a CPU the probe times the bf16 recipe's model shape (``[defaults.cpu.bf16]`` when the
    manifest has one); picking bf16 applies that recipe, picking fp32 keeps the fp32 defaults."""
    from gen.core.device import pick_device
    from gen.core.model import ModelArgs
    from gen.core.precision import pick_precision

    cfg = resolve_config(spec, given, config_file=config_file)
    if cfg.precision != "auto":
        return cfg, f"precision: {cfg.precision} ({cfg.origin('precision')})"
    device = pick_device(cfg.device)
    candidate = resolve_config(spec, given, config_file=config_file, variant="bf16") if device.type == "cpu" else cfg
    args = ModelArgs(vocab_size=len(data.vocab), cell=candidate.cell, n_layer=candidate.n_layer,
                     n_hidden=candidate.n_hidden, n_embd=candidate.n_embd)
    pick = pick_precision(args, device, ws_mod.precision_cache(ws))
    cfg = candidate if pick.precision == "bf16" else cfg
    cfg.update({"precision": pick.precision}, f"auto: {pick.why}")
    return cfg, f"precision: {pick.precision} ({pick.why})"


def resume_config(ckpt: dict[str, Any], overrides: dict[str, Any],
                  config_file: str | Path | None = None) -> tuple[TrainConfig, list[str]]:
    """A resume's config: the checkpoint's, then only what a file or the command line names.
    Returns it and one line per changed option; changing the model's shape is refused."""
    saved = TrainConfig().update(ckpt["config"], "checkpoint")
    cfg = TrainConfig().update(ckpt["config"], "checkpoint")
    cfg.update(read_config_file(config_file) if config_file else {}, f"file {config_file}")
    cfg.update(overrides, "command line")
    changed = [k for k in TrainConfig.field_names() if getattr(cfg, k) != getattr(saved, k)]
    shape = [k for k in changed if k in SHAPE]
    if shape:
        detail = ", ".join(f"{k}: checkpoint {getattr(saved, k)!r}, asked {getattr(cfg, k)!r}" for k in shape)
        raise GenError(f"cannot resume with a different model shape ({detail}): the weights have the "
                       f"checkpoint's shape. Drop those options, or train a new run.")
    return cfg, [f"{k}: {getattr(saved, k)!r} -> {getattr(cfg, k)!r} ({cfg.origin(k)})" for k in changed]


def check_trainable(cfg: TrainConfig, data: CorpusData) -> None:
    """Fail before a run folder exists when the corpus cannot feed this config."""
    from gen.core.data import StreamBatches

    StreamBatches(data.ids("train"), cfg.batch_size, cfg.seq_len)  # raises GenError with the fix


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

    def generate(self, ws: Path, n: int = 1, length: int | None = None, temperature: float = 0.8, top_k: int = 0,
                 top_p: float = 1.0, prime: str = "", stop: list[str] | None = None, seed: int | None = None,
                 guided: bool = False, constraints: list[str] | None = None, novel_only: bool = False,
                 on_char=None, device: str = "cpu", precision: str = "auto") -> tuple[list[str], SampleStats]:
        """Everything `gen sample` does: ``n`` samples of at most ``length`` characters (default:
        50 for line-per-sample domains, else 1000), ``stop`` strings (None: the domain's),
        structure-guided (``guided``, ``constraints``), never a training name (``novel_only``)."""
        if n < 1 or (length is not None and length < 1):
            raise GenError(f"-n and --length must be at least 1 (got {n} and {length})")
        if temperature < 0 or top_k < 0 or not 0 < top_p <= 1:
            raise GenError(f"temperature must be >= 0, top-k >= 0 and top-p in (0, 1] "
                           f"(got {temperature}, {top_k}, {top_p})")
        from gen.core.sample import SampleOptions

        domain = self.domain
        length = length or (50 if domain.samples_per_line else 1000)
        opts = SampleOptions(n=n, length=length, temperature=temperature, top_k=top_k, top_p=top_p, prime=prime,
                             stop=stop, seed=seed, device=device, precision=precision)
        stats = None
        if guided or novel_only:  # trackers may use the training corpus (names: the names to avoid)
            guided = True
            if ws_mod.is_prepared(ws, self.ckpt["corpus"]):
                from gen.core.statscache import load_or_build

                stats = load_or_build(domain, load_corpus(self.ckpt["corpus"], ws)[1])
            elif novel_only:
                raise GenError(f"--novel-only needs the training corpus: gen prepare {self.ckpt['corpus']}")
            if novel_only:
                constraints = [*constraints, "novel"] if constraints else None
        return sample_texts(self, opts, guided, constraints or None, on_char, stats)


def load_model(target: str, ws: Path) -> Loaded:
    """A checkpoint path, a run folder, or a corpus/domain name meaning its latest run's best checkpoint."""
    path = Path(target)
    if not (path.suffix == ".pt" or path.is_file() or path.is_dir()):
        spec = resolve_corpus(target, ws)
        path = ws_mod.latest_checkpoint(ws, spec.name)
    elif path.is_dir():
        path = ws_mod.RunDir(path).model_checkpoint()
    return load_checkpoint(path)


def load_checkpoint(path: str | Path) -> Loaded:
    """One checkpoint file, ready to sample from."""
    from gen.core import checkpoint as ckpt_io

    ckpt = ckpt_io.load(path)
    model, vocab = ckpt_io.model_from_checkpoint(ckpt)
    return Loaded(model, vocab, ckpt, Path(path))


def sample_texts(loaded: Loaded, opts: SampleOptions, guided: bool = False,
                 constraints: list[str] | None = None, on_char=None,
                 stats: Any = None) -> tuple[list[str], SampleStats]:
    """Sample from a loaded checkpoint with its domain's rules (the one sampling function)."""
    from gen.core.sample import make_trackers, sample

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


@dataclass
class TrainPlan:
    """A training run ready to start: its corpus, resolved config, and the checkpoint it resumes."""

    spec: CorpusSpec
    data: CorpusData
    cfg: TrainConfig
    resume: dict[str, Any] | None = None
    run: ws_mod.RunDir | None = None  # the resumed run's folder (a new run's is made at start)
    changes: list[str] | None = None  # options a resume changed, one line each
    precision_note: str = ""  # how the precision was chosen (printed when the run starts)


def plan_training(corpus: str, ws: Path, overrides: dict[str, Any] | None = None,
                  config_file: str | Path | None = None, resume: str | Path | None = None) -> TrainPlan:
    """Resolve everything a run needs (no folder is made yet)."""
    spec, data = load_corpus(corpus, ws)
    given = {k: v for k, v in (overrides or {}).items() if v is not None}  # only what was named
    if resume:
        from gen.core import checkpoint as ckpt_io

        ckpt = ckpt_io.load(resume)
        cfg, changes = resume_config(ckpt, given, config_file)
        return TrainPlan(spec, data, cfg, ckpt, ws_mod.RunDir.of(resume), changes)
    cfg, note = resolve_precision(spec, data, given, ws, config_file)
    return TrainPlan(spec, data, cfg, precision_note=note)


def run_training(plan: TrainPlan, ws: Path, run_name: str | None = None, started: float | None = None,
                 log=print, progress: bool = False, on_step=None) -> TrainResult:
    """Start (or resume) the planned run. ``started`` (time.monotonic()) is when the command
    began: a time budget then covers the whole command, final validation included."""
    from gen.core.device import from_rank0, init_distributed, is_main_process
    from gen.core.train import train

    run = plan.run
    if run_name is not None:
        ws_mod.check_name(run_name, "run name")
    check_trainable(plan.cfg, plan.data)  # before any folder exists
    if run is None:
        init_distributed(plan.cfg)  # under torchrun only rank 0 creates the run folder
        path = ws_mod.new_run_dir(ws, plan.spec.name, run_name).path if is_main_process() else None
        run = ws_mod.RunDir(from_rank0(path))
    log(f"run folder: {run}")
    if plan.precision_note:
        log(plan.precision_note)
    for line in plan.changes or ():
        log(f"changed on resume: {line}")
    given_time = plan.cfg.origin("max_time") in ("command line",) or plan.resume is None
    deadline = started + plan.cfg.max_time if started is not None and plan.cfg.max_time and given_time else None
    return train(plan.data, plan.cfg, run.path, plan.spec.domain, resume=plan.resume, log=log, progress=progress,
                 on_step=on_step, deadline=deadline)

"""What a `gen train` will do, decided before it starts: corpus, config, precision, resume.

:func:`plan_training` resolves everything once (config precedence and resume rules: core/config.py;
precision: core/precision.py settle), without making a folder; :func:`run_training` makes the
run folder (rank 0 under torchrun) and hands the plan to the training loop (core/train.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gen.core import shapes
from gen.core.config import TrainConfig, resolve_config, resume_config
from gen.core.corpora import load_corpus
from gen.core.data import CorpusData, StreamBatches
from gen.core.domain import CorpusSpec
from gen.core.registry import get_domain
from gen.core.shapes import TRAINING_ONLY
from gen.core.threads import RECHECK_STEPS, ThreadShare
from gen.core.workspace import RunDir, check_name, new_run_dir, precision_cache, speed_cache

if TYPE_CHECKING:  # torch loads when training starts
    from gen.core.train import TrainResult


@dataclass
class TrainPlan:
    """A training run ready to start: its corpus, resolved config, and the checkpoint it resumes."""

    spec: CorpusSpec
    data: CorpusData
    cfg: TrainConfig
    resume: dict[str, Any] | None = None
    run: RunDir | None = None  # the resumed run's folder (a new run's is made at start)
    changes: list[str] | None = None  # options a resume changed, one line each
    precision_note: str = ""  # how the precision was chosen (printed when the run starts)
    recipe_notes: list[str] = field(default_factory=list)  # why the recipe picked what it did


def plan_training(corpus: str, ws: Path, overrides: dict[str, Any] | None = None,
                  config_file: str | Path | None = None, resume: str | Path | None = None) -> TrainPlan:
    """Resolve everything a run needs (no folder is made yet)."""
    spec, data = load_corpus(corpus, ws)
    given = {k: v for k, v in (overrides or {}).items() if v is not None}  # only what was named
    if resume:
        from gen.core import checkpoint as ckpt_io

        ckpt = ckpt_io.load(resume)
        cfg, changes = resume_config(ckpt, given, config_file)
        return TrainPlan(spec, data, cfg, ckpt, RunDir.of(resume), changes)
    cfg, note = resolve_precision(spec, data, given, ws, config_file)
    return TrainPlan(spec, data, cfg, precision_note=note, recipe_notes=apply_recipe(cfg, data, ws))


def apply_recipe(cfg: TrainConfig, data: CorpusData, ws: Path) -> list[str]:
    """Fill the options nobody set with the recipe for the budget (core/recipe.py), in place;
    returns the lines that say why (or why not)."""
    from gen.core import recipe
    from gen.core.device import pick_device

    why_not = recipe.applies(cfg, pick_device(cfg.device).type)
    if why_not:
        return [why_not]
    others = ThreadShare(ws).others()  # timed beside other trainings: used, not cached
    speeds, timed = recipe.measure_speeds(cfg, len(data.vocab), None if others else speed_cache(ws))
    picked = recipe.pick(cfg, len(data.ids("train")), len(data.vocab), speeds)
    cfg.update(picked.values, "recipe for the budget")
    check_memory(cfg, len(data.vocab), "cpu")
    shared = [f"recipe: timed while {others} other training(s) ran here: not cached"] if others else []
    return shared + [f"recipe: {line}" for line in picked.reasons] + [f"recipe: speeds: {timed}"]


def resolve_precision(spec: CorpusSpec, data: CorpusData, given: dict[str, Any], ws: Path,
                      config_file: str | Path | None = None) -> tuple[TrainConfig, str]:
    """The config with ``precision = "auto"`` settled, and the line that says why. On a CPU the
    probe times the bf16 recipe's model shape (``[defaults.cpu.bf16]`` when the manifest has
    one); picking bf16 applies that recipe, picking fp32 keeps the fp32 defaults."""
    from gen.core.device import pick_device

    domain = get_domain(spec.domain)
    cfg = resolve_config(spec, domain, given, config_file=config_file)
    device = pick_device(cfg.device)
    check_memory(cfg, len(data.vocab), str(device))  # before the probe builds the model
    if cfg.precision != "auto":
        return cfg, f"precision: {cfg.precision} ({cfg.origin('precision')})"
    from gen.core.model import ModelArgs
    from gen.core.precision import settle

    candidate = resolve_config(spec, domain, given, config_file=config_file, variant="bf16") \
        if device.type == "cpu" else cfg
    shape = {**candidate.model_kwargs(len(data.vocab)), **dict.fromkeys(TRAINING_ONLY, 0.0)}  # the shape alone
    note = settle(candidate, ModelArgs(**shape), device, precision_cache(ws))
    if candidate.precision == "bf16":
        return candidate, note
    cfg.update({"precision": candidate.precision}, candidate.origin("precision"))
    return cfg, note


def check_memory(cfg: TrainConfig, vocab_size: int, device: str) -> None:
    """Refuse a model and batch that cannot fit, with the figure and the limit."""
    args = cfg.model_kwargs(vocab_size)
    shapes.check_fits(shapes.training_bytes(args, cfg.batch_size, cfg.seq_len), device,
                      f"training a {cfg.n_layer}x{cfg.n_hidden} {cfg.cell} on batches of {cfg.batch_size} x "
                      f"{cfg.seq_len} ({shapes.n_params(args):,} parameters)",
                      "Lower --hidden, --layers, --batch-size or --seq-len")


def run_training(plan: TrainPlan, ws: Path, run_name: str | None = None, started: float | None = None,
                 log: Callable[[str], None] = print, progress: bool = False,
                 on_step: Callable[[int, float], bool | None] | None = None) -> TrainResult:
    """Start (or resume) the planned run. ``started`` (time.monotonic()) is when the command
    began: a time budget then covers the whole command, final validation included."""
    from gen.core.device import from_rank0, init_distributed
    from gen.core.train import train

    if run_name is not None:
        check_name(run_name, "run name")
    StreamBatches.check(len(plan.data.ids("train")), plan.cfg.batch_size, plan.cfg.seq_len)  # before any folder
    placement = init_distributed(plan.cfg)  # (rank, world, device), once per command
    check_memory(plan.cfg, len(plan.data.vocab), str(placement[2]))  # a resume's options too, before any folder
    run = plan.run
    if run is None:  # under torchrun only rank 0 creates the run folder
        path = new_run_dir(ws, plan.spec.name, run_name).path if placement[0] == 0 else None
        run = RunDir(from_rank0(path))
    log(f"run folder: {run}")
    if plan.precision_note:
        log(plan.precision_note)
    for line in plan.recipe_notes:
        log(line)
    for line in plan.changes or ():
        log(f"changed on resume: {line}")
    given_time = plan.cfg.origin("max_time") in ("command line",) or plan.resume is None
    deadline = started + plan.cfg.max_time if started is not None and plan.cfg.max_time and given_time else None
    if plan.cfg.threads or placement[2].type != "cpu" or placement[1] > 1:  # threads named, or not ours to share
        return train(plan.data, plan.cfg, run.path, plan.spec.domain, resume=plan.resume, log=log,
                     progress=progress, on_step=on_step, deadline=deadline, placement=placement)
    with ThreadShare(ws) as share:
        log(share.apply() or "")

        def step(i: int, loss: float) -> bool | None:
            if i % RECHECK_STEPS == 0 and (changed := share.apply()):
                log(changed)
            return on_step(i, loss) if on_step is not None else None

        return train(plan.data, plan.cfg, run.path, plan.spec.domain, resume=plan.resume, log=log,
                     progress=progress, on_step=step, deadline=deadline, placement=placement)

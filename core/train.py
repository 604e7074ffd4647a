"""The training loop: stateful truncated BPTT with exact resume, budgets and safe checkpoints.

:func:`train` is one flat loop of named steps a reader follows top to bottom::

    validate when due -> evolution sample when due -> one optimizer step -> log -> budgets

Each step every stream continues where the previous batch stopped and the hidden state is
carried (detached). Multi-GPU runs under ``torchrun`` (DDP): each rank owns its own contiguous
streams and only rank 0 writes. Everything a resume needs lives in :class:`_Run` and goes into
the checkpoint, so an interrupted and resumed run ends with the weights of an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from gen.core import checkpoint as ckpt_io
from gen.core.average import WeightAverage
from gen.core.budget import Budget, lr_at
from gen.core.config import SampleOptions, TrainConfig
from gen.core.data import CorpusData, StreamBatches
from gen.core.device import any_rank, autocast_for, describe_device, init_distributed, is_main_process
from gen.core.errors import GenError
from gen.core.model import CharRNN, ModelArgs, cross_entropy, detach_hidden
from gen.core.plot import plot_losses
from gen.core.precision import settle
from gen.core.sample import sample
from gen.core.signals import StopSignals
from gen.core.tblog import TBLog
from gen.core.units import bpc
from gen.core.workspace import RunDir

__all__ = ["TrainResult", "evaluate", "lr_at", "make_optimizer", "train"]

MAX_BAD_STEPS = 5  # consecutive non-finite losses before the run stops with advice
BAR_UNITS = 1000  # the progress bar counts thousandths of the budget, whichever budget it is
BAR_FORMAT = "{percentage:3.0f}%|{bar}| {elapsed}<{remaining} {postfix}"


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    best_val: float
    last_val: float
    stopped: str  # "steps" | "time" | "signal" | "nan"
    losses: list[float] = field(default_factory=list)  # train loss per step of this process


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    # weight decay on matrices only: decaying biases, embeddings' norms or gains hurts
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "embed" not in n]
    other = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "embed" not in n)]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": other, "weight_decay": 0.0}]
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.99))
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, betas=(0.9, 0.99))
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(groups, lr=cfg.lr, alpha=0.95)
    raise GenError(f"unknown optimizer {cfg.optimizer!r}; use adam, adamw or rmsprop")


@torch.no_grad()
def evaluate(model: CharRNN, data: CorpusData, cfg: TrainConfig, device: torch.device,
             max_chars: int | None = None) -> float:
    """Mean validation loss (nats/char) over the first eval_chars (or ``max_chars``) of val, streams carried."""
    ids = data.ids("val")
    limit = cfg.eval_chars or len(ids)
    if max_chars:
        limit = min(limit, max_chars)
    ids = ids[: limit + 1]
    if len(ids) < 2:
        return float("nan")
    batch = max(1, min(cfg.batch_size, (len(ids) - 1) // cfg.seq_len))
    seq = min(cfg.seq_len, len(ids) - 1)
    batches = StreamBatches(ids, batch, seq)
    was_training = model.training
    model.eval()
    hidden, total = None, 0.0
    with autocast_for(device, cfg.precision):
        for pos in range(batches.steps_per_epoch):
            x, y = batches.get(pos)  # (B, T) each
            logits, hidden = model(x.to(device), hidden)  # (B, T, V)
            total += cross_entropy(logits, y.to(device)).item()
    model.train(was_training)
    return total / batches.steps_per_epoch


@dataclass
class _Run:
    """One training run in progress: what the steps below share, and what a checkpoint keeps."""

    cfg: TrainConfig
    data: CorpusData
    run: RunDir
    domain: str
    model: CharRNN
    net: torch.nn.Module  # the model, or its DDP wrapper
    optimizer: torch.optim.Optimizer
    batches: StreamBatches
    device: torch.device
    world: int
    main: bool  # rank 0: the only process that writes
    log: Callable[[str], None]
    step: int = 0
    best_val: float = float("inf")
    last_val: float = float("nan")  # validation loss at this step (nan: not validated yet)
    elapsed: float = 0.0  # training seconds, over all resumed segments
    hidden: Any = None  # carried (B, H) states, detached
    losses: list[float] = field(default_factory=list)
    bar: Any = None  # the progress bar (rank 0, on a terminal)
    metrics_fh: Any = None  # metrics.jsonl, open for appending (rank 0)
    tb: Any = None  # TensorBoard events (rank 0, when tensorboard is installed)
    budget: Any = None  # Budget: when the run ends and how far along it is
    sampled_at: int = -1  # the step of the last evolution sample
    t_start: float = 0.0  # perf_counter at step 0 of the whole run (resumed segments included)
    average: Any = None  # WeightAverage when cfg.ema: what is validated and kept as best

    def say(self, msg: str) -> None:
        (self.bar.write if self.bar else self.log)(msg)

    def record(self, entry: dict[str, Any]) -> None:
        """One line of metrics.jsonl, flushed (an interrupted run keeps what it logged)."""
        if self.metrics_fh:
            self.metrics_fh.write(json.dumps(entry) + "\n")
            self.metrics_fh.flush()
            self.tb.record(entry)


def _setup(data: CorpusData, cfg: TrainConfig, run_dir: Path, domain: str, resume: dict[str, Any] | None,
           log: Callable[[str], None], placement: tuple[int, int, torch.device] | None = None) -> _Run:
    """Model, optimizer and data streams, restored from ``resume`` when given."""
    rank, world, device = placement or init_distributed(cfg)
    if cfg.threads:
        cores = os.cpu_count() or 1
        if cfg.threads > cores:  # more threads than cores only fight over them
            log(f"threads: {cfg.threads} asked, {cores} used (the cores this machine has)")
        torch.set_num_threads(min(cfg.threads, cores))
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    args = ModelArgs(**cfg.model_kwargs(len(data.vocab)))
    model = CharRNN(args).to(device)
    if cfg.precision == "auto":  # train() called directly, not from a plan: measured here, uncached
        log(settle(cfg, args, device))
    r = _Run(cfg, data, RunDir(run_dir), domain, model, model, make_optimizer(model, cfg),
             StreamBatches(data.ids("train"), cfg.batch_size, cfg.seq_len, rank, world), device, world,
             rank == 0, log)
    if cfg.ema:
        r.average = WeightAverage(model, cfg.ema)
    if resume is not None:
        ckpt_io.check_resumable(resume, data.name, data.vocab, args)
        model.load_state_dict(resume.get("raw_model") or resume["model"])  # averaged runs keep both
        if r.average is not None and resume.get("average"):
            r.average.load_state_dict(resume["average"])
        r.optimizer.load_state_dict(resume["optimizer"])
        r.step, r.best_val, r.elapsed = resume["step"], resume["best_val"], resume.get("elapsed", 0.0)
        if resume.get("val_step") == r.step:  # saved right after validating: not validated again
            r.last_val = resume["last_val"]
        ckpt_io.set_rng_state(resume["rng"])
        if resume.get("hidden") is not None and resume.get("world", 1) == world:
            h = resume["hidden"]
            r.hidden = tuple(t.to(device) for t in h) if isinstance(h, list | tuple) else h.to(device)
    if world > 1:
        torch.manual_seed(cfg.seed + rank)  # distinct dropout masks per rank (DDP syncs the weights)
        r.net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index]
                                                          if device.type == "cuda" else None)
    model.train()
    return r


def _save(r: _Run, name: str) -> None:
    """best.pt / last.pt with everything to sample from and to resume exactly (rank 0 only)."""
    if not r.main:
        return
    hidden = None if r.hidden is None or r.world > 1 else r.hidden  # each rank carries its own streams
    if hidden is not None:
        hidden = [t.detach().cpu() for t in hidden] if isinstance(hidden, tuple) else hidden.detach().cpu()
    averaged = r.average is not None
    ckpt_io.save(r.run.checkpoint(name), {
        # "model" is what samples: the averaged weights when averaging; the trained ones resume
        "model_args": r.model.args.to_dict(), "vocab": r.data.vocab.to_dict(),
        "model": r.average.averaged_state(r.model) if averaged else r.model.state_dict(),
        "raw_model": r.model.state_dict() if averaged else None,
        "average": r.average.state_dict() if averaged else None,
        "separator": r.data.separator, "config": r.cfg.to_dict(), "domain": r.domain, "corpus": r.data.name,
        "optimizer": r.optimizer.state_dict(), "step": r.step, "best_val": r.best_val, "elapsed": r.elapsed,
        "last_val": r.last_val, "val_step": r.step if not math.isnan(r.last_val) else None,
        "rng": ckpt_io.rng_state(), "world": r.world, "hidden": hidden, "machine": describe_device(r.device),
    })


def _validate(r: _Run, max_chars: int | None = None) -> None:
    """Validation loss now; best.pt when it improved, last.pt always, and the loss plot."""
    t0 = time.monotonic()
    if r.average is not None:
        with r.average.applied(r.model):
            r.last_val = evaluate(r.model, r.data, r.cfg, r.device, max_chars)
    else:
        r.last_val = evaluate(r.model, r.data, r.cfg, r.device, max_chars)
    t1 = time.monotonic()
    entry = {"step": r.step, "val_loss": r.last_val, "val_bpc": bpc(r.last_val), "time": time.perf_counter() - r.t_start}
    if max_chars is not None:
        entry["val_chars"] = max_chars  # a shortened final validation: another sample of the split
    r.record(entry)
    if not r.main:
        r.budget.validated(t1 - t0, 0.0)
        return
    msg = f"step {r.step}: val loss {r.last_val:.4f} nats, {bpc(r.last_val):.3f} bpc"
    if max_chars is not None:
        # a few windows of the split score far from the whole split (1.23 on 1 KB where the whole
        # split scored 1.44): never a "best", or best.pt would be chosen by luck
        msg += f" (on {max_chars:,} characters only: not compared with the best)"
    elif r.last_val < r.best_val:
        r.best_val = r.last_val
        _save(r, "best")
        msg += " (best so far, saved best.pt)"
    _save(r, "last")
    r.say(msg)
    plot_losses(r.run)
    if max_chars is None:  # a shortened final validation says little about the next one's cost
        r.budget.validated(t1 - t0, time.monotonic() - t1)


def _evolution_sample(r: _Run) -> None:
    """A short sample at the default temperature with its own seeded generator: the global RNG (and so
    an exact resume) is untouched."""
    was = r.model.training
    r.model.eval()
    texts, _ = sample(r.model, r.data.vocab, SampleOptions(length=r.cfg.sample_chars,
                                                           seed=r.cfg.seed + r.step, stop=[]),
                      separator=r.data.separator)
    r.model.train(was)
    r.run.add_evolution_sample(r.step, r.losses[-1] if r.losses else None, texts[0])
    r.tb.text("samples", texts[0], r.step)
    r.sampled_at = r.step


def _optimizer_step(r: _Run, amp) -> float:
    """One batch forward and backward; returns the loss (nan when a rank's loss was not finite:
    the step is then skipped on every rank)."""
    pos = r.step % r.batches.steps_per_epoch
    if pos == 0:
        r.hidden = None  # a new epoch starts every stream from scratch
    x, y = r.batches.get(pos)  # (B, T) inputs and targets
    x, y = x.to(r.device, non_blocking=True), y.to(r.device, non_blocking=True)
    for g in r.optimizer.param_groups:
        g["lr"] = lr_at(r.step, r.cfg, r.elapsed, r.budget.planned_elapsed(), r.budget.warmup)
    with amp:
        logits, new_hidden = r.net(x, r.hidden)  # (B, T, V)
        loss = cross_entropy(logits, y)
    r.optimizer.zero_grad(set_to_none=True)
    if any_rank(not torch.isfinite(loss).item(), r.world, r.device):  # all ranks skip together
        r.hidden = None
        r.step += 1
        return float("nan")
    loss.backward()
    if r.cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(r.model.parameters(), r.cfg.grad_clip)
    r.optimizer.step()
    if r.average is not None:
        r.average.update(r.model)
    r.hidden = detach_hidden(new_hidden)
    r.step += 1
    r.last_val = float("nan")
    r.losses.append(loss.item())
    return r.losses[-1]


def _log_step(r: _Run, loss: float, window: list) -> None:
    """metrics.jsonl every log_every steps (chars/s over the steps since the last record)."""
    if r.step % r.cfg.log_every and r.step != r.cfg.max_steps:
        return
    now = time.perf_counter()
    cps = window[1] * r.cfg.batch_size * r.cfg.seq_len * r.world / max(now - window[0], 1e-9)
    window[:] = [now, 0]
    r.record({"step": r.step, "loss": loss, "bpc": bpc(loss), "lr": r.optimizer.param_groups[0]["lr"],
              "chars_per_s": cps, "time": r.elapsed})
    if r.bar:
        r.bar.set_postfix_str(f"step {r.step:,} loss {loss:.3f} ({bpc(loss):.3f} bpc) {cps:,.0f} chars/s")


def _progress(r: _Run) -> None:
    """Move the bar to how far along the run is, by whichever budget ends first (a true ETA)."""
    if r.bar:
        r.bar.update(int(BAR_UNITS * r.budget.fraction(r.step, r.elapsed)) - r.bar.n)


def _start(r: _Run, progress: bool, resumed: bool, deadline: float | None) -> None:
    """Tidy what a killed process left, open the logs, write the resolved config, say what
    trains where; the budget and the progress bar. (Logs: rank 0, holding the run's lock.)"""
    val = len(r.data.ids("val"))
    eval_batches = -(-min(r.cfg.eval_chars or val, val) // (r.cfg.batch_size * r.cfg.seq_len))
    r.budget = Budget(r.cfg, r.step, r.elapsed, deadline, eval_batches)
    if not r.main:
        return
    gone = r.run.remove_orphans()
    if gone:
        r.log(f"removed {len(gone)} temporary file(s) an interrupted run left: {', '.join(gone)}")
    if resumed:
        r.run.trim_after(r.step)
    r.metrics_fh = open(r.run.metrics, "a", encoding="utf-8")
    r.tb = TBLog(r.run.path)
    cfg = r.cfg
    r.run.write_config({"domain": r.domain, "corpus": r.data.name, **cfg.to_dict(), "params": r.model.num_params()})
    r.log(f"model: {cfg.n_layer}x{cfg.n_hidden} {cfg.cell}, {r.model.num_params():,} parameters, device "
          f"{r.device}{f', {r.world} processes' if r.world > 1 else ''}; data: {len(r.data.ids('train')):,} "
          f"train chars, {r.batches.steps_per_epoch} steps per epoch")
    if progress:
        from tqdm import tqdm

        # disable=None: no bar when stderr is not a terminal (CI logs stay readable)
        r.bar = tqdm(total=BAR_UNITS, initial=int(BAR_UNITS * r.budget.fraction(r.step, r.elapsed)), leave=True,
                     dynamic_ncols=True, disable=None, mininterval=0.5, bar_format=BAR_FORMAT)


def _finish(r: _Run, stopped: str) -> TrainResult:
    """What an ending run saves: last.pt after a signal or NaN stop, else a final validation
    (shortened when the time budget would not fit it) and a last evolution sample."""
    if r.bar:
        r.bar.close()
    if stopped == "signal":
        _save(r, "last")
        r.log(f"interrupted at step {r.step}: saved {r.run.last}; resume with --resume {r.run.last}")
    elif stopped == "nan":
        _save(r, "last")
        r.log("training stopped: the loss stayed non-finite. Lower --lr (e.g. by 3x), keep --grad-clip at "
              "1.0 or below, or use --precision fp32; last good weights are in last.pt")
    else:
        if math.isnan(r.last_val):
            full = min(r.cfg.eval_chars or len(r.data.ids("val")), len(r.data.ids("val")))
            chars = r.budget.final_eval_chars(full)
            if chars is not None:
                r.log(f"final validation on {chars:,} of {full:,} characters, to end within the time budget")
            _validate(r, chars)
        if r.main and r.cfg.sample_every and r.sampled_at != r.step:  # every run leaves a trained sample
            _evolution_sample(r)
    if r.metrics_fh:
        r.metrics_fh.close()
        r.tb.close()
    return TrainResult(r.run.path, r.step, r.best_val, r.last_val, stopped, r.losses)


def train(data: CorpusData, cfg: TrainConfig, run_dir: Path, domain: str,
          resume: dict[str, Any] | None = None, log: Callable[[str], None] = print,
          progress: bool = True, on_step: Callable[[int, float], bool] | None = None,
          deadline: float | None = None, placement: tuple[int, int, torch.device] | None = None) -> TrainResult:
    """Train on a prepared corpus, writing checkpoints and logs into ``run_dir``.

    ``on_step(step, loss)`` runs after every optimizer step; returning True stops the run the way
    Ctrl-C does (last.pt saved, resumable), which notebooks and tests use. ``deadline``
    (``time.monotonic()``) is when the whole call must have returned, final validation and
    checkpoint included; by default the rest of ``cfg.max_time`` from now, when it is set."""
    lock = RunDir(run_dir).lock() if is_main_process() else None
    if lock:
        lock.acquire()  # one process per run folder: a second training or resume is refused
    try:
        return _train(data, cfg, run_dir, domain, resume, log, progress, on_step, deadline, placement)
    finally:
        if lock:
            lock.release()


def _train(data: CorpusData, cfg: TrainConfig, run_dir: Path, domain: str, resume: dict[str, Any] | None,
           log: Callable[[str], None], progress: bool, on_step: Callable[[int, float], bool] | None,
           deadline: float | None, placement: tuple[int, int, torch.device] | None) -> TrainResult:
    """The loop itself (see the module docstring), run under the run folder's lock."""
    r = _setup(data, cfg, run_dir, domain, resume, log, placement)
    _start(r, progress, resume is not None, deadline)
    bad_steps, stopped = 0, "steps"
    r.t_start = time.perf_counter() - r.elapsed
    window = [time.perf_counter(), 0]  # [start time, steps] of the chars/s window
    amp = autocast_for(r.device, cfg.precision)
    with StopSignals() as signals:
        while True:
            if r.step > 0 and r.step % cfg.eval_every == 0 and math.isnan(r.last_val):  # due, not done yet
                _validate(r)
            if r.main and cfg.sample_every and r.step % cfg.sample_every == 0 and r.sampled_at != r.step:
                _evolution_sample(r)
            if r.step >= cfg.max_steps:
                break
            t_step = time.perf_counter()
            loss = _optimizer_step(r, amp)
            if not math.isfinite(loss):
                bad_steps += 1
                r.say(f"step {r.step - 1}: loss is not finite, step skipped ({bad_steps}/{MAX_BAD_STEPS} in a row)")
                if bad_steps >= MAX_BAD_STEPS:
                    stopped = "nan"
                    break
                continue
            bad_steps, window[1] = 0, window[1] + 1
            r.elapsed = time.perf_counter() - r.t_start
            r.budget.step_done(time.perf_counter() - t_step, r.step)
            _log_step(r, loss, window)
            _progress(r)
            # budgets: every rank must leave the loop at the same step, or the next all-reduce hangs
            out_of_time = any_rank(r.budget.out_of_time(), r.world, r.device)
            interrupted = any_rank(signals.caught is not None or (on_step is not None and on_step(r.step, loss)),
                                   r.world, r.device)
            if interrupted or out_of_time:
                stopped = "signal" if interrupted else "time"
                break
    return _finish(r, stopped)

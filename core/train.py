"""The training loop: stateful truncated BPTT with exact resume, budgets and safe checkpoints.

One flat loop. At the top of each step: evaluate / checkpoint / sample when due. Then one
batch: every stream continues where the previous batch stopped and the hidden state is carried
(detached). At the bottom: logging and the budget and signal checks. Multi-GPU runs under
``torchrun`` (DDP): each rank owns its own contiguous streams and only rank 0 writes.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from gen.core import checkpoint as ckpt_io
from gen.core.config import TrainConfig
from gen.core.data import CorpusData, StreamBatches
from gen.core.errors import GenError
from gen.core.model import CharRNN, ModelArgs, cross_entropy, detach_hidden

LN2 = math.log(2)
MAX_BAD_STEPS = 5  # consecutive non-finite losses before the run stops with advice


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    best_val: float
    last_val: float
    stopped: str  # "steps" | "time" | "signal" | "nan"
    losses: list[float] = field(default_factory=list)  # train loss per step of this process


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise GenError("--device cuda asked for, but no CUDA GPU is visible; use --device cpu")
    return torch.device(name)


def autocast_for(device: torch.device, precision: str):
    """bf16 autocast context (GPU default; CPU opt-in), or a no-op for fp32."""
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    if precision != "fp32":
        raise GenError(f"unknown precision {precision!r}; use fp32, bf16 or auto")
    return nullcontext()


def init_distributed(cfg: TrainConfig) -> tuple[int, int, torch.device]:
    """(rank, world size, device). Under torchrun (WORLD_SIZE > 1) joins the process group once:
    NCCL on GPUs, gloo on CPUs. A single process touches nothing distributed."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = pick_device(cfg.device)
    if world > 1:
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, world, device


def any_rank(flag: bool, world: int, device: torch.device) -> bool:
    """True on every rank when ``flag`` is true on any (a no-op for one process)."""
    if world == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def from_rank0(value: Any) -> Any:
    """Rank 0's ``value`` on every rank (e.g. the run folder only rank 0 creates)."""
    if not (dist.is_available() and dist.is_initialized()):
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def lr_at(step: int, cfg: TrainConfig, elapsed: float = 0.0) -> float:
    """Linear warm-up to cfg.lr, then cosine/linear decay to lr*min_lr_ratio at the end of the
    budget: max_steps, or max_time when that comes first (so a timed run still anneals)."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return cfg.lr
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
    if cfg.max_time:
        progress = max(progress, min(1.0, elapsed / cfg.max_time))
    shape = 0.5 * (1 + math.cos(math.pi * progress)) if cfg.schedule == "cosine" else 1 - progress
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * shape)


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
def evaluate(model: CharRNN, data: CorpusData, cfg: TrainConfig, device: torch.device) -> float:
    """Mean validation loss (nats/char) over the first eval_chars of val, streams carried."""
    ids = data.ids("val")
    if cfg.eval_chars:
        ids = ids[: cfg.eval_chars + 1]
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
            x, y = batches.get(pos)
            logits, hidden = model(x.to(device), hidden)
            total += cross_entropy(logits, y.to(device)).item()
    model.train(was_training)
    return total / batches.steps_per_epoch


class _Signals:
    """SIGINT/SIGTERM set a flag; the loop saves a checkpoint and exits at the step's end."""

    def __init__(self) -> None:
        self.caught: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _Signals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def _handle(self, signum, frame) -> None:
        if self.caught is not None:  # a second Ctrl-C means "now"
            raise KeyboardInterrupt
        self.caught = signum

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def train(data: CorpusData, cfg: TrainConfig, run_dir: Path, domain: str,
          resume: dict[str, Any] | None = None, log: Callable[[str], None] = print,
          progress: bool = True, on_step: Callable[[int, float], bool] | None = None) -> TrainResult:
    """Train on a prepared corpus, writing checkpoints and logs into ``run_dir``.

    ``on_step(step, loss)`` runs after every optimizer step; returning True stops the run the way
    Ctrl-C does (last.pt saved, resumable), which notebooks and tests use."""
    rank, world, device = init_distributed(cfg)
    main = rank == 0
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    import random as _random

    _random.seed(cfg.seed)

    args = ModelArgs(vocab_size=len(data.vocab), cell=cfg.cell, n_layer=cfg.n_layer, n_hidden=cfg.n_hidden,
                     n_embd=cfg.n_embd, dropout=cfg.dropout)
    model = CharRNN(args).to(device)
    optimizer = make_optimizer(model, cfg)
    batches = StreamBatches(data.ids("train"), cfg.batch_size, cfg.seq_len, rank, world)
    step, best_val, elapsed, hidden = 0, float("inf"), 0.0, None
    if resume is not None:
        ckpt_io.check_resumable(resume, data.name, data.vocab, args)
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        step, best_val, elapsed = resume["step"], resume["best_val"], resume.get("elapsed", 0.0)
        ckpt_io.set_rng_state(resume["rng"])
        if resume.get("hidden") is not None and resume.get("world", 1) == world:
            h = resume["hidden"]
            hidden = tuple(t.to(device) for t in h) if isinstance(h, list | tuple) else h.to(device)
    net = model
    if world > 1:
        torch.manual_seed(cfg.seed + rank)  # distinct dropout masks per rank (DDP syncs the weights)
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda"
                                                        else None)
    model.train()

    def save(name: str) -> None:
        if not main:
            return
        payload = {
            "model_args": args.to_dict(), "model": model.state_dict(), "vocab": data.vocab.to_dict(),
            "config": cfg.to_dict(), "domain": domain, "corpus": data.name, "optimizer": optimizer.state_dict(),
            "step": step, "best_val": best_val, "elapsed": elapsed, "rng": ckpt_io.rng_state(), "world": world,
            # each rank carries its own streams' state; rank 0's alone would be wrong for the others
            "hidden": None if hidden is None or world > 1 else (list(hidden) if isinstance(hidden, tuple) else hidden),
        }
        payload["hidden"] = _to_cpu(payload["hidden"])
        ckpt_io.save(run_dir / f"{name}.pt", payload)

    metrics_fh = open(run_dir / "metrics.jsonl", "a", encoding="utf-8") if main else None

    def record(entry: dict[str, Any]) -> None:
        if metrics_fh:
            metrics_fh.write(json.dumps(entry) + "\n")
            metrics_fh.flush()

    if main:
        (run_dir / "config.json").write_text(json.dumps({"domain": domain, "corpus": data.name, **cfg.to_dict(),
                                                         "params": model.num_params()}, indent=2))
        log(f"model: {cfg.n_layer}x{cfg.n_hidden} {cfg.cell}, {model.num_params():,} parameters, device {device}"
            f"{f', {world} processes' if world > 1 else ''}; data: {len(data.ids('train')):,} train chars, "
            f"{batches.steps_per_epoch} steps per epoch")
    bar = None
    if progress and main:
        from tqdm import tqdm

        # disable=None: no bar when stderr is not a terminal (CI logs stay readable)
        bar = tqdm(total=cfg.max_steps, initial=step, unit="step", dynamic_ncols=True, leave=True,
                   disable=None, mininterval=0.5)

    chars_per_step = cfg.batch_size * cfg.seq_len * world
    losses: list[float] = []
    bad_steps, stopped, last_val = 0, "steps", float("nan")
    t_start, t_window, window_steps = time.perf_counter() - elapsed, time.perf_counter(), 0
    amp = autocast_for(device, cfg.precision)

    def run_eval() -> None:
        nonlocal best_val, last_val
        last_val = evaluate(model, data, cfg, device)
        record({"step": step, "val_loss": last_val, "val_bpc": last_val / LN2, "time": time.perf_counter() - t_start})
        if main:
            msg = f"step {step}: val loss {last_val:.4f} nats, {last_val / LN2:.3f} bpc"
            if last_val < best_val:
                best_val = last_val
                save("best")
                msg += " (best so far, saved best.pt)"
            save("last")
            (bar.write if bar else log)(msg)
            plot_losses(run_dir)

    with _Signals() as signals:
        while True:
            if step > 0 and step % cfg.eval_every == 0 and last_val != last_val:  # due and not done yet
                run_eval()
            if main and cfg.sample_every and step % cfg.sample_every == 0:
                write_evolution_sample(run_dir, step, losses[-1] if losses else float("nan"),
                                       evolution_sample(model, data, cfg, step))
            if step >= cfg.max_steps:
                break
            pos = step % batches.steps_per_epoch
            if pos == 0:
                hidden = None  # a new epoch starts every stream from scratch
            x, y = batches.get(pos)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            for g in optimizer.param_groups:
                g["lr"] = lr_at(step, cfg, elapsed)
            with amp:
                logits, new_hidden = net(x, hidden)
                loss = cross_entropy(logits, y)
            if any_rank(not torch.isfinite(loss).item(), world, device):  # all ranks skip together
                bad_steps += 1
                optimizer.zero_grad(set_to_none=True)
                (bar.write if bar else log)(f"step {step}: loss is {loss.item()}, step skipped "
                                            f"({bad_steps}/{MAX_BAD_STEPS} in a row)")
                if bad_steps >= MAX_BAD_STEPS:
                    stopped = "nan"
                    log("training stopped: the loss stayed non-finite. Lower --lr (e.g. by 3x), keep "
                        "--grad-clip at 1.0 or below, or use --precision fp32; last good weights are in last.pt")
                    break
                hidden = None
                step += 1
                continue
            bad_steps = 0
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            hidden = detach_hidden(new_hidden)
            step += 1
            last_val = float("nan")
            loss_val = loss.item()
            losses.append(loss_val)
            window_steps += 1
            elapsed = time.perf_counter() - t_start
            if step % cfg.log_every == 0 or step == cfg.max_steps:
                now = time.perf_counter()
                cps = window_steps * chars_per_step / max(now - t_window, 1e-9)
                t_window, window_steps = now, 0
                record({"step": step, "loss": loss_val, "bpc": loss_val / LN2, "lr": optimizer.param_groups[0]["lr"],
                        "chars_per_s": cps, "time": elapsed})
                if bar:
                    bar.set_postfix(loss=f"{loss_val:.3f}", bpc=f"{loss_val / LN2:.3f}", cps=f"{cps:,.0f}")
            if bar:
                bar.update(1)
            # every rank must leave the loop at the same step, or the next all-reduce hangs
            out_of_time = any_rank(bool(cfg.max_time and elapsed >= cfg.max_time), world, device)
            interrupted = any_rank(signals.caught is not None or (on_step is not None and on_step(step, loss_val)),
                                   world, device)
            if interrupted or out_of_time:
                stopped = "signal" if interrupted else "time"
                break
    if bar:
        bar.close()
    if stopped == "signal":
        save("last")
        log(f"interrupted at step {step}: saved {run_dir / 'last.pt'}; resume with --resume {run_dir / 'last.pt'}")
    elif stopped != "nan":
        if last_val != last_val:
            run_eval()
    else:
        save("last")
    if metrics_fh:
        metrics_fh.close()
    return TrainResult(run_dir, step, best_val, last_val, stopped, losses)


def _to_cpu(obj):
    if obj is None:
        return None
    if isinstance(obj, list):
        return [t.detach().cpu() for t in obj]
    return obj.detach().cpu()


def evolution_sample(model: CharRNN, data: CorpusData, cfg: TrainConfig, step: int) -> str:
    """A short sample at temperature 0.8 with its own seeded generator: the global RNG (and so
    an exact resume) is untouched."""
    from gen.core.sample import SampleOptions, generate

    was = model.training
    model.eval()
    texts, _ = generate(model, data.vocab, SampleOptions(length=cfg.sample_chars, temperature=0.8,
                                                         seed=cfg.seed + step))
    model.train(was)
    return texts[0]


def write_evolution_sample(run_dir: Path, step: int, loss: float, text: str) -> None:
    """Append one labelled sample to samples-during-training.txt (the blog's evolution view)."""
    with open(run_dir / "samples-during-training.txt", "a", encoding="utf-8") as fh:
        label = f"train loss {loss:.3f}" if loss == loss else "untrained"
        fh.write(f"=== step {step} | {label} ===\n{text}\n\n")


def plot_losses(run_dir: Path) -> None:
    """loss.png from metrics.jsonl: training loss and validation loss against step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gen.core.atomic import atomic_write

    train_pts, val_pts = [], []
    for line in (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
        e = json.loads(line)
        if "loss" in e:
            train_pts.append((e["step"], e["loss"]))
        if "val_loss" in e:
            val_pts.append((e["step"], e["val_loss"]))
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if train_pts:
        ax.plot(*zip(*train_pts, strict=True), label="train", alpha=0.7)
    if val_pts:
        ax.plot(*zip(*val_pts, strict=True), "o-", label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/char)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    atomic_write(run_dir / "loss.png", lambda fh: fig.savefig(fh, format="png"))
    plt.close(fig)

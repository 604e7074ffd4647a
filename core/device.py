"""Where a run computes: device choice, autocast precision, and the torchrun process group.

A single process touches nothing distributed; under ``torchrun`` (WORLD_SIZE > 1) every rank
joins one process group (NCCL on GPUs, gloo on CPUs) and the helpers below keep the ranks in
step: they must all leave the training loop at the same step, or the next all-reduce hangs.
"""

from __future__ import annotations

import functools
import os
from contextlib import nullcontext
from typing import Any

import torch
import torch.distributed as dist

from gen.core.config import TrainConfig, check_device
from gen.core.errors import GenError


def pick_device(name: str) -> torch.device:
    """``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``; anything else is a GenError."""
    check_device(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise GenError("--device cuda asked for, but no CUDA GPU is visible; use --device cpu")
    if name.startswith("cuda:") and int(name[5:]) >= torch.cuda.device_count():
        raise GenError(f"--device {name}: this machine has {torch.cuda.device_count()} GPU(s) (cuda:0 ...)")
    return torch.device(name)


@functools.lru_cache(maxsize=8)
def describe_device(device: torch.device) -> str:
    """The machine a run computed on, in words: the GPU's name, or the CPU's model and cores
    (recorded in checkpoints so an exported model card can say where it was trained)."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA), torch {torch.__version__}"
    name = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8", errors="replace"):
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} cores, {torch.get_num_threads()} threads, torch {torch.__version__}"


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


def is_main_process() -> bool:
    """Rank 0 (or a single process): the one that reports and writes."""
    return int(os.environ.get("RANK", "0")) == 0


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

"""Machine side of `gen bench`: matmul peak, peak memory, load and a description of the machine."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any

import torch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:  # "5" resets the process's peak RSS (Linux >= 4.0), so each block gets its own peak
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if platform.system() == "Darwin" else peak / 1024


def matmul_peak(device: torch.device, dtype: torch.dtype, max_n: int, seconds: float = 0.3) -> dict[str, Any]:
    """Best FLOP/s of square matmuls. The size adapts so one try lasts about ``seconds`` (a CPU
    without native bf16 runs bf16 matmuls orders of magnitude slower than fp32)."""
    def rate(n: int, reps: int) -> float:
        a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
        torch.matmul(a, b)
        sync(device)
        t = time.perf_counter()
        for _ in range(reps):
            torch.matmul(a, b)
        sync(device)
        return 2 * n**3 * reps / max(time.perf_counter() - t, 1e-9)

    small = min(512, max_n)
    probe = rate(small, 1)  # small sizes run below peak: take max_n unless one product would be slow
    n = max_n if 2 * max_n**3 / probe < 10 * seconds else int(max(small, (seconds * probe / 2) ** (1 / 3)))
    n = min(max_n, n // 128 * 128 or small)
    reps = max(1, int(seconds * rate(n, 1) / (2 * n**3)))  # a GPU needs many products per timing
    best = max(rate(n, reps) for _ in range(3))
    return {"flops": best, "n": n}


def machine_info(device: torch.device) -> dict[str, Any]:
    info = {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "device": str(device), "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
            "cpu": _cpu_name(), "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    if device.type == "cuda":
        info.update(gpu=torch.cuda.get_device_name(device), cudnn=torch.backends.cudnn.version(),
                    cudnn_tf32=torch.backends.cudnn.allow_tf32, matmul_tf32=torch.backends.cuda.matmul.allow_tf32)
    return info


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None

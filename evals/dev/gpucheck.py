"""The GPU check: one bounded run that proves gen's CUDA paths on a lent GPU (developers only).

Run on the device tool's machine from the repository root, with the folder evals/dev/gpu_wheels.py
filled here carried beside the tree (``.whl``)::

    python3 evals/dev/gpucheck.py --out $OUT          # on the GPU: about 6-8 minutes
    python3 evals/dev/gpucheck.py --dry-run --out DIR # anywhere: every step that needs no CUDA

Each step runs in its own process with a time limit; a step whose prerequisite failed, or that
needs CUDA on a machine without it, is skipped and says why. ``gpucheck.json`` in ``--out`` holds
every figure; the table is printed at the end. It uses the standard library only: gen is not
importable until the first step installs it (with the carried wheels, offline) into a folder of
its own.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORPUS_NAME = "tinyshakespeare.txt"  # evals/dev/gpu_wheels.py copies it beside the wheels
GPU_PYTHON = (3, 12)  # the device tool's image (its KINDS.md)
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64",
             "manylinux_2_5_x86_64")
BF16_PEAK = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12}  # dense bf16 FLOP/s, spec sheets
# seconds each step may take at most (the whole run stays under --budget)
LIMITS = {"install": 90, "environment": 30, "cuda_tests": 120, "bench": 120, "prepare": 30, "train": 200,
          "sampling": 45, "serve": 1}


class Check:
    """The run's state: where gen is installed, what each step found, the time left."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args, self.out, self.started = args, Path(args.out), time.monotonic()
        self.target = Path(args.target or tempfile.mkdtemp(prefix="gen-site-"))
        self.home = Path(tempfile.mkdtemp(prefix="gen-home-"))
        self.steps: dict[str, dict] = {}
        self.env = {**os.environ, "PYTHONPATH": f"{self.target}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
                    "GEN_HOME": str(self.home), "PYTHONUNBUFFERED": "1"}

    def run(self, name: str, cmd: list[str], limit: int | None = None) -> tuple[int, str]:
        """``cmd`` under this step's time limit (and the budget left); (exit code, output)."""
        left = self.args.budget - (time.monotonic() - self.started)
        limit = max(1, int(min(limit or LIMITS[name], left)))
        try:
            proc = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=limit, cwd=ROOT)
        except subprocess.TimeoutExpired as exc:
            out = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
            return 124, out + f"\n(stopped at its {limit} s limit)"
        return proc.returncode, proc.stdout + proc.stderr

    def record(self, name: str, status: str, seconds: float, **found) -> dict:
        self.steps[name] = {"status": status, "seconds": round(seconds, 1), **found}
        return self.steps[name]

    def gen(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "gen.core.cli", *args]

    @property
    def cuda(self) -> bool:
        return bool(self.steps.get("environment", {}).get("cuda"))


def step_install(c: Check) -> None:
    """gen and the carried wheels into a folder of their own, with no network (gen is built from
    the tree with the carried setuptools where there is one: the image's may be too old)."""
    t0, wheels = time.monotonic(), sorted(Path(c.args.wheels).glob("*.whl"))
    tools = sorted((Path(c.args.wheels) / "build").glob("*.whl"))
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
           "--no-build-isolation", "--target"]
    # a dry run on another python checks that the wheels install for the GPU's 3.12, apart
    foreign = sys.version_info[:2] != GPU_PYTHON
    where = c.target / "_gpu_wheels" if foreign else c.target
    as_gpu = ["--python-version", ".".join(map(str, GPU_PYTHON)), "--implementation", "cp", "--only-binary=:all:",
              *[f"--platform={p}" for p in PLATFORMS]] if foreign else []
    for folder, group, extra in ((c.target / "_build", tools, []), (where, wheels, as_gpu)):
        code, out = c.run("install", [*pip, str(folder), *extra, *map(str, group)]) if group else (0, "")
        if code:
            c.record("install", "failed", time.monotonic() - t0, why=out[-600:])
            return
    if tools:  # the build below imports this setuptools first
        c.env["PYTHONPATH"] = f"{c.target / '_build'}{os.pathsep}{c.env['PYTHONPATH']}"
    code, out = c.run("install", [*pip, str(c.target), str(ROOT)])
    if tools:
        c.env["PYTHONPATH"] = c.env["PYTHONPATH"].split(os.pathsep, 1)[1]
    if code:
        c.record("install", "failed", time.monotonic() - t0, why=out[-600:])
        return
    code, out = c.run("install", [sys.executable, "-c", "import gen, gen.core.cli, gen.evals.harness; print(gen.__file__)"])
    ok = code == 0 and out.strip().startswith(str(c.target))
    c.record("install", "ok" if ok else "failed", time.monotonic() - t0, wheels=[w.name for w in wheels],
             **({"wheels_for": f"python {'.'.join(map(str, GPU_PYTHON))} (checked apart)"} if foreign and wheels else {}),
             **({} if ok else {"why": out[-600:]}))


ENV_PROBE = """
import json, platform, torch
cuda = torch.cuda.is_available()
p = torch.cuda.get_device_properties(0) if cuda else None
print(json.dumps({"python": platform.python_version(), "torch": torch.__version__, "cuda": cuda,
                  "gpus": torch.cuda.device_count(), "device": torch.cuda.get_device_name(0) if cuda else None,
                  "memory_gb": round(p.total_memory / 1e9, 1) if p else None,
                  "bf16": bool(cuda and torch.cuda.is_bf16_supported()), "cudnn": torch.backends.cudnn.version()}))
"""


def step_environment(c: Check) -> None:
    t0 = time.monotonic()
    code, out = c.run("environment", [sys.executable, "-c", ENV_PROBE])
    if code:
        c.record("environment", "failed", time.monotonic() - t0, why=out[-600:])
        return
    c.record("environment", "ok", time.monotonic() - t0, **json.loads(out.strip().splitlines()[-1]))


def step_cuda_tests(c: Check) -> None:
    t0 = time.monotonic()
    code, out = c.run("cuda_tests", [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider",
                                     str(ROOT / "tests")])
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|error)", out)}
    c.record("cuda_tests", "ok" if code == 0 else "failed", time.monotonic() - t0, **counts,
             **({} if code == 0 else {"why": out[-1500:]}))


def step_bench(c: Check) -> None:
    t0, path = time.monotonic(), c.out / "bench.json"
    code, out = c.run("bench", c.gen("bench", "--device", "cuda", "--configs",
                                     "2x512:100x100,3x512:100x100,2x512:1024x100", "--precisions", "bf16,fp32",
                                     "--seconds-per-case", "8", "--rounds", "2", "--json", str(path)))
    if code or not path.is_file():
        c.record("bench", "failed", time.monotonic() - t0, why=out[-800:])
        return
    data, rows = json.loads(path.read_text()), []
    peak = next((v for k, v in BF16_PEAK.items() if k in (c.steps["environment"].get("device") or "")), None)
    for case in data["cases"]:
        for prec, t in case["train"].items():
            cps = t["ours"]["chars_per_s"]
            rows.append({"config": case["config"], "precision": prec, "chars_per_s": round(cps),
                         "pct_bf16_peak": round(100 * cps * case["flops_per_char_train"] / peak, 2) if peak else None})
    c.record("bench", "ok", time.monotonic() - t0, training=rows, matmul_peak=data.get("peak"))


def step_prepare(c: Check) -> None:
    t0, src = time.monotonic(), Path(c.args.wheels) / CORPUS_NAME
    if not src.is_file():
        c.record("prepare", "skipped", 0, why=f"no {CORPUS_NAME} in {c.args.wheels} (evals/dev/gpu_wheels.py copies it)")
        return
    code, out = c.run("prepare", c.gen("prepare", "shakespeare", "--src", str(src)))
    c.record("prepare", "ok" if code == 0 else "failed", time.monotonic() - t0, **({} if code == 0 else {"why": out[-600:]}))


def step_train(c: Check) -> None:
    t0 = time.monotonic()
    code, out = c.run("train", c.gen("train", "shakespeare", "--device", "cuda", "--max-time", "3m", "--quiet",
                                     "--run-name", "gpucheck"))
    best = re.search(r"best val loss ([0-9.]+) nats", out)
    rates = [float(x.replace(",", "")) for x in re.findall(r"([0-9,]+) chars/s", out)]
    found = {"best_val_nats": float(best.group(1)) if best else None, "log_tail": out[-600:]}
    if rates:
        found["chars_per_s"] = max(rates)
    c.record("train", "ok" if code == 0 and best else "failed", time.monotonic() - t0, **found)


SAMPLE_PROBE = """
import json, sys, time
from pathlib import Path
from gen.core.config import SampleOptions
from gen.core.models import load_checkpoint
m, ws = load_checkpoint(sys.argv[1]), Path(sys.argv[2])
out = {}
for n, length in ((1, 2000), (64, 500)):
    opts = SampleOptions(n=n, length=length, seed=1, device="cuda", stop=[])
    m.generate(ws, SampleOptions(n=n, length=50, seed=0, device="cuda", stop=[]))  # warm-up
    t0 = time.perf_counter()
    texts, stats = m.generate(ws, opts)
    out[f"streams_{n}"] = {"chars_per_s": round(sum(map(len, texts)) / (time.perf_counter() - t0)),
                           "stepper": stats.stepper}
print(json.dumps(out))
"""


def step_sampling(c: Check) -> None:
    t0, ckpt = time.monotonic(), c.home / "runs" / "shakespeare" / "gpucheck" / "best.pt"
    code, out = c.run("sampling", [sys.executable, "-c", SAMPLE_PROBE, str(ckpt), str(c.home)])
    if code:
        c.record("sampling", "failed", time.monotonic() - t0, why=out[-600:])
        return
    c.record("sampling", "ok", time.monotonic() - t0, **json.loads(out.strip().splitlines()[-1]))


# step, what it needs (earlier steps that must be ok), whether it needs CUDA
STEPS = [(step_install, (), False), (step_environment, ("install",), False),
         (step_cuda_tests, ("install", "environment"), True), (step_bench, ("install", "environment"), True),
         (step_prepare, ("install",), False), (step_train, ("prepare", "environment"), True),
         (step_sampling, ("train",), True)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for gpucheck.json and bench.json")
    parser.add_argument("--wheels", default=str(ROOT / ".whl"), help="the carried wheel folder")
    parser.add_argument("--target", help="where gen is installed (default: a new temporary folder)")
    parser.add_argument("--budget", type=int, default=480, help="seconds for the whole run")
    parser.add_argument("--dry-run", action="store_true", help="skip every step that needs CUDA")
    args = parser.parse_args(argv)
    c = Check(args)
    c.out.mkdir(parents=True, exist_ok=True)
    for fn, needs, needs_cuda in STEPS:
        name = fn.__name__.removeprefix("step_")
        missing = [n for n in needs if c.steps.get(n, {}).get("status") != "ok"]
        if missing:
            c.record(name, "skipped", 0, why=f"needs {', '.join(missing)}, which did not succeed")
        elif needs_cuda and (args.dry_run or not c.cuda):
            c.record(name, "skipped", 0, why="dry run: no CUDA step runs" if args.dry_run else "no CUDA device here")
        elif time.monotonic() - c.started >= args.budget:
            c.record(name, "skipped", 0, why=f"the {args.budget} s budget is spent")
        else:
            fn(c)
    c.record("serve", "skipped", 0, why="gen serve does not exist yet")
    report = {"dry_run": args.dry_run, "seconds": round(time.monotonic() - c.started, 1), "steps": c.steps}
    (c.out / "gpucheck.json").write_text(json.dumps(report, indent=2))
    print(table(report))
    failed = [n for n, s in c.steps.items() if s["status"] == "failed"]
    return 1 if failed else 0


def table(report: dict) -> str:
    """One line per step: status, seconds, and its figures or why it did not run."""
    lines = [f"gen GPU check{' (dry run)' if report['dry_run'] else ''}: {report['seconds']} s",
             f"{'step':12} {'status':8} {'s':>6}  figures"]
    for name, s in report["steps"].items():
        figures = {k: v for k, v in s.items() if k not in ("status", "seconds", "why", "log_tail")}
        detail = s.get("why", "").strip().splitlines()[-1][:100] if s.get("why") else json.dumps(figures)[:160]
        lines.append(f"{name:12} {s['status']:8} {s['seconds']:>6}  {detail}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

"""`gen bench`: training and sampling throughput of the engine, against plain-PyTorch baselines.

For each model configuration, in one run and side by side:
  * the machine's matmul peak (large square ``torch.matmul``, best of a few) per precision;
  * our training: ``gen.core.train.train`` itself (the exact path a user runs) on a synthetic
    prepared corpus, timed between its ``on_step`` callbacks; FLOP/s against the peak;
  * ``ref``: a minimal plain-PyTorch loop (nn.Embedding + nn.LSTM + nn.Linear, Adam) on the
    same batches, and ``cell``: a per-timestep ``nn.LSTMCell`` loop as char-rnn-style ports do;
  * sampling chars/s with ``gen.core.sample.sample`` (1 and 64 streams) and, for 1 stream,
    the per-character ``nn.LSTM`` call (the model's own forward, one character at a time);
  * peak memory: process peak RSS (reset per block through /proc/self/clear_refs) on CPU,
    ``torch.cuda.max_memory_allocated`` on GPU.
The variants are interleaved (ours, ref, cell, ours, ref, cell, ...): the reference blocks run
inside our training's ``on_step`` callback, outside our timed windows, so machine noise hits
every variant alike. Figures are medians over blocks.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from gen.core.atomic import atomic_write_text
from gen.core.config import TrainConfig
from gen.core.data import CorpusData, StreamBatches
from gen.core.device import autocast_for, pick_device
from gen.core.model import CharRNN, ModelArgs, flops_per_char, int8_available
from gen.core.precision import SAMPLE_DTYPES, nll_drift, pick_precision, probe, sampling_dtype, sampling_name
from gen.core.sample import SampleOptions, sample
from gen.core.train import train
from gen.core.vocab import Vocab
from gen.core.workspace import CorpusDir
from gen.evals.bench.machine import loadavg, machine_info, matmul_peak, peak_mb, reset_peak, sync

VOCAB = 65  # tiny-shakespeare's character count: char-rnn's benchmark data
PRESETS = {"2x128": (32, 64), "2x512": (100, 100), "3x512": (100, 100)}  # config -> (batch, seq)
DEFAULT_CONFIGS = "2x128,2x512,3x512"
QUICK_CONFIGS = "1x32:4x8,2x48:8x16"
FLOP_FORMULA = ("gen.core.model.flops_per_char: per char, forward = sum over layers 2*4*H*(in+H) + 2*H*V "
                "(in = n_embd for layer 0, H above); training = 3 x forward; sampling = forward")
STREAMS = (1, 64)
Runner = Callable[[int], None]  # runs n training steps of one variant (synchronised at the end)


@dataclass
class Case:
    name: str
    n_layer: int
    n_hidden: int
    batch: int
    seq: int

    def args(self, vocab: int = VOCAB) -> ModelArgs:
        return ModelArgs(vocab_size=vocab, n_layer=self.n_layer, n_hidden=self.n_hidden,
                         n_embd=TrainConfig.n_embd)


def parse_config(text: str) -> Case:
    """'2x512' (preset batch/seq, else 100x100) or '2x512:100x100' (layers x hidden : batch x seq)."""
    model, _, data = text.strip().partition(":")
    try:
        n_layer, n_hidden = (int(v) for v in model.split("x"))
        batch, seq = (int(v) for v in data.split("x")) if data else PRESETS.get(model, (100, 100))
    except ValueError:
        raise ValueError(f"bad config {text!r}: use LAYERSxHIDDEN[:BATCHxSEQ], e.g. 2x512 or 2x512:100x100") from None
    return Case(text.strip(), n_layer, n_hidden, batch, seq)


# ------------------------------------------------------------------------------------ baselines
class RefLSTM(nn.Module):
    """The model as a plain-PyTorch user writes it: fused ``nn.LSTM``, or ``nn.LSTMCell`` stepped
    over time in Python (per_step=True), as char-rnn-style ports do."""

    def __init__(self, args: ModelArgs, per_step: bool = False) -> None:
        super().__init__()
        self.per_step = per_step
        self.embed = nn.Embedding(args.vocab_size, args.n_embd)
        if per_step:
            self.cells = nn.ModuleList(nn.LSTMCell(args.n_embd if k == 0 else args.n_hidden, args.n_hidden)
                                       for k in range(args.n_layer))
        else:
            self.lstm = nn.LSTM(args.n_embd, args.n_hidden, args.n_layer, batch_first=True)
        self.head = nn.Linear(args.n_hidden, args.vocab_size)

    def forward(self, x: torch.Tensor, state):
        e = self.embed(x)
        if not self.per_step:
            if e.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
                # as CharRNN does: under CPU autocast, oneDNN's LSTM fails on fp32 input
                e = e.to(torch.get_autocast_dtype("cpu"))
            out, state = self.lstm(e, state)
            return self.head(out), state
        if state is None:
            z = e.new_zeros(x.size(0), self.cells[0].hidden_size, dtype=torch.float32)
            state = [(z, z)] * len(self.cells)
        outs = []
        for t in range(x.size(1)):
            inp, new = e[:, t], []
            for cell, hc in zip(self.cells, state, strict=True):
                h, c = cell(inp, hc)
                new.append((h, c))
                inp = h
            state = new
            outs.append(inp)
        return self.head(torch.stack(outs, 1)), state


def _detach(state):
    if isinstance(state, torch.Tensor):
        return state.detach()
    return type(state)(_detach(s) for s in state)


def ref_runner(case: Case, batches: StreamBatches, device: torch.device, precision: str,
               per_step: bool) -> Runner:
    """A minimal training loop: Adam, carried hidden state, the same batches as ours, no extras."""
    model = RefLSTM(case.args(), per_step).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    amp = autocast_for(device, precision)
    pos, state = 0, None

    def run(n: int) -> None:
        nonlocal pos, state
        for _ in range(n):
            x, y = batches.get(pos)
            pos += 1
            x, y = x.to(device), y.to(device)
            with amp:
                logits, state = model(x, state)
                loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), y.reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            state = _detach(state)
        sync(device)

    return run


# ------------------------------------------------------------------------------ training bench
def synthetic_corpus(path: Path, case: Case, steps: int = 8, seed: int = 0) -> CorpusData:
    """A prepared corpus folder of random characters: ``steps`` batches per epoch, one val batch.
    Throughput does not depend on the text, and no real corpus has to be present."""
    vocab = Vocab(chr(c) for c in range(32, 32 + VOCAB))
    rng = np.random.default_rng(seed)
    folder = CorpusDir(path)
    path.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", case.batch * case.seq * steps + 1), ("val", case.batch * case.seq + 1)):
        rng.integers(0, VOCAB, n, dtype=np.uint8).tofile(folder.ids(split))
    vocab.save(folder.vocab)
    atomic_write_text(folder.meta, '{"corpus": "bench", "domain": "bench", "separator": "\\n"}')
    return CorpusData(path)


class Interleaver:
    """``on_step`` callback for ``train``: times blocks of our steps and runs the other variants'
    blocks between them (outside our timed windows). Returns True (stop) when done."""

    def __init__(self, others: dict[str, Runner], device: torch.device, rounds: int, budget_s: float,
                 warm: int = 2) -> None:
        self.others, self.device, self.rounds, self.warm = others, device, rounds, warm
        self.block_s = budget_s / (rounds * (1 + len(others)))  # seconds per timed block
        self.names = ["ours", *others]
        # per block: (wall seconds, CPU seconds of this process) per step
        self.step_s: dict[str, list[tuple[float, float]]] = {n: [] for n in self.names}
        self.peak: dict[str, float] = dict.fromkeys(self.names, 0.0)
        self.k: dict[str, int] = {}
        self.last = time.perf_counter()
        self.end_step, self.done_rounds, self.finished = 0, 0, False

    def _steps_for(self, seconds_per_step: float) -> int:
        return max(1, round(self.block_s / max(seconds_per_step, 1e-9)))

    def __call__(self, step: int, loss: float) -> bool:
        now = time.perf_counter()
        if not self.k:  # warm-up phase
            if step < self.warm:
                self.last = now
                return False
            self.k["ours"] = self._steps_for(now - self.last)
            for name, run in self.others.items():
                run(self.warm if now - self.last < self.block_s else 1)
                t = time.perf_counter()
                run(1)
                self.k[name] = self._steps_for(time.perf_counter() - t)
            self._start_ours(step)
            return False
        if step < self.end_step:
            return False
        cpu, k = time.process_time(), self.k["ours"]
        self.step_s["ours"].append(((now - self.start) / k, (cpu - self.start_cpu) / k))
        self.peak["ours"] = max(self.peak["ours"], peak_mb(self.device))
        for name, run in self.others.items():
            reset_peak(self.device)
            t, c, k = time.perf_counter(), time.process_time(), self.k[name]
            run(k)
            self.step_s[name].append(((time.perf_counter() - t) / k, (time.process_time() - c) / k))
            self.peak[name] = max(self.peak[name], peak_mb(self.device))
        self.done_rounds += 1
        if self.done_rounds >= self.rounds:  # the budget sizes blocks; rounds always complete (medians)
            self.finished = True
            return True
        self._start_ours(step)
        return False

    def _start_ours(self, step: int) -> None:
        reset_peak(self.device)
        self.end_step = step + self.k["ours"]
        self.start, self.start_cpu = time.perf_counter(), time.process_time()


def bench_training(case: Case, device: torch.device, precision: str, rounds: int, budget_s: float,
                   workdir: Path, warm: int = 2) -> dict[str, Any]:
    """Ours vs ref vs cell for one case and precision; chars/s medians and peak memory."""
    data = synthetic_corpus(workdir / "corpus", case)
    batches = StreamBatches(data.ids("train"), case.batch, case.seq)
    others = {"ref": ref_runner(case, batches, device, precision, per_step=False),
              "cell": ref_runner(case, batches, device, precision, per_step=True)}
    inter = Interleaver(others, device, rounds, budget_s, warm)
    cfg = TrainConfig(n_layer=case.n_layer, n_hidden=case.n_hidden, batch_size=case.batch, seq_len=case.seq,
                      max_steps=10**9, eval_every=10**9, eval_chars=case.batch * case.seq, log_every=10,
                      device=str(device), precision=precision)
    run_dir = workdir / f"run-{precision}"
    run_dir.mkdir(parents=True, exist_ok=True)
    res = train(data, cfg, run_dir, "bench", log=lambda _msg: None, progress=False, on_step=inter)
    if not inter.finished:
        raise KeyboardInterrupt(f"training stopped early ({res.stopped}) at step {res.step}")
    chars = case.batch * case.seq
    out: dict[str, Any] = {}
    for name in inter.names:
        cps = [chars / wall for wall, _ in inter.step_s[name]]
        out[name] = {"chars_per_s": statistics.median(cps), "blocks": [round(c, 1) for c in cps],
                     # chars per CPU-second of this process: steadier than wall time on a shared machine
                     "chars_per_cpu_s": statistics.median(chars / max(cpu, 1e-9) for _, cpu in inter.step_s[name]),
                     "steps_per_block": inter.k[name], "peak_mem_mb": round(inter.peak[name], 1)}
    for name in inter.others:  # paired: each of our blocks against the other variant's next block
        out[f"ratio_{name}"] = statistics.median(theirs / ours for (theirs, _), (ours, _) in
                                                 zip(inter.step_s[name], inter.step_s["ours"], strict=True))
    return out


# ------------------------------------------------------------------------------ sampling bench
@torch.no_grad()
def _per_char_nn_lstm(model: CharRNN, length: int, seed: int) -> None:
    """What a plain sampler does: the model's forward (nn.LSTM) on one character at a time. On
    one thread, as sample() runs a single stream, so the speedup compares the steps alone."""
    gen = torch.Generator().manual_seed(seed)
    x, hidden, threads = torch.zeros(1, 1, dtype=torch.long), None, torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(length):
            logits, hidden = model(x, hidden)
            x = torch.multinomial(torch.softmax(logits[:, -1], -1), 1, generator=gen)
    finally:
        torch.set_num_threads(threads)


def bench_sampling(case: Case, rounds: int, budget_s: float, bf16: bool = True) -> dict[str, Any]:
    """sample() chars/s on the CPU for 1 and 64 streams with the fp32 stepper (``ours_N``), the
    bf16 one (``bf16_N``, with ``bf16``) and the int8 one (``int8_N``, where the x86 kernels
    exist), and the per-char nn.LSTM call for 1 stream; which stepper ``--precision auto`` picks
    for 1 and for 64 streams, and how far each low precision moves the model's NLL (random
    weights here: the figure for a trained model is in BENCHMARKS.md)."""
    torch.manual_seed(0)
    vocab = Vocab(chr(c) for c in range(32, 32 + VOCAB))
    model = CharRNN(case.args(len(vocab))).eval()

    def run(n: int, precision: str) -> Callable[[int], None]:
        return lambda length: sample(model, vocab, SampleOptions(n=n, length=length, seed=1, precision=precision))

    lows = (["bf16"] if bf16 else []) + (["int8"] if int8_available() else [])
    runs: dict[str, Callable[[int], None]] = {f"ours_{n}": run(n, "fp32") for n in STREAMS}
    for low in lows:
        runs.update({f"{low}_{n}": run(n, low) for n in STREAMS})
    runs["nn_lstm_1"] = lambda length: _per_char_nn_lstm(model, length, 1)
    lengths = {}
    for name, fn in runs.items():  # warm up, then size each run to its share of the budget
        fn(4)
        # per character, without the per-call set-up (the int8 stepper packs its weights in ~0.1 s)
        t0 = time.perf_counter()
        fn(8)
        t1 = time.perf_counter()
        fn(40)
        per_char = max(time.perf_counter() - t1 - (t1 - t0), 1e-6) / 32
        lengths[name] = max(8, int(budget_s / (rounds * len(runs)) / per_char))
    cps: dict[str, list[float]] = {name: [] for name in runs}
    cpu_cps: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, fn in runs.items():
            chars = int(name.rsplit("_", 1)[1]) * lengths[name]
            t, c = time.perf_counter(), time.process_time()
            fn(lengths[name])
            cps[name].append(chars / (time.perf_counter() - t))
            cpu_cps[name].append(chars / max(time.process_time() - c, 1e-9))
    out: dict[str, Any] = {
        name: {"chars_per_s": statistics.median(v), "blocks": [round(c, 1) for c in v],
               "chars_per_cpu_s": statistics.median(cpu_cps[name]), "length": lengths[name]}
        for name, v in cps.items()}
    out["speedup_1"] = statistics.median(a / b for a, b in zip(cps["ours_1"], cps["nn_lstm_1"], strict=True))
    for n in STREAMS:
        out[f"auto_{n}"] = sampling_name(sampling_dtype(model, torch.device("cpu"), streams=n))
    out["nll_drift"] = {low: nll_drift(model, dtype=SAMPLE_DTYPES[low]) for low in lows}
    return out


# ------------------------------------------------------------------------------------ the run
def run_bench(configs: str | None = None, quick: bool = False, seconds_per_case: float | None = None,
              device: str = "auto", precisions: tuple[str, ...] | None = None, rounds: int | None = None,
              threads: int = 0, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Measure every case; returns the JSON-ready result (see BENCHMARKS.md for the fields).
    ``precisions`` None means fp32 and bf16, except bf16 training on a CPU without native bf16
    (a full run would take hours there); ``()`` measures sampling only. ``threads`` > 0 sets
    torch's CPU threads (on a busy machine 1 avoids OpenMP stalls)."""
    if threads:
        torch.set_num_threads(threads)
    dev = pick_device(device)
    cases = [parse_config(c) for c in (configs or (QUICK_CONFIGS if quick else DEFAULT_CONFIGS)).split(",") if c]
    seconds = seconds_per_case if seconds_per_case is not None else (1.0 if quick else 60.0)
    rounds = rounds or (2 if quick else 3)
    load0, wall0, cpu0 = loadavg(), time.perf_counter(), time.process_time()
    result: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": machine_info(dev),
                              "quick": quick, "seconds_per_case": seconds, "rounds": rounds,
                              "flop_formula": FLOP_FORMULA, "vocab": VOCAB, "peak": {}, "cases": [], "notes": []}
    log(f"planned: {len(cases)} config(s) x about {seconds:.0f} s = about {len(cases) * seconds / 60:.1f} min, "
        f"after a few seconds measuring the matmul peak (rounds always complete, so it may run over)")
    max_n = (1024 if quick else 8192) if dev.type == "cuda" else (256 if quick else 2048)
    for prec in ("fp32", "bf16"):  # both always: sampling runs in fp32, the bf16 figure decides below
        dtype = torch.float32 if prec == "fp32" else torch.bfloat16
        result["peak"][prec] = matmul_peak(dev, dtype, max_n, 0.05 if quick else 0.3)
        log(f"matmul peak {prec}: {result['peak'][prec]['flops'] / 1e9:,.1f} GFLOP/s "
            f"(n={result['peak'][prec]['n']})")
    slow_bf16 = dev.type == "cpu" and result["peak"]["bf16"]["flops"] < 0.1 * result["peak"]["fp32"]["flops"]
    if precisions is None:
        precisions = ("fp32",) if slow_bf16 and not quick else ("fp32", "bf16")
        if slow_bf16 and not quick:
            result["notes"].append("bf16 training skipped: this CPU has no native bf16 (bf16 matmul "
                                   f"{result['peak']['bf16']['flops'] / 1e9:.2g} vs fp32 "
                                   f"{result['peak']['fp32']['flops'] / 1e9:.3g} GFLOP/s); --precisions fp32,bf16 "
                                   "forces it")
    result["precisions"] = list(precisions)
    with tempfile.TemporaryDirectory(prefix="gen-bench-") as tmp:
        for case in cases:
            args = case.args()
            entry: dict[str, Any] = {"config": case.name, "n_layer": case.n_layer, "n_hidden": case.n_hidden,
                                     "batch": case.batch, "seq": case.seq, "params": CharRNN(args).num_params(),
                                     "flops_per_char_train": flops_per_char(args, True),
                                     "flops_per_char_sample": flops_per_char(args, False), "train": {}}
            entry["auto"] = auto_pick(args, dev)
            log(f"{case.name}: precision=auto picks {entry['auto']['pick']} ({entry['auto']['why']})")
            for prec in precisions:
                log(f"{case.name}: training {prec} ...")
                tr = bench_training(case, dev, prec, rounds, 0.8 * seconds / len(precisions),
                                    Path(tmp) / case.name)
                peak = result["peak"][prec]["flops"]
                for name in ("ours", "ref", "cell"):
                    tr[name]["flops_per_s"] = tr[name]["chars_per_s"] * entry["flops_per_char_train"]
                    tr[name]["pct_peak"] = 100 * tr[name]["flops_per_s"] / peak
                entry["train"][prec] = tr
            if {"fp32", "bf16"} <= set(entry["train"]):
                t = entry["train"]
                entry["auto"]["measured"] = t["bf16"]["ours"]["chars_per_s"] / t["fp32"]["ours"]["chars_per_s"]
            log(f"{case.name}: sampling ...")
            entry["sample"] = sample = bench_sampling(case, rounds, 0.2 * seconds, bf16=not slow_bf16)
            for n in STREAMS:  # sampling runs on the CPU: a GPU run's peak does not apply
                cps = sample[f"ours_{n}"]["chars_per_s"]
                sample[f"ours_{n}"]["pct_peak"] = (100 * cps * entry["flops_per_char_sample"] / result["peak"]["fp32"]
                                                   ["flops"] if dev.type == "cpu" else None)
            result["cases"].append(entry)
    for prec in result["peak"]:  # again at the end: a burst of load at the start must not lower the peak
        again = matmul_peak(dev, torch.float32 if prec == "fp32" else torch.bfloat16, max_n, 0.05 if quick else 0.3)
        result["peak"][prec]["flops_end"] = again["flops"]
        if again["flops"] > result["peak"][prec]["flops"]:
            _rescale(result, prec, again["flops"])
    wall = time.perf_counter() - wall0
    result["load"] = {"loadavg_start": load0, "loadavg_end": loadavg(), "wall_s": round(wall, 1),
                      "cpu_share": round((time.process_time() - cpu0) / (wall * torch.get_num_threads()), 3)}
    result["targets"] = check_targets(result)
    return result


def auto_pick(args: ModelArgs, device: torch.device) -> dict[str, Any]:
    """What ``precision = "auto"`` picks for this shape, measured afresh (the cache is not read:
    the bench shows the probe's ratio beside the one the full training rows measure)."""
    if device.type == "cpu":
        pick = probe(args)
    else:
        pick = pick_precision(args, device)
    return {"pick": pick.precision, "probe": pick.speedup, "why": pick.why}


def _rescale(result: dict[str, Any], prec: str, peak: float) -> None:
    """Use a higher peak measured later: every %peak figure of that precision follows."""
    old, result["peak"][prec]["flops"] = result["peak"][prec]["flops"], peak
    for c in result["cases"]:
        for t in ([c["train"][prec][n] for n in ("ours", "ref", "cell")] if prec in c["train"] else []):
            t["pct_peak"] *= old / peak
        if prec == "fp32":
            for n in STREAMS:
                if c["sample"][f"ours_{n}"].get("pct_peak") is not None:
                    c["sample"][f"ours_{n}"]["pct_peak"] *= old / peak


def check_targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets (stated for the 2-core CPU) that this run's cases can answer."""
    out = []

    def add(name: str, value: float, target: float) -> None:
        out.append({"name": name, "value": value, "target": target, "met": bool(value >= target)})

    for c in result["cases"]:
        if "fp32" in c["train"]:
            add(f"{c['config']} fp32 training / reference loop", c["train"]["fp32"]["ratio_ref"], 0.95)
        if c["config"] == "2x512":
            if "bf16" in c["train"]:
                add("2x512 bf16 training, % of bf16 matmul peak", c["train"]["bf16"]["ours"]["pct_peak"], 70.0)
            s = c["sample"]
            for n, target in ((1, 4000.0), (64, 60000.0)):  # the stepper --precision auto picks
                prec = s.get(f"auto_{n}", "fp32")
                if f"{prec}_{n}" not in s:  # fp32's rows are "ours"; a stepper not measured counts as fp32
                    prec = "fp32"
                key = f"ours_{n}" if prec == "fp32" else f"{prec}_{n}"
                add(f"2x512 sampling, {n} stream{'s' * (n > 1)} ({prec}), chars/s", s[key]["chars_per_s"], target)
    return out

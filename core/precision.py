"""``precision = "auto"``: pick fp32 or bf16 autocast by measuring, not by guessing.

On a GPU bf16 is used where the device supports it. On a CPU it depends on the chip: with native
bf16 (AVX512_BF16 / AMX) bf16 autocast trains 2x512 LSTMs about twice as fast as fp32, and on a
chip with no bf16 units it is many times slower (evals/BENCHMARKS.md, "Current figures"). So a
short probe builds the run's own model shape, times forward/backward/optimizer steps in each
precision in turn (fp32, bf16, fp32, ...: a busy neighbour on a shared host slows both alike; the
fastest step of each is compared), and picks bf16 when it is at least ``BF16_MIN_SPEEDUP`` faster
and its loss is finite. The answer is cached per machine, torch version, thread count and model
shape (a JSON file in the workspace), so later runs start at once. ``GEN_PRECISION_PROBE=fp32|bf16``
forces the probe's answer (tests, or a user who knows).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gen.core.atomic import atomic_write_text
from gen.core.model import CharRNN, ModelArgs, cross_entropy, int8_available

BF16_MIN_SPEEDUP = 1.2  # below this the rounding of bf16 is not worth it
PROBE_CHARS = 512  # characters per probe step: (B, T) = (16, 32); big enough for real matmuls
PROBE_STEPS = 3  # timed steps per precision (at least), after one warm-up step
PROBE_SECONDS = 1.0  # ... and at least this long in all: the fastest step of each is compared
GIVE_UP = 15  # a first bf16 step this many fp32 steps long: a chip without bf16 units, fp32
FORCE_ENV = "GEN_PRECISION_PROBE"
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


@dataclass
class Pick:
    precision: str  # "fp32" | "bf16"
    speedup: float | None  # measured bf16 speed / fp32 speed (None: not measured)
    why: str  # one line for the training log, e.g. "probe: 2.3x fp32 on this CPU"
    cached: bool = False


def machine_id() -> str:
    """CPU model, family and the flags that matter, torch version and thread count. Two chips
    that print the same name (``AMD EPYC`` is both a Zen 3 and a Zen 5) differ in their flags."""
    info = {"cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
            "threads": torch.get_num_threads()}
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
        fields = dict(line.split(":", 1) for line in text.splitlines()[:40] if ":" in line)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        flags = sorted(f for f in fields.get("flags", "").split() if "avx" in f or "amx" in f or "bf16" in f)
        info["cpu"] = f"{fields.get('model name', info['cpu'])} family {fields.get('cpu family', '?')} " \
                      f"model {fields.get('model', '?')} {hashlib.sha1(' '.join(flags).encode()).hexdigest()[:8]}"
    except (OSError, ValueError):
        pass
    return json.dumps(info, sort_keys=True)


def _shape_key(args: ModelArgs) -> str:
    return f"{args.cell}{args.n_layer}x{args.n_hidden}e{args.n_embd}v{args.vocab_size}"


def timed_step(model: CharRNN, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
               bf16: bool) -> tuple[float, bool]:
    """Seconds of one training step (forward, backward, optimizer) and whether its loss was finite."""
    t = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        logits, _ = model(x)  # (B, T, V)
        loss = cross_entropy(logits, y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return time.perf_counter() - t, bool(torch.isfinite(loss))


def fastest_step(model: CharRNN, opt: torch.optim.Optimizer, x: torch.Tensor, bf16: bool, steps: int,
                 min_seconds: float) -> float:
    """Seconds of the fastest of at least ``steps`` training steps and ``min_seconds``, after one
    warm-up step (oneDNN builds its kernels then). The fastest, not the median: on a shared host
    a neighbour only ever slows a step down."""
    timed_step(model, opt, x, x, bf16)
    times: list[float] = []
    while len(times) < steps or sum(times) < min_seconds:
        times.append(timed_step(model, opt, x, x, bf16)[0])
    return min(times)


def probe(args: ModelArgs, steps: int = PROBE_STEPS) -> Pick:
    """Time the model's own shape in fp32 and in bf16 autocast, a step of each in turn (a busy
    neighbour then slows both alike), and compare the fastest step of each: about a second. A
    chip whose first bf16 step takes ``GIVE_UP`` fp32 steps has no bf16 units: no more timing."""
    times: dict[bool, list[float]] = {False: [], True: []}
    finite = {False: True, True: True}
    with torch.random.fork_rng(devices=[]):  # the run's own seeded RNG stream is left untouched
        torch.manual_seed(0)
        x = torch.randint(args.vocab_size, (16, PROBE_CHARS // 16))  # (B, T)
        y = torch.randint(args.vocab_size, (16, PROBE_CHARS // 16))
        runs = {}
        for bf16 in (False, True):
            model = CharRNN(args)
            runs[bf16] = (model, torch.optim.AdamW(model.parameters(), lr=1e-3))

        def step(bf16: bool) -> None:
            seconds, ok = timed_step(*runs[bf16], x, y, bf16)
            times[bf16].append(seconds)
            finite[bf16] = finite[bf16] and ok

        for bf16 in (False, False, True):  # each one's warm-up, and an fp32 step to give up by
            step(bf16)
        while times[True][0] < GIVE_UP * times[False][1] and (
                len(times[True]) <= steps or sum(times[True][1:] + times[False][1:]) < PROBE_SECONDS):
            step(True)
            step(False)
    t32, t16 = min(times[False][1:]), min(times[True][1:] or times[True])
    speedup = t32 / t16
    if not finite[True] and finite[False]:
        return Pick("fp32", speedup, "probe: bf16 gave a non-finite loss on this CPU")
    pick = "bf16" if speedup >= BF16_MIN_SPEEDUP else "fp32"
    return Pick(pick, speedup, f"probe: bf16 {speedup:.2f}x fp32 on this CPU")


def settle(cfg: Any, args: ModelArgs, device: torch.device, cache: Path | None = None) -> str:
    """Decide ``cfg.precision = "auto"`` for this model on this device, in place (the value
    remembers why); returns the line that says so. `gen train` settles it once, in its plan
    (core/plan.py); :func:`gen.core.train.train` settles it only when called with "auto"."""
    pick = pick_precision(args, device, cache)
    cfg.update({"precision": pick.precision}, f"auto: {pick.why}")
    return f"precision: {pick.precision} ({pick.why})"


def pick_precision(args: ModelArgs, device: torch.device, cache: Path | None = None) -> Pick:
    """The precision ``auto`` means for this model on this device (see the module docstring)."""
    if device.type == "cuda":
        ok = torch.cuda.is_bf16_supported()
        return Pick("bf16" if ok else "fp32", None, "GPU with bf16" if ok else "GPU without bf16")
    forced = _forced()
    if forced:
        return Pick(forced, None, f"forced by {FORCE_ENV}")
    key = f"{machine_id()}|{_shape_key(args)}"
    table = read_cache(cache) if cache else {}
    if key in table:
        e = table[key]
        return Pick(e["precision"], e.get("speedup"), f"{e['why']}, cached", cached=True)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # every rank would time the shared cores at once and might disagree: no probe here
        return Pick("fp32", None, "no probe under torchrun (run once without torchrun to measure)")
    pick = probe(args)
    if cache:
        table[key] = {"precision": pick.precision, "speedup": pick.speedup, "why": pick.why,
                      "measured": time.strftime("%Y-%m-%d %H:%M:%S")}
        atomic_write_text(cache, json.dumps(table, indent=1, sort_keys=True) + "\n")
    return pick


def _forced() -> str | None:
    """The answer GEN_PRECISION_PROBE forces (training and sampling alike), or None."""
    forced = os.environ.get(FORCE_ENV, "").strip()
    if not forced:
        return None
    if forced not in DTYPES:
        from gen.core.errors import GenError

        raise GenError(f"{FORCE_ENV}={forced!r}: set it to fp32 or bf16, or unset it to measure")
    return forced


def read_cache(path: Path) -> dict:
    """The cache, or {} when it is missing or damaged (it is only a cache: measure again)."""
    try:
        table = json.loads(path.read_text(encoding="utf-8"))
        return table if isinstance(table, dict) else {}
    except (OSError, ValueError):
        return {}


# Sampling. One stream of a big model reads every weight once per character, so bf16 weights
# halve the bytes; many streams are compute-bound, where native bf16 units help. On a chip
# without them bf16 products are emulated and slower, and small models gain nothing (their
# weights sit in cache): see evals/BENCHMARKS.md, "Sampling precision".
SAMPLE_BF16_MIN_HIDDEN = 256  # below this the fp32 stepper was as fast or faster (measured)
# one stream is latency-bound (rounding its tiny products costs more than the bytes it saves);
# more streams are compute-bound, where bf16 units pay (BENCHMARKS.md, "Sampling precision")
SAMPLE_BF16_MIN_STREAMS = 8
# int8 weights (fbgemm) gain nothing on small models, whose weights sit in cache
# (BENCHMARKS.md, "int8 sampling")
SAMPLE_INT8_MIN_HIDDEN = 256
SAMPLE_MAX_NLL_DRIFT = 0.01  # nats/char: low-precision sampling must score text within this of fp32
SAMPLE_CHECK_CHARS = 64
# int8 is the lever on a CPU without bf16 units: a quarter of fp32's weight bytes for one stream,
# int8 arithmetic for many (evals/BENCHMARKS.md, "int8 sampling")
SAMPLE_DTYPES = {**DTYPES, "int8": torch.qint8}


def native_bf16() -> bool:
    """Whether oneDNN runs bf16 on this CPU natively (AVX512_BF16 or AMX), not by emulation."""
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(check()) if check is not None else False


def sampling_dtype(model: CharRNN, device: torch.device, precision: str = "auto", streams: int = 1) -> torch.dtype:
    """The dtype the fused stepper runs in: fp32, bf16 or int8 (``torch.qint8``: int8 weights).

    ``auto``: a GPU's bf16 where supported. On a CPU, for a hidden size of at least
    ``SAMPLE_BF16_MIN_HIDDEN``: bf16 with native bf16 units and at least
    ``SAMPLE_BF16_MIN_STREAMS`` streams; else int8 where the x86 int8 kernels exist; else fp32.
    A low precision is kept only if the model scores its own fp32 sample within
    ``SAMPLE_MAX_NLL_DRIFT`` nats/char in it (checked per model, a few milliseconds). Deterministic
    on a given machine: no timing decides it, so a seeded sample repeats. ``GEN_PRECISION_PROBE``
    forces fp32 or bf16 as for training."""
    if precision == "int8" and (device.type != "cpu" or not int8_available()):
        from gen.core.errors import GenError

        where = "this torch has no x86 int8 kernels" if device.type == "cpu" else f"int8 runs on the CPU, not {device}"
        raise GenError(f"--precision int8: {where}; use --precision fp32 or bf16 (or auto)")
    if precision in SAMPLE_DTYPES:
        return SAMPLE_DTYPES[precision]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    forced = _forced()
    if forced:
        return DTYPES[forced]
    hidden = model.args.n_hidden
    if native_bf16() and streams >= SAMPLE_BF16_MIN_STREAMS and hidden >= SAMPLE_BF16_MIN_HIDDEN:
        low = torch.bfloat16
    elif int8_available() and hidden >= SAMPLE_INT8_MIN_HIDDEN:
        low = torch.qint8
    else:
        return torch.float32
    return low if _drift_ok(model, low) else torch.float32


# model -> {dtype: (its weights' versions, verdict)}: the drift check (~0.2 s for 2x512) runs once
# per model and weights, not at every sample() call (a temperature sweep, samples during training)
_verdicts: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _drift_ok(model: CharRNN, dtype: torch.dtype) -> bool:
    """``nll_drift(model, dtype) <= SAMPLE_MAX_NLL_DRIFT``, remembered until a weight changes
    (every in-place update, an optimizer step or a load, bumps a tensor's version counter)."""
    versions = tuple(p._version for p in model.parameters())
    seen = _verdicts.setdefault(model, {})
    if dtype not in seen or seen[dtype][0] != versions:
        seen[dtype] = (versions, nll_drift(model, dtype=dtype) <= SAMPLE_MAX_NLL_DRIFT)
    return seen[dtype][1]


def sampling_name(dtype: torch.dtype) -> str:
    """``torch.qint8`` -> "int8": the name users give ``--precision``."""
    return next(k for k, v in SAMPLE_DTYPES.items() if v == dtype)


@torch.no_grad()
def nll_drift(model: CharRNN, chars: int = SAMPLE_CHECK_CHARS, dtype: torch.dtype = torch.bfloat16) -> float:
    """|mean NLL in ``dtype`` - mean NLL in fp32| (nats/char) of a text the fp32 stepper samples
    (seed 0, temperature 1): how far lower precision moves the model's own judgement."""
    from gen.core.model import FusedStepper

    ref, low = FusedStepper(model), FusedStepper(model, dtype=dtype)
    s_ref, s_low = ref.init_state(1), low.init_state(1)
    gen = torch.Generator().manual_seed(0)
    ids = torch.zeros(1, dtype=torch.long)
    total_ref = total_low = 0.0
    for _ in range(chars):
        lp_ref = torch.log_softmax(ref.step(ids, s_ref), -1)  # (1, V)
        lp_low = torch.log_softmax(low.step(ids, s_low), -1)
        ids = torch.multinomial(lp_ref.exp(), 1, generator=gen)[:, 0]
        total_ref -= float(lp_ref[0, ids])
        total_low -= float(lp_low[0, ids])
    return abs(total_low - total_ref) / chars

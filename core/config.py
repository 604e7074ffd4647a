"""Options and their defaults: training (:class:`TrainConfig`) and sampling (:class:`SampleOptions`).

Training resolution order (later wins, :func:`resolve_config`): these defaults -> the domain's
defaults for the device kind (cpu/gpu) -> the corpus manifest's defaults -> a ``--config`` TOML
file -> command-line options. A resume starts from the checkpoint's config instead
(:func:`resume_config`). Every value is checked against :data:`RANGES` / :data:`CHOICES`, which
also give the command line its click types. Sampling options have one set of defaults, here,
that the command line, the Python API and every caller of the sampler share.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import tomllib

from gen.core.errors import GenError

if TYPE_CHECKING:
    from gen.core.domain import CorpusSpec, Domain

# numeric fields: (lowest, highest) allowed, None = unbounded; dropout must stay below 1
RANGES: dict[str, tuple[float | None, float | None]] = {
    "n_layer": (1, 64), "n_hidden": (1, 1 << 16), "n_embd": (1, 1 << 16), "dropout": (0.0, 0.99),
    "weight_drop": (0.0, 0.99), "embed_drop": (0.0, 0.99), "ema": (0.0, 0.99999),
    "batch_size": (1, None), "seq_len": (1, None), "lr": (1e-12, 10.0), "min_lr_ratio": (0.0, 1.0),
    "warmup_steps": (0, None), "weight_decay": (0.0, None), "grad_clip": (0.0, None), "max_steps": (1, None),
    "max_time": (0.0, None), "eval_every": (1, None), "eval_chars": (0, None), "sample_every": (0, None),
    "sample_chars": (1, 100_000), "log_every": (1, None), "seed": (0, None), "threads": (0, 4096),
}
CHOICES: dict[str, tuple[str, ...]] = {"cell": ("lstm", "gru", "rnn"), "optimizer": ("adam", "adamw", "rmsprop"),
                                       "schedule": ("cosine", "linear", "constant"),
                                       "precision": ("auto", "fp32", "bf16"), "recipe": ("auto", "defaults")}
# command-line spellings accepted in a config file too (layers = 3 means n_layer = 3)
ALIASES = {"layers": "n_layer", "hidden": "n_hidden", "embd": "n_embd", "warmup": "warmup_steps"}


@dataclass
class TrainConfig:
    # model
    cell: str = "lstm"  # lstm | gru | rnn
    n_layer: int = 2  # char-rnn's default depth
    n_hidden: int = 256  # units per layer; the blog's models use 512
    n_embd: int = 64  # character embedding size
    dropout: float = 0.0  # 0.25-0.5 helps once the model overfits (bigger models, small corpora)
    weight_drop: float = 0.0  # DropConnect on the hidden-to-hidden weights (AWD-LSTM), training only
    embed_drop: float = 0.0  # drop whole characters' embeddings (AWD-LSTM), training only
    # data: batch_size streams, each read seq_len characters per step (truncated BPTT length)
    batch_size: int = 32
    seq_len: int = 128
    # optimisation
    optimizer: str = "adamw"  # adam | adamw | rmsprop (char-rnn used rmsprop)
    lr: float = 3e-3  # peak learning rate after warm-up
    min_lr_ratio: float = 0.1  # the schedule decays to lr * min_lr_ratio
    schedule: str = "cosine"  # cosine | linear | constant (after warm-up)
    warmup_steps: int = 50  # linear warm-up from 0: protects Adam's early, noisy moments
    weight_decay: float = 0.0  # decoupled (AdamW) decay on weight matrices only
    # averaged weights (AWD-LSTM's averaging, as an exponential moving average): the decay per step;
    # validation and best.pt use the average; 0 = off (core/average.py)
    ema: float = 0.0
    grad_clip: float = 1.0  # clip by global norm; LSTMs on long sequences can explode
    # budgets: training stops at whichever comes first
    max_steps: int = 2000
    max_time: float = 0.0  # seconds; 0 = no time budget (the schedule then follows max_steps)
    # auto: with a time budget, options nobody set are picked for the corpus, machine and budget
    # (core/recipe.py); defaults: the domain's defaults as they are
    recipe: str = "auto"
    # evaluation and output
    eval_every: int = 250  # validation every N steps (and always at the end)
    eval_chars: int = 200_000  # validation characters per evaluation (0 = the whole val split)
    sample_every: int = 0  # write a short sample every N steps (evolution of samples); 0 = off
    sample_chars: int = 200  # length of those samples
    log_every: int = 10  # metrics.jsonl granularity
    seed: int = 1337  # one seed makes the run repeatable (data order is deterministic anyway)
    # hardware
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "auto"  # auto (GPU: bf16 where supported; CPU: measured, core/precision.py) | fp32 | bf16
    threads: int = 0  # CPU threads; 0 = all cores

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def update(self, overrides: dict[str, Any], origin: str) -> TrainConfig:
        """Apply overrides, each checked (type, range, choices) and remembered as coming from
        ``origin``; an unknown key or a bad value is a GenError that names both."""
        valid = {f.name: f for f in fields(self)}
        for key, value in overrides.items():
            key = ALIASES.get(key, key)
            if value is None:
                continue
            if key not in valid:
                raise GenError(f"{origin}: unknown training option {key!r}. Valid: {', '.join(valid)}")
            current = getattr(self, key)
            try:
                if key == "max_time":
                    value = parse_duration(value)
                value = _typed(value, type(current))
            except (TypeError, ValueError):
                raise GenError(f"{origin}: {key}={value!r} is not a valid {type(current).__name__}") from None
            check_value(key, value, origin)
            setattr(self, key, value)
            self.origins[key] = origin
        return self

    @property
    def origins(self) -> dict[str, str]:
        """field -> where its value came from (fields never set: "default")."""
        if "_origins" not in self.__dict__:
            self.__dict__["_origins"] = {}
        return self.__dict__["_origins"]

    def origin(self, key: str) -> str:
        return self.origins.get(key, "default")

    def model_kwargs(self, vocab_size: int) -> dict[str, Any]:
        """The model's arguments (core/model.py ModelArgs) for a vocabulary of ``vocab_size``."""
        return {"vocab_size": vocab_size, "cell": self.cell, "n_layer": self.n_layer, "n_hidden": self.n_hidden,
                "n_embd": self.n_embd, "dropout": self.dropout, "weight_drop": self.weight_drop,
                "embed_drop": self.embed_drop}


def _typed(value: Any, want: type) -> Any:
    """``value`` as ``want`` without guessing: no bool for a number (``lr = true``), no fraction
    for a whole number (``n_layer = 1.7``), no number for a bool."""
    if want is bool:
        if not isinstance(value, bool):
            raise TypeError(value)
        return value
    if isinstance(value, bool):
        raise TypeError(value)
    if want is int and isinstance(value, float) and not value.is_integer():
        raise ValueError(value)
    if want is int and isinstance(value, str) and not value.strip().lstrip("-").isdigit():
        raise ValueError(value)
    return want(value)


def resolve_config(spec: CorpusSpec, domain: Domain, overrides: dict[str, Any], gpu: bool | None = None,
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
    kind = "cpu" if device == "cpu" or not gpu else "gpu"
    cfg = TrainConfig()
    for source, table in ((f"domain {domain.name}", domain.defaults), (f"manifest {spec.origin}", spec.defaults)):
        own = table.get(kind, {})
        cfg.update({k: v for k, v in own.items() if not isinstance(v, dict)}, f"{source} ({kind})")
        if variant and isinstance(own.get(variant), dict):
            cfg.update(own[variant], f"{source} ({kind}, {variant})")
    cfg.update(file_values, f"file {config_file}")
    cfg.update(overrides, "command line")
    return cfg


def resume_config(ckpt: dict[str, Any], overrides: dict[str, Any],
                  config_file: str | Path | None = None) -> tuple[TrainConfig, list[str]]:
    """A resume's config: the checkpoint's, then only what a file or the command line names.
    Returns it and one line per changed option (whether the model's shape may change is the
    checkpoint's rule: core/checkpoint.py check_resumable)."""
    saved = TrainConfig().update(ckpt["config"], "checkpoint")
    cfg = TrainConfig().update(ckpt["config"], "checkpoint")
    cfg.update(read_config_file(config_file) if config_file else {}, f"file {config_file}")
    cfg.update(overrides, "command line")
    changed = [k for k in TrainConfig.field_names() if getattr(cfg, k) != getattr(saved, k)]
    return cfg, [f"{k}: {getattr(saved, k)!r} -> {getattr(cfg, k)!r} ({cfg.origin(k)})" for k in changed]


@dataclass
class SampleOptions:
    """Everything a sample is drawn with: `gen sample`, the Python API, evolution samples, sweeps."""

    n: int = 1  # independent streams generated together
    length: int | None = None  # maximum characters per sample after the prime; None: the domain's
    temperature: float = 0.8  # < 1 sharper, > 1 flatter; <= 1e-3 means argmax (greedy)
    top_k: int = 0  # keep only the k most likely characters (0 = off)
    top_p: float = 1.0  # nucleus sampling: smallest set with this much probability (1 = off)
    prime: str = ""  # text the model reads first; samples continue it (and include it)
    stop: list[str] | None = None  # a sample ends at the first of these (not included); None: the domain's
    seed: int | None = None  # reproducible sampling
    guided: bool = False  # mask characters that would break the domain's structure (its tracker)
    constraints: list[str] | None = None  # guided: only these constraint families (None: all)
    novel_only: bool = False  # guided: never a training name (needs the training corpus)
    close: bool = True  # guided: append what closes open structure when a sample hits `length`
    device: str = "cpu"  # auto (CUDA when present) | cpu | cuda | cuda:N: where the streams step
    precision: str = "auto"  # auto | fp32 | bf16 | int8: the stepper's matmuls (core/precision.py)

    def __post_init__(self) -> None:
        if self.n < 1 or (self.length is not None and self.length < 1):
            raise GenError(f"-n and --length must be at least 1 (got {self.n} and {self.length})")
        if self.temperature < 0 or self.top_k < 0 or not 0 < self.top_p <= 1:
            raise GenError(f"temperature must be >= 0, top-k >= 0 and top-p in (0, 1] "
                           f"(got {self.temperature}, {self.top_k}, {self.top_p})")

    def chars(self, per_line: bool) -> int:
        """The sample length: as given, else 50 for a line-per-sample domain (a name), else 1000."""
        return self.length or (50 if per_line else 1000)


DEVICE = re.compile(r"auto|cpu|cuda(:\d{1,3})?")


def check_device(name: str, origin: str = "--device") -> None:
    """auto, cpu, cuda or cuda:N (meta, mps and the rest are not devices gen trains or samples on)."""
    if not isinstance(name, str) or not DEVICE.fullmatch(name):
        raise GenError(f"{origin}: device {name!r}: use auto, cpu, cuda or cuda:N")


def check_value(key: str, value: Any, origin: str = "option") -> None:
    """Refuse a value outside its field's range or choices, saying what is allowed."""
    if key == "device":
        check_device(value, f"{origin}: device")
    if key in CHOICES and value not in CHOICES[key]:
        raise GenError(f"{origin}: {key}={value!r}: choose one of {', '.join(CHOICES[key])}")
    if key in RANGES:
        lo, hi = RANGES[key]
        if not math.isfinite(value) or (lo is not None and value < lo) or (hi is not None and value > hi):
            raise GenError(f"{origin}: {key}={value!r} is out of range: allowed {_describe(lo, hi)}")


def _describe(lo: float | None, hi: float | None) -> str:
    return f"{lo} to {hi}" if hi is not None else f"{lo} or more"


def click_type(key: str, python_type: type) -> click.ParamType:
    """The click type of a training option: its choices or its range."""
    if key in CHOICES:
        return click.Choice(CHOICES[key])
    if key in RANGES:
        lo, hi = RANGES[key]
        return (click.IntRange if python_type is int else click.FloatRange)(lo, hi)
    return click.STRING if python_type is str else click.types.convert_type(python_type)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A TOML file of training options (flat, or under a [train] table); errors name the file."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GenError(f"config file {path} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise GenError(f"config file {path} is not valid TOML: {exc}") from None
    values = raw.get("train", raw)
    stray = sorted(set(raw) - {"train"}) if "train" in raw else []
    if stray:
        raise GenError(f"config file {path}: {stray} sit outside [train] and would be ignored; move them under "
                       f"[train] or delete them")
    if not isinstance(values, dict) or any(isinstance(v, dict) for v in values.values()):
        raise GenError(f"config file {path}: give training options as key = value (optionally under [train])")
    return values


def parse_duration(text: str | float | None) -> float:
    """'90', '90s', '10m', '1.5h' -> seconds."""
    if text is None or text == "":
        return 0.0
    if isinstance(text, int | float):
        return float(text)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", str(text))
    if not m:
        raise GenError(f"cannot read duration {text!r}: use e.g. 90s, 10m or 1.5h")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]

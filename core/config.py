"""Training configuration: one dataclass, a comment on every default, and where each value came from.

Resolution order (later wins): these defaults -> the domain's defaults for the device kind
(cpu/gpu) -> the corpus manifest's defaults -> a ``--config`` TOML file -> command-line options.
A resume starts from the checkpoint's config instead. Every value is checked against
:data:`RANGES` / :data:`CHOICES`, which also give the command line its click types.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import click
import tomllib

from gen.core.errors import GenError

# numeric fields: (lowest, highest) allowed, None = unbounded; dropout must stay below 1
RANGES: dict[str, tuple[float | None, float | None]] = {
    "n_layer": (1, 64), "n_hidden": (1, 1 << 16), "n_embd": (1, 1 << 16), "dropout": (0.0, 0.99),
    "batch_size": (1, None), "seq_len": (1, None), "lr": (1e-12, 10.0), "min_lr_ratio": (0.0, 1.0),
    "warmup_steps": (0, None), "weight_decay": (0.0, None), "grad_clip": (0.0, None), "max_steps": (1, None),
    "max_time": (0.0, None), "eval_every": (1, None), "eval_chars": (0, None), "sample_every": (0, None),
    "sample_chars": (1, None), "log_every": (1, None), "seed": (0, None), "threads": (0, 4096),
}
CHOICES: dict[str, tuple[str, ...]] = {"cell": ("lstm", "gru", "rnn"), "optimizer": ("adam", "adamw", "rmsprop"),
                                       "schedule": ("cosine", "linear", "constant"),
                                       "precision": ("auto", "fp32", "bf16")}
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
    grad_clip: float = 1.0  # clip by global norm; LSTMs on long sequences can explode
    # budgets: training stops at whichever comes first
    max_steps: int = 2000
    max_time: float = 0.0  # seconds; 0 = no time budget (the schedule then follows max_steps)
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
                value = type(current)(value) if not isinstance(current, bool) else bool(value)
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


def check_value(key: str, value: Any, origin: str = "option") -> None:
    """Refuse a value outside its field's range or choices, saying what is allowed."""
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

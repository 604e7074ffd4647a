"""Training configuration: one dataclass, a comment on every default.

Resolution order (later wins): these defaults -> the domain's defaults for the device kind
(cpu/gpu) -> the corpus manifest's defaults -> command-line options.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields
from typing import Any

from gen.core.errors import GenError


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
    precision: str = "auto"  # auto (bf16 on GPU, fp32 on CPU) | fp32 | bf16
    threads: int = 0  # CPU threads; 0 = all cores

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def update(self, overrides: dict[str, Any], origin: str) -> TrainConfig:
        """Apply overrides (type-checked by the default's type); unknown keys are an error."""
        valid = {f.name: f for f in fields(self)}
        for key, value in overrides.items():
            if value is None:
                continue
            if key not in valid:
                raise GenError(f"{origin}: unknown training option {key!r}. Valid: {', '.join(valid)}")
            current = getattr(self, key)
            try:
                value = type(current)(value) if not isinstance(current, bool) else bool(value)
            except (TypeError, ValueError):
                raise GenError(f"{origin}: {key}={value!r} is not a valid {type(current).__name__}") from None
            setattr(self, key, value)
        return self


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

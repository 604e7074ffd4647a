"""Whether a run's best checkpoint can be trusted: its validation loss read against its training loss.

best.pt is the validation loss's lowest point. That only means something when validation text
is like training text and the loss moves with the model. Two patterns say it is not (a split
that put different text in validation, such as generated tables): validation far above training
from the first evaluations on, and validation jumping between evaluations while the training
loss barely moves. `gen train` prints what this finds at the end of a run.
"""

from __future__ import annotations

from typing import Any

FAR = 0.5  # nats/char above the training loss at the first evaluations: other text
SWING = 0.2  # nats/char between two evaluations while training moved less than STEADY
STEADY = 0.05


def warnings(metrics: list[dict[str, Any]]) -> list[str]:
    """Lines for `gen train` to print when best.pt may be a lucky low point (none when fine)."""
    vals = [m for m in metrics if "val_loss" in m and "val_chars" not in m]  # whole-split validations
    trains = [m for m in metrics if "loss" in m]
    if len(vals) < 2 or not trains:
        return []

    def train_at(step: int) -> float | None:
        before = [m["loss"] for m in trains if m["step"] <= step][-5:]
        return sum(before) / len(before) if before else None

    out = []
    gaps = [v["val_loss"] - t for v in vals[:2] if (t := train_at(v["step"])) is not None]
    if gaps and min(gaps) > FAR:
        out.append(f"validation loss is {min(gaps):.2f}+ nats/char above training from the first evaluations on: "
                   "the validation text differs from the training text (see the split gen prepare reported), "
                   "so best.pt says little")
    swings = 0
    for a, b in zip(vals, vals[1:], strict=False):
        ta, tb = train_at(a["step"]), train_at(b["step"])
        if ta is not None and tb is not None and abs(b["val_loss"] - a["val_loss"]) > SWING and abs(tb - ta) < STEADY:
            swings += 1
    if swings:
        out.append(f"validation loss jumped by more than {SWING} nats/char {swings} time(s) while training "
                   "loss held steady: best.pt may be a lucky low point")
    return out

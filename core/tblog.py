"""TensorBoard event files for a run, beside metrics.jsonl, when ``tensorboard`` is installed
(the optional extra ``pip install 'gen-charrnn[tensorboard]'``); without it, nothing happens.

    tensorboard --logdir ~/.local/share/gen/runs
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# metrics.jsonl keys -> TensorBoard tags
TAGS = {"loss": "train/loss", "bpc": "train/bpc", "lr": "train/lr", "chars_per_s": "train/chars_per_s",
        "val_loss": "val/loss", "val_bpc": "val/bpc"}


class TBLog:
    def __init__(self, run_dir: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # the optional extra is not installed
            self.writer = None
            return
        self.writer = SummaryWriter(log_dir=str(run_dir), flush_secs=10)

    def record(self, entry: dict[str, Any]) -> None:
        if self.writer is None:
            return
        for key, tag in TAGS.items():
            if key in entry:
                self.writer.add_scalar(tag, entry[key], entry["step"])

    def text(self, tag: str, text: str, step: int) -> None:
        if self.writer is not None:
            # TensorBoard renders text as Markdown: indent four spaces to show it as written
            self.writer.add_text(tag, "\n".join("    " + line for line in text.split("\n")), step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

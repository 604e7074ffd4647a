"""When a training run ends, and how far along it is: the step budget or the wall-clock deadline.

A time budget is wall time for the whole call: the loop stops early enough that the final
validation and checkpoint still fit before the deadline. What those cost is measured (the last
validation and save of this process), or before the first one estimated from the step time: a
validation batch is a forward pass only, about a third of a training step. Progress is whichever
budget is further along, so the learning-rate schedule anneals and the progress bar's ETA is
true whichever ends first. Short budgets scale the warm-up down so it ends well before the run.
"""

from __future__ import annotations

import math
import time

from gen.core.config import TrainConfig

MARGIN = 0.5  # seconds kept back for what is neither validation nor saving (closing files, the run page)
SAMPLE_SECONDS = 0.3  # the last evolution sample (a few hundred characters)


class Budget:
    def __init__(self, cfg: TrainConfig, step: int, elapsed: float, deadline: float | None,
                 eval_batches: int) -> None:
        self.cfg, self.step0, self.elapsed0 = cfg, step, elapsed
        self.t0 = time.monotonic()
        if deadline is None and cfg.max_time:  # the rest of the run's own time budget
            deadline = self.t0 + max(0.0, cfg.max_time - elapsed)
        self.deadline = deadline
        self.eval_batches = eval_batches
        self.step_seconds: float | None = None  # running mean of this process's steps
        self.eval_seconds: float | None = None  # the last validation, measured
        self.save_seconds = 1.0  # best.pt + last.pt + loss.png (the first plot loads matplotlib), until measured
        self._steps = 0
        # a step budget shorter than 10x the warm-up gets a tenth of it as warm-up (deterministic)
        self.warmup = min(cfg.warmup_steps, max(1, cfg.max_steps // 10)) if cfg.warmup_steps else 0
        self._scaled = False

    # ---- measurements ----------------------------------------------------------------------
    def step_done(self, seconds: float, step: int) -> None:
        self._steps += 1
        self.step_seconds = seconds if self.step_seconds is None else 0.9 * self.step_seconds + 0.1 * seconds
        if self.deadline is not None and not self._scaled and self._steps >= 5:
            self._scaled = True  # a time budget that allows few steps: a warm-up of a tenth of them
            self.warmup = min(self.warmup, max(1, self.predicted_steps(step) // 10))

    def validated(self, seconds: float, save_seconds: float) -> None:
        self.eval_seconds, self.save_seconds = seconds, save_seconds

    # ---- what is left ---------------------------------------------------------------------------
    def eval_estimate(self) -> float:
        if self.eval_seconds is not None:
            return self.eval_seconds
        return self.eval_batches * (self.step_seconds or 0.05) / 3

    @property
    def reserve(self) -> float:
        """Seconds the end of the run needs: final validation, checkpoints, a last sample, margin."""
        return self.eval_estimate() + self.save_seconds + MARGIN + (SAMPLE_SECONDS if self.cfg.sample_every else 0.0)

    def out_of_time(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline - self.reserve

    def planned_elapsed(self) -> float | None:
        """Training seconds (over all resumed segments) at which the time budget ends."""
        if self.deadline is None:
            return None
        return self.elapsed0 + max(1e-3, self.deadline - self.reserve - self.t0)

    def predicted_steps(self, step: int) -> int:
        """Steps this run will reach: max_steps, or fewer when the time budget ends first."""
        if self.deadline is None or not self.step_seconds:
            return self.cfg.max_steps
        left = max(0.0, self.deadline - self.reserve - time.monotonic())
        return min(self.cfg.max_steps, step + int(left / self.step_seconds))

    def fraction(self, step: int, elapsed: float) -> float:
        """How far along the run is, 0..1, by whichever budget is further along."""
        by_steps = step / max(1, self.cfg.max_steps)
        planned = self.planned_elapsed()
        by_time = elapsed / planned if planned else 0.0
        return min(1.0, max(by_steps, by_time))

    def final_eval_chars(self, full: int) -> int | None:
        """Characters the final validation may read to end by the deadline (None: all ``full``)."""
        if self.deadline is None:
            return None
        left = self.deadline - time.monotonic() - self.save_seconds - MARGIN
        est = self.eval_estimate()
        if est <= 0 or left >= 0.5 * est:  # the loop kept est back: a late last step is no reason
            return None
        return max(min(full, 1024), int(full * max(0.0, left) / est))


def lr_at(step: int, cfg: TrainConfig, elapsed: float = 0.0, planned: float | None = None,
          warmup: int | None = None) -> float:
    """Linear warm-up to cfg.lr, then cosine/linear decay to lr*min_lr_ratio at the end of the
    budget: max_steps, or the time budget when that comes first (so a timed run still anneals).
    ``planned``: training seconds at which the time budget ends (default cfg.max_time);
    ``warmup``: the warm-up steps in force (default cfg.warmup_steps)."""
    warmup = cfg.warmup_steps if warmup is None else warmup
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    if cfg.schedule == "constant":
        return cfg.lr
    progress = min(1.0, (step - warmup) / max(1, cfg.max_steps - warmup))
    planned = planned if planned is not None else (cfg.max_time or None)
    if planned:
        progress = max(progress, min(1.0, elapsed / planned))
    shape = 0.5 * (1 + math.cos(math.pi * progress)) if cfg.schedule == "cosine" else 1 - progress
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * shape)

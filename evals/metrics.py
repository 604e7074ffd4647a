"""Metrics that apply to every domain, registered like any plugin (entry point `generic`).

* repetition: share of a sample's 16-character windows already seen earlier in the same sample
  (a low-temperature loop drives it towards 1);
* unique_share: share of distinct samples in the set (mode collapse shows here);
* copying (from evals/copydetect/copying.py, when a training corpus is given): verbatim spans from training.
"""

from __future__ import annotations

import numpy as np

from gen.core.domain import CheckResult, EvalContext, MetricSpec, SampleMetric
from gen.core.hookspecs import hookimpl
from gen.core.vocab import code_points

WINDOW = 16


class RepetitionMetric(SampleMetric):
    name = "repetition"
    metrics = (
        MetricSpec("repetition", False, f"share of {WINDOW}-char windows repeated within the sample"),
        MetricSpec("unique_share", True, "share of distinct samples in the set", aggregate="none"),
    )

    def check(self, sample: str, ctx: EvalContext) -> CheckResult:
        """Every window hashed at once (numpy, 64-bit): a window is repeated when an earlier one
        has its hash, so repeated = windows - distinct hashes. Linear, and 10 MB costs ~0.3 GB
        where a set of 10 million strings cost 1.3 GB (evals/BENCHMARKS.md)."""
        n = len(sample) - WINDOW + 1
        if n <= 1:
            return CheckResult({"repetition": None})
        from gen.evals.copydetect.grams import distinct_count, window_hashes

        distinct = distinct_count(window_hashes(code_points(sample).astype(np.int64), WINDOW))
        return CheckResult({"repetition": (n - distinct) / n})

    def check_many(self, samples: list[str], ctx: EvalContext) -> list[CheckResult]:
        """Samples shorter than two windows (names, words) skip the hashing altogether."""
        short = CheckResult({"repetition": None})  # one object for them all (results are read-only)
        return [short if len(s) <= WINDOW else self.check(s, ctx) for s in samples]

    def summarize(self, samples, results, ctx) -> dict[str, float]:
        return {"unique_share": len(set(samples)) / len(samples)} if samples else {}


@hookimpl
def register_metrics(register):
    register(RepetitionMetric())
    try:
        from gen.evals.copydetect.copying import CopyingMetric
    except ImportError:  # copying index not available in this install
        return
    register(CopyingMetric())

"""Metrics that apply to every domain, registered like any plugin (entry point `generic`).

* repetition: share of a sample's 16-character windows already seen earlier in the same sample
  (a low-temperature loop drives it towards 1);
* unique_share: share of distinct samples in the set (mode collapse shows here);
* copying (from evals/copying.py, when a training corpus is given): verbatim spans from training.
"""

from __future__ import annotations

from gen.core.domain import CheckResult, EvalContext, MetricSpec, SampleMetric
from gen.core.hookspecs import hookimpl

WINDOW = 16


class RepetitionMetric(SampleMetric):
    name = "repetition"
    metrics = (
        MetricSpec("repetition", False, f"share of {WINDOW}-char windows repeated within the sample"),
        MetricSpec("unique_share", True, "share of distinct samples in the set", aggregate="none"),
    )

    def check(self, sample: str, ctx: EvalContext) -> CheckResult:
        n = len(sample) - WINDOW + 1
        if n <= 1:
            return CheckResult({"repetition": None})
        seen, repeated = set(), 0
        for i in range(n):
            w = sample[i:i + WINDOW]
            if w in seen:
                repeated += 1
            else:
                seen.add(w)
        return CheckResult({"repetition": repeated / n})

    def summarize(self, samples, results, ctx) -> dict[str, float]:
        return {"unique_share": len(set(samples)) / len(samples)} if samples else {}


@hookimpl
def register_metrics(register):
    register(RepetitionMetric())
    try:
        from gen.evals.copying import CopyingMetric
    except ImportError:  # copying index not available in this install
        return
    register(CopyingMetric())

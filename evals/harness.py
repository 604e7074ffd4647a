"""Scoring samples: per-sample records, a summary with baselines, and the on-screen table.

HumanEval-style: every sample gets one JSON record (its metrics and issues), the set gets a
summary ``{"metrics": {NAME: {"value", "higher_is_better", "description"}}, "n", ...}``. With a
training corpus (``--against``), the same checks also run on real held-out text cut to the
samples' lengths ("real") and on a corrupted copy of it ("corrupted"), so every figure has a
reference: good samples sit near "real", broken ones near "corrupted".
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gen.core import table
from gen.core.atomic import atomic_write_text
from gen.core.domain import CheckResult, Domain, EvalContext, Issue, MetricSpec
from gen.core.registry import get_registry
from gen.core.table import fmt_num

BETTER = {True: "higher", False: "lower", None: "-"}  # a metric's direction, as tables show it


@dataclass
class ScoredSet:
    specs: dict[str, MetricSpec]
    records: list[dict[str, Any]]
    values: dict[str, float | None]
    seconds: float = 0.0
    chars: int = 0


@dataclass
class EvalReport:
    samples: ScoredSet
    real: ScoredSet | None = None
    corrupted: ScoredSet | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        s = self.samples
        out = {
            "metrics": {name: {"value": s.values.get(name), "higher_is_better": spec.higher_is_better,
                               "description": spec.description} for name, spec in s.specs.items()},
            "n": len(s.records),
            **self.meta,
            "throughput_mb_s": round(s.chars / 1e6 / max(s.seconds, 1e-9), 3),
            "issue_counts": dict(Counter(i["kind"] for r in s.records for i in r["issues"]).most_common()),
        }
        if self.real:
            out["baseline"] = self.real.values
        if self.corrupted:
            out["corrupted"] = self.corrupted.values
        return out


CHECK_ERROR = "check_error"  # the one issue kind of a check that raised (checks never should)


def _error_issue(exc: BaseException) -> Issue:
    return Issue(CHECK_ERROR, f"{type(exc).__name__}: {exc}")


def _safe_check(checker, sample: str, ctx: EvalContext) -> CheckResult:
    """The one place the never-raise rule of checks is enforced: a check that raises anyway
    records a ``check_error`` issue on its sample, and the eval goes on (bad samples are data)."""
    try:
        return checker.check(sample, ctx)
    except Exception as exc:  # noqa: BLE001 - a crash is a finding, recorded on the sample
        return CheckResult(issues=[_error_issue(exc)])


def _safe_check_many(checker, samples: list[str], ctx: EvalContext) -> list[CheckResult]:
    many = getattr(checker, "check_many", None)
    if many is not None:
        try:
            results = many(samples, ctx)
            if len(results) == len(samples):
                return results
        except Exception:  # noqa: BLE001 - fall back to one sample at a time, each guarded
            pass
    return [_safe_check(checker, s, ctx) for s in samples]


def score(domain: Domain, samples: list[str], ctx: EvalContext) -> ScoredSet:
    """Run the domain's checks and every generic metric over ``samples``."""
    checkers = [domain, *get_registry().metrics]
    specs: dict[str, MetricSpec] = {}
    for c in checkers:
        specs.update({m.name: m for m in c.metrics})
    t0 = time.perf_counter()
    per_checker = {id(c): _safe_check_many(c, samples, ctx) for c in checkers}
    records = []
    for i, sample in enumerate(samples):
        rec = {"index": i, "length": len(sample), "metrics": {}, "issues": []}
        for c in checkers:
            res = per_checker[id(c)][i]
            rec["metrics"].update(res.metrics)
            rec["issues"].extend(x.to_dict() for x in res.issues)
        records.append(rec)
    values: dict[str, float | None] = {}
    for name, spec in specs.items():
        vals = [r["metrics"].get(name) for r in records]
        vals = [v for v in vals if v is not None]
        if spec.aggregate == "sum":
            values[name] = float(sum(vals))
        elif spec.aggregate == "mean":
            values[name] = sum(vals) / len(vals) if vals else None
    for c in checkers:
        try:
            values.update(c.summarize(samples, per_checker[id(c)], ctx))
        except Exception as exc:  # noqa: BLE001
            if records:  # a set-level failure is recorded on the first sample, not raised
                records[0]["issues"].append(_error_issue(exc).to_dict())
    return ScoredSet(specs, records, values, time.perf_counter() - t0, sum(map(len, samples)))


def evaluate(domain: Domain, samples: list[str], ctx: EvalContext, baseline: bool = True,
             seed: int = 0) -> EvalReport:
    """Score samples, and (with a corpus in ``ctx``) real and corrupted held-out text beside them."""
    report = EvalReport(score(domain, samples, ctx), meta={"domain": domain.name})
    if ctx.data is not None:
        report.meta["against"] = ctx.data.name
        if baseline and samples:
            rng = random.Random(seed)
            real = domain.baseline(ctx.data, [max(1, len(s)) for s in samples], rng)
            report.real = score(domain, real, ctx)
            report.corrupted = score(domain, [domain.corrupt(t, rng) for t in real], ctx)
    return report


def write_report(report: EvalReport, out_dir: Path) -> tuple[Path, Path]:
    """records.jsonl (one line per sample) and summary.json, written atomically."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rec_path, sum_path = out_dir / "records.jsonl", out_dir / "summary.json"
    atomic_write_text(rec_path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in report.samples.records))
    atomic_write_text(sum_path, json.dumps(report.summary(), indent=2, ensure_ascii=False))
    return rec_path, sum_path


def format_table(report: EvalReport, worst: int = 3) -> str:
    """Metric table (samples | real | corrupted) plus excerpts of the most frequent issues."""
    s = report.samples
    cols = ["metric", "better", "samples"] + (["real", "corrupted"] if report.real else [])
    rows = []
    for name, spec in s.specs.items():
        row = [name, BETTER[spec.higher_is_better], fmt_num(s.values.get(name))]
        if report.real:
            row += [fmt_num(report.real.values.get(name)), fmt_num(report.corrupted.values.get(name))]
        rows.append(row)
    lines = [table.render(rows, [cols])]
    kinds = Counter(i["kind"] for r in s.records for i in r["issues"])
    if kinds:
        lines.append("")
        lines.append(f"issues in {len(s.records)} samples (most frequent first, with excerpts):")
        for kind, count in kinds.most_common(8):
            examples = [i for r in s.records for i in r["issues"] if i["kind"] == kind][:worst]
            lines.append(f"  {kind}: {count}")
            for ex in examples:
                where = f"@{ex['offset']} " if ex["offset"] >= 0 else ""
                lines.append(f"      {where}{ex['message'][:90]}" + (f"  | {ex['excerpt']}" if ex["excerpt"] else ""))
    return "\n".join(lines)

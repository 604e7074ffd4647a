"""Scoring samples: per-sample records, a summary with baselines, and the on-screen table.

HumanEval-style: every sample gets one JSON record (its metrics and issues), the set gets a
summary ``{"metrics": {NAME: {"value", "higher_is_better", "description"}}, "n", ...}``. With a
training corpus (``--against``), the same checks also run on real held-out text cut to the
samples' lengths ("real") and on a corrupted copy of it ("corrupted"), so every figure has a
reference: good samples sit near "real", broken ones near "corrupted".
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter
from collections.abc import Callable
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
    set_issues: list[dict[str, Any]] = field(default_factory=list)  # set-level checks that raised


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
        if s.set_issues:
            out["set_issues"] = s.set_issues
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


CHUNK_SAMPLES = 256  # samples scored (and their records handed on) at a time, at most
CHUNK_CHARS = 256_000  # characters per chunk, at most (one huge sample is a chunk of its own)
PARALLEL_MIN_CHARS = 2_000_000  # below this forking the pool costs more than it saves (measured: 0.4 MB of LaTeX 1.49 MB/s alone, 0.56 with 2 workers)
WORKERS_ENV = "GEN_EVAL_WORKERS"  # processes that score chunks (default: every core; 1 = this process)
BASELINE_MAX_CHARS = 1_000_000  # real (and corrupted) held-out text scored beside the samples, at most


def chunks(samples: list[str]) -> list[tuple[int, int]]:
    """[lo, hi) ranges of at most CHUNK_SAMPLES samples and (unless one sample) CHUNK_CHARS chars."""
    out, lo, size = [], 0, 0
    for i, s in enumerate(samples):
        if i > lo and (i - lo >= CHUNK_SAMPLES or size + len(s) > CHUNK_CHARS):
            out.append((lo, i))
            lo, size = i, 0
        size += len(s)
    if lo < len(samples):
        out.append((lo, len(samples)))
    return out


_WORK: tuple[list, list[str], EvalContext] | None = None  # what forked workers score (set before the fork)


def _score_chunk(bounds: tuple[int, int]) -> list[list[CheckResult]]:
    checkers, samples, ctx = _WORK
    chunk = samples[bounds[0]:bounds[1]]
    return [_safe_check_many(c, chunk, ctx) for c in checkers]


def eval_workers(domain: Domain, samples: list[str], ctx: EvalContext) -> int:
    """How many processes score: every core for a big set, one for a small one, or for options
    that run their own pool of external tools (the domain's ``serial_options``, e.g. --compile)."""
    if os.environ.get(WORKERS_ENV, "").strip().isdigit():
        return max(1, int(os.environ[WORKERS_ENV]))
    if sum(map(len, samples)) < PARALLEL_MIN_CHARS or any(ctx.options.get(o) for o in domain.serial_options):
        return 1
    return os.cpu_count() or 1


def _chunk_results(checkers: list, samples: list[str], ctx: EvalContext, bounds: list[tuple[int, int]],
                   workers: int):
    """Each chunk's per-checker results, in order: in this process, or in a pool of forked
    processes (the checkers, samples and context are inherited, never pickled; results are
    the same as one process gives, since each chunk is scored on its own either way)."""
    global _WORK
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    done = 0
    if workers > 1 and len(bounds) > 1 and "fork" in mp.get_all_start_methods():
        _WORK = (checkers, samples, ctx)
        pool = ProcessPoolExecutor(min(workers, len(bounds)), mp_context=mp.get_context("fork"))
        try:
            for results in pool.map(_score_chunk, bounds):
                done += 1
                yield results
            return
        except BrokenProcessPool:
            pass  # a worker died (a crash in a native parser): the rest is scored here, one by one
        finally:  # Ctrl-C or a failing sink: drop the queued chunks instead of finishing them
            pool.shutdown(wait=False, cancel_futures=True)
            _WORK = None
    for lo, hi in bounds[done:]:
        yield [_safe_check_many(c, samples[lo:hi], ctx) for c in checkers]


def score(domain: Domain, samples: list[str], ctx: EvalContext,
          sink: Callable[[list[dict[str, Any]]], None] | None = None, workers: int | None = None) -> ScoredSet:
    """Run the domain's checks and every generic metric over ``samples`` in chunks, on every
    core for a big set (``workers``: None = :func:`eval_workers`); ``sink`` gets each chunk's
    records, in order, as soon as they are scored (so an interrupted eval keeps what it
    finished). Set-level figures come at the end, from every result."""
    checkers = [domain, *get_registry().metrics]
    specs: dict[str, MetricSpec] = {}
    for c in checkers:
        specs.update({m.name: m for m in c.metrics})
    t0 = time.perf_counter()
    per_checker: dict[int, list[CheckResult]] = {id(c): [] for c in checkers}
    records = []
    bounds = chunks(samples)
    workers = eval_workers(domain, samples, ctx) if workers is None else workers
    for (lo, _hi), results in zip(bounds, _chunk_results(checkers, samples, ctx, bounds, workers), strict=True):
        for c, res in zip(checkers, results, strict=True):
            per_checker[id(c)] += res
        fresh = [_record(lo + j, samples[lo + j], per_sample) for j, per_sample in enumerate(zip(*results, strict=True))]
        records += fresh
        if sink:
            sink(fresh)
    values: dict[str, float | None] = {}
    for name, spec in specs.items():
        vals = [r["metrics"].get(name) for r in records]
        vals = [v for v in vals if v is not None]
        if spec.aggregate == "sum":
            values[name] = float(sum(vals))
        elif spec.aggregate == "mean":
            values[name] = sum(vals) / len(vals) if vals else None
    set_issues = []
    for c in checkers:
        try:
            values.update(c.summarize(samples, per_checker[id(c)], ctx))
        except Exception as exc:  # noqa: BLE001 - a set-level failure goes in the summary, not raised
            set_issues.append(_error_issue(exc).to_dict())
    return ScoredSet(specs, records, values, time.perf_counter() - t0, sum(map(len, samples)), set_issues)


def _record(i: int, sample: str, results: tuple[CheckResult, ...]) -> dict[str, Any]:
    """Sample ``i``'s record from each checker's result for it (in checker order)."""
    metrics: dict[str, Any] = {}
    issues: list[dict[str, Any]] = []
    for res in results:
        metrics.update(res.metrics)
        if res.issues:
            issues += [x.to_dict() for x in res.issues]
    return {"index": i, "length": len(sample), "metrics": metrics, "issues": issues}


def baseline_lengths(samples: list[str], max_chars: int = BASELINE_MAX_CHARS) -> list[int]:
    """The samples' lengths, thinned evenly across the set until they add up to at most
    ``max_chars``: the reference costs at most about as much as the samples, never more."""
    lengths = [min(max(1, len(s)), max_chars) for s in samples]
    total = sum(lengths)
    if total <= max_chars:
        return lengths
    step = total / max_chars  # keep about one sample in ``step``, spread over the whole set
    picked = [lengths[int(j * step)] for j in range(int(len(lengths) / step) + 1) if int(j * step) < len(lengths)]
    while sum(picked) > max_chars and len(picked) > 1:
        picked.pop()
    return picked


def evaluate(domain: Domain, samples: list[str], ctx: EvalContext, baseline: bool = True,
             seed: int = 0, sink: Callable[[list[dict[str, Any]]], None] | None = None) -> EvalReport:
    """Score samples (records to ``sink`` as they are scored), and (with a corpus in ``ctx``)
    real and corrupted held-out text beside them, at most BASELINE_MAX_CHARS of each."""
    report = EvalReport(score(domain, samples, ctx, sink), meta={"domain": domain.name})
    if ctx.data is not None:
        report.meta["against"] = ctx.data.name
        if baseline and samples:
            rng = random.Random(seed)
            real = domain.baseline(ctx.data, baseline_lengths(samples), rng)
            report.real = score(domain, real, ctx)
            report.corrupted = score(domain, [domain.corrupt(t, rng) for t in real], ctx)
            report.meta["baseline_texts"], report.meta["baseline_chars"] = len(real), sum(map(len, real))
    return report


def write_report(report: EvalReport, out_dir: Path, records_written: bool = False) -> tuple[Path, Path]:
    """records.jsonl (one line per sample; unless a RecordWriter already streamed them) and
    summary.json, written atomically."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rec_path, sum_path = out_dir / "records.jsonl", out_dir / "summary.json"
    if not records_written:
        atomic_write_text(rec_path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in report.samples.records))
    atomic_write_text(sum_path, json.dumps(report.summary(), indent=2, ensure_ascii=False))
    return rec_path, sum_path


class RecordWriter:
    """records.jsonl written as samples are scored: each chunk appended and flushed, text that
    cannot be encoded (lone surrogates) escaped; ``count`` says how many are safely on disk."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.count = path, 0
        self.fh = open(path, "w", encoding="utf-8", errors="backslashreplace")

    def __call__(self, records: list[dict[str, Any]]) -> None:
        self.fh.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        self.fh.flush()
        self.count += len(records)

    def close(self) -> None:
        self.fh.close()


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
    if report.real:
        lines.append(f"(real and corrupted: {report.meta.get('baseline_texts', 0):,} held-out texts, "
                     f"{report.meta.get('baseline_chars', 0):,} characters, of {report.meta.get('against')})")
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

"""Scoring samples: per-sample records, a summary with baselines, and the on-screen table.

HumanEval-style: every sample gets one JSON record (its metrics and issues), the set gets a
summary ``{"metrics": {NAME: {"value", "higher_is_better", "description"}}, "n", ...}``. With a
training corpus (``--against``), the same checks also run on real held-out text cut to the
samples' lengths ("real") and on a corrupted copy of it ("corrupted"), so every figure has a
reference: good samples sit near "real", broken ones near "corrupted".
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gen.core.config import SampleOptions
from gen.core.domain import CheckResult, Domain, EvalContext, Issue, MetricSpec
from gen.core.errors import GenError
from gen.core.registry import get_domain, get_registry

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
    ngram: ScoredSet | None = None  # samples of the corpus's best n-gram model (evals/baselines)

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
        if self.ngram:
            out["ngram"] = self.ngram.values
            out["ngram_as_good"] = as_good(self.samples, self.ngram)
        return out


def as_good(samples: ScoredSet, ngram: ScoredSet) -> list[str]:
    """Checks on which the n-gram's samples score as well as the samples (or better)."""
    out = []
    for name, spec in samples.specs.items():
        a, b = samples.values.get(name), ngram.values.get(name)
        if spec.higher_is_better is None or a is None or b is None:
            continue
        if (b >= a) if spec.higher_is_better else (b <= a):
            out.append(name)
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
    try:
        results = checker.check_many(samples, ctx)
        if len(results) == len(samples):
            return results
    except Exception:  # noqa: BLE001 - fall back to one sample at a time, each guarded
        pass
    return [_safe_check(checker, s, ctx) for s in samples]


CHUNK_SAMPLES = 256  # samples scored (and their records handed on) at a time, at most
CHUNK_CHARS = 256_000  # characters per chunk, at most (one huge sample is a chunk of its own)
CHUNK_MIN_CHARS = 8_000  # a pool's chunks are no smaller (per-chunk costs: a lookup batch, the hand-over)
PARALLEL_SLICES = 4  # chunks per worker, at least, when the set is big enough
PROBE_SHARE = 64  # the timed chunk before a pool holds about 1/64 of the characters (one sample at least)
# below this a pool costs more than it saves: forking and handing results back has a fixed cost
# (evals/BENCHMARKS.md, "Current figures": eval pool)
PARALLEL_MIN_CHARS = 200_000
# samples shorter than this on average (names) stay in one process: their checks cost less than
# handing their results back
PARALLEL_MIN_AVG = 100
# a pool starts only when what is left would take one process this long (measured on a chunk):
# below it halving the work saves less than the fork and hand-over cost; and LaTeX's forked
# workers fault in the pages of the memory-mapped index they read, so a lower bound picked a
# pool for LaTeX whenever the machine ran slow, at half the speed (BENCHMARKS.md, stop 24)
POOL_MIN_SECONDS = 0.2
WORKERS_ENV = "GEN_EVAL_WORKERS"  # processes that score chunks (default: every core; 1 = this process)
BASELINE_MAX_CHARS = 1_000_000  # real (and corrupted) held-out text scored beside the samples, at most, each


def chunks(samples: list[str], max_chars: int = CHUNK_CHARS) -> list[tuple[int, int]]:
    """[lo, hi) ranges of at most CHUNK_SAMPLES samples and (unless one sample) ``max_chars`` chars."""
    out, lo, size = [], 0, 0
    for i, s in enumerate(samples):
        if i > lo and (i - lo >= CHUNK_SAMPLES or size + len(s) > max_chars):
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
    """How many processes may score: every core for a big set, one for a small one, a set of
    tiny samples (names), or options that run their own pool of external tools (the domain's
    ``serial_options``, e.g. --compile). With more than one, a timed chunk still decides whether
    a pool starts (:func:`_chunk_results`)."""
    if os.environ.get(WORKERS_ENV, "").strip().isdigit():
        return max(1, int(os.environ[WORKERS_ENV]))
    chars = sum(map(len, samples))
    if (chars < PARALLEL_MIN_CHARS or chars < PARALLEL_MIN_AVG * len(samples)
            or any(ctx.options.get(o) for o in domain.serial_options)):
        return 1
    return os.cpu_count() or 1


def _shifted(bounds: list[tuple[int, int]], by: int) -> list[tuple[int, int]]:
    return [(lo + by, hi + by) for lo, hi in bounds]


def _chunk_results(checkers: list, samples: list[str], ctx: EvalContext, workers: int):
    """((lo, hi), per-checker results) of each chunk, in order: in this process, or in a pool of
    forked processes (the checkers, samples and context are inherited, never pickled; results
    are the same as one process gives, since each chunk is scored on its own either way).

    With ``workers`` > 1, one sample is scored here first (what the checks load on first use, the
    copy index and corpus statistics, is then loaded once and inherited by the workers), then a
    timed chunk of about 1/PROBE_SHARE of the characters: a pool starts only when the rest would
    take this process POOL_MIN_SECONDS or more, its chunks PARALLEL_SLICES per worker or more."""
    global _WORK
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    def here(bounds):
        for lo, hi in bounds:
            yield (lo, hi), [_safe_check_many(c, samples[lo:hi], ctx) for c in checkers]

    if workers == 1 or len(samples) < 3 or "fork" not in mp.get_all_start_methods():
        yield from here(chunks(samples))
        return
    total = sum(map(len, samples))
    probe = chunks(samples[1:], max(1, total // PROBE_SHARE))[0][1] + 1
    yield from here([(0, 1)])
    t0 = time.perf_counter()
    results = [_safe_check_many(c, samples[1:probe], ctx) for c in checkers]
    spent = time.perf_counter() - t0
    yield (1, probe), results
    rest = sum(map(len, samples[probe:]))
    if spent / max(1, total - rest - len(samples[0])) * rest < POOL_MIN_SECONDS:
        yield from here(_shifted(chunks(samples[probe:]), probe))  # not worth a pool: big chunks here
        return
    size = max(CHUNK_MIN_CHARS, min(CHUNK_CHARS, total // (PARALLEL_SLICES * workers)))
    bounds = _shifted(chunks(samples[probe:], size), probe)
    _WORK, done = (checkers, samples, ctx), 0
    pool = ProcessPoolExecutor(min(workers, len(bounds)), mp_context=mp.get_context("fork"))
    try:
        for results in pool.map(_score_chunk, bounds):
            done += 1
            yield bounds[done - 1], results
        return
    except BrokenProcessPool:
        pass  # a worker died (a crash in a native parser): the rest is scored here, one by one
    finally:  # Ctrl-C or a failing sink: drop the queued chunks instead of finishing them
        pool.shutdown(wait=False, cancel_futures=True)
        _WORK = None
    yield from here(bounds[done:])


def score(domain: Domain, samples: list[str], ctx: EvalContext,
          sink: Callable[[list[dict[str, Any]]], None] | None = None, workers: int | None = None) -> ScoredSet:
    """Run the domain's checks and every generic metric over ``samples`` in chunks, on every
    core for a big set (``workers``: None = :func:`eval_workers`); ``sink`` gets each chunk's
    records, in order, as soon as they are scored (so an interrupted eval keeps what it
    finished). Set-level figures come at the end, from every result."""
    return score_sets(domain, [samples], ctx, sink, workers)[0]


def score_sets(domain: Domain, sets: list[list[str]], ctx: EvalContext,
               sink: Callable[[list[dict[str, Any]]], None] | None = None,
               workers: int | None = None) -> list[ScoredSet]:
    """:func:`score` for several sets in one pass (samples, then the real and corrupted
    baseline: one pool for all, started once); ``sink`` gets the first set's records, which
    come first. Each set's figures are its own."""
    checkers = [domain, *get_registry().metrics]
    specs: dict[str, MetricSpec] = {}
    for c in checkers:
        specs.update({m.name: m for m in c.metrics})
    t0 = time.perf_counter()
    samples = [s for one in sets for s in one]
    local = [i for one in sets for i in range(len(one))]  # each sample's index within its set
    first = [0]  # where each set starts in ``samples``
    for one in sets:
        first.append(first[-1] + len(one))
    per_checker: dict[int, list[CheckResult]] = {id(c): [] for c in checkers}
    records: list[dict[str, Any]] = []
    seconds = [0.0] * len(sets)
    workers = eval_workers(domain, samples, ctx) if workers is None else workers
    for (lo, hi), results in _chunk_results(checkers, samples, ctx, workers):
        for c, res in zip(checkers, results, strict=True):
            per_checker[id(c)] += res
        fresh = [_record(local[j], samples[j], per_sample)
                 for j, per_sample in zip(range(lo, hi), zip(*results, strict=True), strict=True)]
        records += fresh
        if sink and lo < first[1]:
            sink(fresh[:first[1] - lo])
        for n in range(len(sets)):
            if lo < first[n + 1] <= hi:
                seconds[n] = time.perf_counter() - t0 - sum(seconds[:n])
    out = []
    for n, one in enumerate(sets):
        part = {key: res[first[n]:first[n + 1]] for key, res in per_checker.items()}
        values = _aggregate(checkers, part)
        set_issues = []
        for c in checkers:
            try:
                values.update(c.summarize(one, part[id(c)], ctx))
            except Exception as exc:  # noqa: BLE001 - a set-level failure goes in the summary, not raised
                set_issues.append(_error_issue(exc).to_dict())
        out.append(ScoredSet(specs, records[first[n]:first[n + 1]], values, seconds[n], sum(map(len, one)),
                             set_issues))
    return out


def _aggregate(checkers: list, per_checker: dict[int, list[CheckResult]]) -> dict[str, float | None]:
    """Each checker's "sum" and "mean" metrics over its own results (a metric two checkers
    declare: the later one's, as in the records). A result object shared by many samples
    (names) is read once and weighted by its count: the work is per distinct result."""
    values: dict[str, float | None] = {}
    for c in checkers:
        results = per_checker[id(c)]
        counts = Counter(map(id, results))
        distinct = {id(r): r for r in results}
        for spec in c.metrics:
            if spec.aggregate not in ("sum", "mean"):
                continue
            total, n = 0.0, 0
            for key, res in distinct.items():
                v = res.metrics.get(spec.name)
                if v is not None:
                    total += v * counts[key]
                    n += counts[key]
            values[spec.name] = total if spec.aggregate == "sum" else (total / n if n else None)
    return values


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
    """Lengths of the real held-out texts (the corrupted set copies them): the samples' own
    lengths, every other one or fewer, picked evenly across the set (so the lengths' spread is
    the samples'), to about half the samples' characters and at most ``max_chars``: the real and
    the corrupted set together cost about as much as the samples. A set of one keeps its one."""
    lengths = [min(max(1, len(s)), max_chars) for s in samples]
    total = sum(lengths)
    if not lengths:
        return []
    keep = max(1, round(len(lengths) * min(max_chars, total / 2) / total))  # how many texts
    picked = [lengths[j * len(lengths) // keep] for j in range(keep)]
    while sum(picked) > max_chars and len(picked) > 1:
        picked.pop()
    return picked


def eval_context(domain: Domain, against: str | None, ws: Path, options: dict[str, Any]) -> EvalContext:
    """What the checks of one eval are handed: the --against corpus (loaded once) and the options."""
    data = None
    if against:
        from gen.core.corpora import load_corpus

        spec, data = load_corpus(against, ws)
        if spec.domain != domain.name:
            raise GenError(f"--against {against!r} is a {spec.domain!r} corpus, not {domain.name!r}")
    return EvalContext(domain, data, options)


def score_texts(domain: str, texts: list[str], against: str | None, ws: Path, baseline: bool = True,
                sink: Callable[[list[dict]], None] | None = None, options: dict[str, Any] | None = None,
                temperature: float = SampleOptions.temperature) -> EvalReport:
    """`gen eval DOMAIN FILE` on texts: the domain's eval options checked (defaults filled in),
    the context built once, the set scored (evals/records.py writes and shows the report)."""
    dom = get_domain(domain)
    values = dom.eval_defaults()
    unknown = set(options or {}) - set(values)
    if unknown:
        raise GenError(f"unknown eval option(s) {sorted(unknown)} for domain {domain!r}; "
                       f"its options: {sorted(values) or 'none'}")
    report = evaluate(dom, texts, eval_context(dom, against, ws, {**values, **(options or {})}), baseline=baseline,
                      sink=sink, temperature=temperature)
    return report


def evaluate(domain: Domain, samples: list[str], ctx: EvalContext, baseline: bool = True,
             seed: int = 0, sink: Callable[[list[dict[str, Any]]], None] | None = None,
             temperature: float = SampleOptions.temperature) -> EvalReport:
    """Score samples (records to ``sink`` as they are scored), and (with a corpus in ``ctx``)
    real and corrupted held-out text beside them (half the samples' characters each, see
    :func:`baseline_lengths`, at most BASELINE_MAX_CHARS) and samples of the corpus's best
    n-gram model drawn at ``temperature`` (the samples' own, when known)."""
    if ctx.data is None or not baseline or not samples:
        report = EvalReport(score(domain, samples, ctx, sink), meta={"domain": domain.name})
        if ctx.data is not None:
            report.meta["against"] = ctx.data.name
        return report
    rng = random.Random(seed)
    real = domain.baseline(ctx.data, baseline_lengths(samples), rng)
    corrupted = [domain.corrupt(t, rng) for t in real]
    ngram, meta = ngram_samples(domain, samples, ctx, temperature, rng)
    sets = score_sets(domain, [samples, real, corrupted, *([ngram] if ngram else [])], ctx, sink)
    return EvalReport(*sets[:3], meta={"domain": domain.name, "against": ctx.data.name, "baseline_texts": len(real),
                                       "baseline_chars": sum(map(len, real)), **meta},
                      ngram=sets[3] if ngram else None)


def ngram_samples(domain: Domain, samples: list[str], ctx: EvalContext, temperature: float,
                  rng: random.Random) -> tuple[list[str], dict[str, Any]]:
    """As many samples of the corpus's best n-gram model as there are samples, as long (at most
    BASELINE_MAX_CHARS in all), at ``temperature``, cut at the domain's stop string."""
    from gen.evals.baselines.store import sampler_for

    lengths = [min(max(1, len(s)), BASELINE_MAX_CHARS) for s in samples]
    while sum(lengths) > BASELINE_MAX_CHARS and len(lengths) > 1:
        lengths.pop()
    try:
        sampler = sampler_for(ctx.data)
    except GenError as exc:  # a corpus n-gram models cannot be built on: said, not fatal
        return [], {"ngram": f"no n-gram column: {exc}"}
    texts = [ctx.data.vocab.decode(ids) for ids in sampler.sample(lengths, temperature, rng)]
    if domain.stop:
        texts = [t.split(domain.stop)[0] for t in texts]
    return texts, {"ngram_order": sampler.k + 1, "ngram_texts": len(texts), "ngram_chars": sum(map(len, texts)),
                   "ngram_temperature": temperature}

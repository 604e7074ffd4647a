"""Eval side of `gen bench`: how fast `gen eval` judges text, per domain, with and without
``--against``.

The samples are real held-out text of prepared corpora cut into whole documents of 1-6 KB (the
val split's documents in that range; a corpus of few long documents, like a play, is cut at line
ends into pieces of that size; line-per-sample domains such as names use their lines), so the
figures are what a user scoring samples of that size would see. Measured side by side in one
run, per corpus: the domain's checks alone, the copy metric alone, every check with the corpus
(`--against`), and the whole `gen eval --against` (samples plus the real and corrupted
baseline), each the best of REPEATS runs. Index and corpus-statistics loading, and what the
checks load once (word lists, lookup tables), is timed apart, once, before the timed runs.
The reference figures in evals/BENCHMARKS.md come from corpora prepared from the development
corpora beside the checkout (the product never reads them).
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

from gen.core.corpora import load_corpus
from gen.core.domain import EvalContext
from gen.core.registry import get_domain
from gen.core.table import render
from gen.evals.harness import eval_context

DOC_MIN, DOC_MAX = 1000, 6000  # characters: "whole documents of 1-6 KB"


def held_out_documents(data, samples_per_line: bool, max_chars: int, seed: int = 0) -> list[str]:
    """Real held-out samples adding up to about ``max_chars`` (see the module docstring)."""
    rng = random.Random(seed)
    docs: list[str] = []
    kept = 0  # characters in docs
    short = ""  # consecutive short documents (a play's lines), joined until they make one sample
    target = rng.randint(DOC_MIN, DOC_MAX)
    for doc in data.documents("val"):
        if samples_per_line:
            new = [line for line in doc.split("\n") if line]
        elif DOC_MIN <= len(doc) <= DOC_MAX:
            new = [doc]
        elif len(doc) > DOC_MAX:
            new = _cut(doc, rng)
        else:
            short += doc + data.separator
            new = [short] if len(short) >= target else []
            if new:
                short, target = "", rng.randint(DOC_MIN, DOC_MAX)
        docs += new
        kept += sum(map(len, new))
        if kept >= 4 * max_chars:
            break
    if samples_per_line and docs:  # a small held-out list (names) is repeated to a measurable size
        docs = docs * -(-max_chars // max(1, kept))
    rng.shuffle(docs)
    out, total = [], 0
    for d in docs:
        if total >= max_chars:
            break
        out.append(d)
        total += len(d)
    return out


def _cut(doc: str, rng: random.Random) -> list[str]:
    """A long document in pieces of DOC_MIN..DOC_MAX characters, each ending at a line end."""
    pieces, at = [], 0
    while len(doc) - at >= DOC_MIN:
        end = doc.rfind("\n", at + DOC_MIN, at + rng.randint(DOC_MIN, DOC_MAX))
        end = end + 1 if end > 0 else min(len(doc), at + DOC_MAX)
        pieces.append(doc[at:end])
        at = end
    return pieces


REPEATS = 3  # timed runs per cell, best kept: a shared machine's speed moves by 20-40% within minutes


def _rate(chars: int, fn, *args) -> float:
    """MB/s of ``chars`` characters handled by ``fn(*args)``, the best of REPEATS runs."""
    best = float("inf")
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - t0)
    return chars / max(best, 1e-9) / 1e6


def bench_eval(corpora: list[str], ws: Path, max_chars: int = 400_000, log=print) -> list[dict[str, Any]]:
    """One row per prepared corpus: MB/s (of sample text) for each way of scoring it."""
    from gen.evals.copydetect.copying import CopyingMetric
    from gen.evals.harness import eval_workers, evaluate, score

    rows = []
    for name in corpora:
        spec, data = load_corpus(name, ws)
        domain = get_domain(spec.domain)
        texts = held_out_documents(data, domain.samples_per_line, max_chars)
        chars = sum(map(len, texts))
        log(f"eval {name} ({domain.name}): {len(texts):,} held-out samples, {chars / 1e6:.2f} MB ...")
        t0 = time.perf_counter()
        ctx = eval_context(domain, name, ws, {})
        CopyingMetric().check_many(texts[:1], ctx)  # the copy index, loaded or built, outside the timing
        plain = EvalContext(domain)
        for c in (plain, ctx):  # and what the checks load once (word lists, tables, corpus statistics)
            score(domain, texts[:1], c, workers=1)
        load_s = time.perf_counter() - t0
        row = {"corpus": name, "domain": domain.name, "samples": len(texts), "chars": chars,
               "index_load_s": round(load_s, 3), "workers": eval_workers(domain, texts, ctx),
               "checks": _rate(chars, score, domain, texts, plain),
               "copy": _rate(chars, CopyingMetric().check_many, texts, ctx),
               "against": _rate(chars, score, domain, texts, ctx),
               "eval_against": _rate(chars, evaluate, domain, texts, ctx)}
        rows.append(row)
    return rows


TARGETS = {"c": 2.0, "latex": 10.0, "wiki": 5.0, "prose": 5.0, "names": 1.0}  # MB/s with --against


def format_eval(rows: list[dict[str, Any]]) -> str:
    head = ["corpus", "domain", "samples", "MB", "index s", "procs <=", "checks", "copy", "--against", "eval --against",
            "target"]
    body = [[r["corpus"], r["domain"], f"{r['samples']:,}", f"{r['chars'] / 1e6:.2f}", f"{r['index_load_s']:.2f}",
             str(r.get("workers", 1)),
             f"{r['checks']:.2f}", f"{r['copy']:.1f}", f"{r['against']:.2f}", f"{r['eval_against']:.2f}",
             _target(r)] for r in rows]
    return (f"eval throughput (MB/s of samples, best of {REPEATS}; procs <= = processes allowed to score the samples (a pool starts "
            "only when a timed chunk says it pays); checks = no corpus, "
            "copy = the copy metric alone (one process), --against = every check with the corpus, eval --against = "
            "that plus the real and corrupted baseline)\n"
            + render(body, [head], align="<<>>>>>>>>>"))


def _target(r: dict[str, Any]) -> str:
    t = TARGETS.get(r["domain"])
    if t is None:
        return "-"
    return f"{'met' if r['against'] >= t else 'MISS'} {t:g}"

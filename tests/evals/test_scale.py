"""The judge at scale: chunks scored in a process pool give exactly what one process gives, and
every domain stays bounded on adversarial input (no hang, a record per sample, no traceback)."""

from __future__ import annotations

import random

import pytest

from gen.core.domain import EvalContext
from gen.core.registry import get_domain
from gen.evals import harness
from gen.evals.copydetect import copying
from gen.evals.harness import eval_context


def _c_like(rng: random.Random, n: int) -> list[str]:
    body = ["int x = {a};", "x += {a} * y;", "if (x > {a}) {{ return x; }}", "while (x) {{ x--; }}",
            "char *s = \"v{a}\";", "return f(x, {a});", "y = (x + {a}];", "{{ {{ z = {a};"]
    out = []
    for i in range(n):
        lines = [rng.choice(body).format(a=rng.randint(0, 99)) for _ in range(rng.randint(3, 30))]
        out.append(f"int f{i}(int y) {{\n    " + "\n    ".join(lines) + "\n}\n")
    return out


@pytest.mark.parametrize("domain_name", ["c", "prose", "names"])
def test_a_process_pool_scores_exactly_as_one_process(domain_name, ws, names_file, run, monkeypatch):
    monkeypatch.setattr(harness, "POOL_MIN_SECONDS", 0.0)  # a pool even for this little work
    rng = random.Random(4)
    if domain_name == "names":
        samples = [line for line in names_file.read_text().splitlines()] * 3
        run("prepare", "nm", "--domain", "names", "--src", str(names_file))
        ctx = eval_context(get_domain("names"), "nm", ws, {})
    elif domain_name == "c":
        samples, ctx = _c_like(rng, 700), EvalContext(get_domain("c"))
    else:
        words = "the king is dead and long live queen my lord shall we go now".split()
        samples = [" ".join(rng.choice(words) for _ in range(rng.randint(5, 300))) + "." for _ in range(800)]
        src = ws.parent / "play.txt"
        src.write_text("\n\n".join(f"KING:\n{s}" for s in samples[::7]) + "\n", encoding="utf-8")
        run("prepare", "pl", "--domain", "prose", "--src", str(src))
        ctx = eval_context(get_domain("prose"), "pl", ws, {})
    domain = get_domain(domain_name)
    assert len(harness.chunks(samples)) > 2
    copying._cache.clear()
    seen = []
    two = harness.score(domain, samples, ctx, sink=seen.extend, workers=2)
    if ctx.data is not None:  # loaded here before the fork (workers inherit them), not by each worker
        assert ctx._stats_built and len(copying._cache) == 1
    one = harness.score(domain, samples, ctx, workers=1)
    assert two.records == one.records and two.values == one.values
    assert [r["index"] for r in seen] == list(range(len(samples)))  # streamed in order
    if domain_name == "prose":
        assert any(r["metrics"]["copy_longest"] for r in one.records)  # the corpus really was used


def test_sets_scored_in_one_pass_are_scored_as_each_alone(monkeypatch):
    """evaluate() scores the samples, the real and the corrupted baseline in one pass (one pool):
    each set's records (numbered from 0), figures and streamed records are its own."""
    monkeypatch.setattr(harness, "POOL_MIN_SECONDS", 0.0)
    rng = random.Random(9)
    c = get_domain("c")
    sets = [_c_like(rng, 300), _c_like(rng, 7), _c_like(rng, 120)]
    seen = []
    together = harness.score_sets(c, sets, EvalContext(c), sink=seen.extend, workers=2)
    for one, got in zip(sets, together, strict=True):
        alone = harness.score(c, one, EvalContext(c), workers=1)
        assert got.records == alone.records and got.values == alone.values and got.chars == alone.chars
    assert [r["index"] for r in seen] == list(range(len(sets[0])))  # only the samples' records stream


def test_chunks_bound_samples_and_characters():
    samples = ["x" * 100] * 1000 + ["y" * 1_000_000] + ["z"] * 3
    bounds = harness.chunks(samples)
    assert bounds[0] == (0, harness.CHUNK_SAMPLES) and bounds[-1][1] == len(samples)
    assert all(a < b for a, b in bounds) and all(b == c for (_, b), (c, _) in zip(bounds, bounds[1:], strict=False))
    assert (1000, 1001) in bounds  # the huge sample is a chunk of its own
    assert harness.chunks([]) == []


def test_small_sets_and_tool_options_stay_in_one_process(monkeypatch):
    c = get_domain("c")
    monkeypatch.delenv(harness.WORKERS_ENV, raising=False)
    assert harness.eval_workers(c, ["int x;"] * 10, EvalContext(c)) == 1
    big = ["int x;\n" * 1000] * 400
    assert harness.eval_workers(c, big, EvalContext(c, options={"gcc": True})) == 1
    monkeypatch.setenv(harness.WORKERS_ENV, "3")
    assert harness.eval_workers(c, ["int x;"], EvalContext(c)) == 3


ADVERSARIAL = {
    "braces": "{" * 200_000,  # tree-sitter's queries are quadratic in depth: 41 s at 100,000 before
    "mixed": "({[" * 60_000,
    "chain": "<a>" * 20_000,  # a 20,000-deep comparison chain: 74 s for 30 KB before
    "closers": "(" * 50_000 + "]" * 50_000,  # each closer used to scan the whole open stack
    "ifs": "{\n#if X\n" * 20_000,  # each #if used to copy the open stack
    "lines": "a\n" * 100_000,
    "surrogates": "\ud800" * 1000 + "x\x00y",
}


@pytest.mark.parametrize("domain_name", ["c", "latex", "wiki", "prose", "names", "text"])
def test_adversarial_samples_are_scored_never_hang_or_raise(domain_name):
    d = get_domain(domain_name)
    res = harness.score(d, list(ADVERSARIAL.values()), EvalContext(d), workers=1)
    assert len(res.records) == len(ADVERSARIAL)
    errors = [i for r in res.records for i in r["issues"] if i["kind"] == harness.CHECK_ERROR]
    assert errors == []


def test_c_deep_nesting_is_a_budget_issue_and_the_counts_stay_exact():
    from gen.plugins.c import lex as c_lex

    b = c_lex.balance("(" * 5000 + "]" * 5000)
    assert b.n_mismatches == 5000 and b.n_unclosed == 5000 and len(b.mismatches) == c_lex.LIST_LIMIT
    assert b.depth == 5000 and b.closing == ")" * 5000
    c = get_domain("c")
    res = c.check("int f(void) {" + "{" * 100_000, EvalContext(c))
    assert any(i.kind == "budget" for i in res.issues)
    assert res.metrics["unclosed_brackets"] == 100_001
    # an ordinary function nested a little is checked by the tree checks as before
    ok = c.check("int f(int a) {\n    if (a) {\n        return a;\n    }\n    return 0;\n}\n", EvalContext(c))
    assert not any(i.kind == "budget" for i in ok.issues) and ok.metrics["falls_off_end"] == 0.0


def test_a_pool_starts_only_for_work_worth_it(monkeypatch):
    """A chunk is timed in this process first: when the rest would take less than
    POOL_MIN_SECONDS, no process is forked and the rest goes in big chunks (results are the same
    either way, and every sample is scored once, in order)."""
    import os

    c = get_domain("c")
    samples = _c_like(random.Random(2), 300)
    checkers = [c, *harness.get_registry().metrics]
    forks = []
    real_fork = os.fork
    monkeypatch.setattr(os, "fork", lambda: forks.append(1) or real_fork())
    monkeypatch.setattr(harness, "POOL_MIN_SECONDS", 1e9)  # nothing is worth a pool
    alone = list(harness._chunk_results(checkers, samples, EvalContext(c), 2))
    assert forks == []
    monkeypatch.setattr(harness, "POOL_MIN_SECONDS", 0.0)  # everything is
    pooled = list(harness._chunk_results(checkers, samples, EvalContext(c), 2))
    assert forks and len(pooled) > len(alone)  # a worker's chunks are smaller than this process's

    def flat(chunks):  # per sample, in order: every checker's metrics and issues
        return [(r.metrics, [i.to_dict() for i in r.issues])
                for _, chunk in chunks for per_sample in zip(*chunk, strict=True) for r in per_sample]

    for got in (alone, pooled):
        bounds = [b for b, _ in got]
        assert bounds[0][0] == 0 and bounds[-1][1] == len(samples)
        assert all(hi == lo2 for (_, hi), (lo2, _) in zip(bounds, bounds[1:], strict=False))
    assert flat(pooled) == flat(alone)

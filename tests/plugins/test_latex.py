"""The LaTeX domain: hand-written fixtures for every check, then calibration on the real
Stacks Project (held-out windows vs corrupted ones), the tracker over every chapter, speed."""

from __future__ import annotations

import random
import shutil
import string
import time
from pathlib import Path

import pytest

from gen.core.data import CorpusData, prepare
from gen.core.domain import CheckResult, EvalContext, PrepareReport
from gen.core.registry import get_domain, resolve_corpus
from gen.plugins.latex import METRICS, LatexStats, strip_comments
from gen.plugins.latex import compile as latex_compile
from gen.plugins.latex import corrupt as latex_corrupt
from gen.plugins.latex.features import latex_features
from gen.plugins.latex.scan import scan
from gen.plugins.latex.tracker import LatexTracker

D = get_domain("latex")
NAMES = {m.name for m in METRICS}
HAS_PDFLATEX = shutil.which("pdflatex") is not None


def kinds(text: str, document: bool | None = None) -> list[str]:
    return [k for k, _, _ in scan(text, document).issues]


def check(text: str, stats: LatexStats | None = None, **options) -> CheckResult:
    ctx = EvalContext(D, None, options)
    ctx._stats, ctx._stats_built = stats, True
    return D.check(text, ctx)


# ---- the stack matcher ---------------------------------------------------------------------
def test_environment_errors_have_exact_kinds():
    assert kinds(r"\begin{proof} x \end{lemma}") == ["env_mismatch"]
    r = scan(r"\begin{proof}\begin{enumerate}\item x \end{proof}")
    assert r.counts["env_unclosed"] == 1 and "enumerate" in r.issues[0][1]
    assert kinds(r"\documentclass{article} \begin{document} x \end{lemma} \end{document}") == ["env_stray"]
    assert kinds("\\documentclass{article}\n\\begin{document}\n\\begin{lemma} x") == ["env_unclosed", "env_unclosed"]
    # a window may close what opened before it, and stop with things open (the length limit)
    r = scan("we win.\n\\end{proof}\n\\begin{lemma}\nLet $x$")
    assert r.errors == 0 and r.counts["env_open_at_end"] == 1 and r.outer == [("env", "proof")]
    res = check(r"\begin{proof} x \end{lemma}")
    issue = next(i for i in res.issues if i.kind == "env_mismatch")
    assert "proof" in issue.message and "lemma" in issue.message and issue.offset == 16
    assert "\\end{lemma}" in issue.excerpt and res.metrics["structure_ok"] == 0.0


def test_verbatim_comments_and_escapes_are_respected():
    assert kinds("% \\begin{proof} {\n\\begin{lemma} x \\end{lemma}") == []
    assert kinds("\\begin{verbatim}\\end{lemma} } $\\end{verbatim}\n\\begin{reference} { \\end{reference}") == []
    assert kinds(r"$\{ x \}$ costs 50\% and \verb|}{$| too \\ {x}") == []
    assert kinds(r"\begin{lemma} 50\% } \end{lemma}") == ["brace_unmatched"]  # \% is no comment


def test_braces():
    assert kinds(r"\begin{lemma} } \end{lemma}") == ["brace_unmatched"]
    assert kinds(r"\begin{lemma} $\mathcal{O$ and \end{lemma}") == ["brace_unclosed"]
    assert kinds(r"\begin{lemma} {\bf x \end{lemma}") == ["brace_unclosed"]
    assert kinds("x}", document=True) == ["brace_unmatched"]
    assert scan("x} y {z").errors == 0  # a window: the } closes an older group, {z is cut


def test_math_delimiters():
    for ok in ["$x$ and $$y$$", r"\[x\] and \(y\)", r"$\text{for $x$}$", r"$a$$b$",
               "\\begin{align*} a &= b \\\\ c \\end{align*}", "$x\ny$"]:
        assert scan(ok, document=True).errors == 0, ok
    assert kinds(r"\begin{equation} $x$ \end{equation}") == ["math_dollar_in_display"] * 2
    assert kinds("$x\n\ny z", document=True) == ["math_paragraph"]
    assert kinds(r"x \] y", document=True) == ["math_unmatched"]
    assert kinds(r"$x \[ y$", document=True) == ["math_nested"]
    assert kinds(r"\begin{lemma} $x \end{lemma}", document=True) == ["math_unclosed"]
    assert kinds(r"$x \begin{proof} y \end{proof}", document=True) == ["env_in_math"]


def test_left_right_pairing():
    assert scan(r"$\left( \frac{a}{b} \right)$ and $\left. x \right|_{y}$").errors == 0
    assert kinds(r"$\left( x$") == ["left_unclosed"]
    assert kinds(r"$x \right)$") == ["right_unmatched"]
    assert kinds(r"\left( x \right)", document=True) == ["left_outside_math", "right_unmatched"]
    assert scan(r"$\leftarrow \rightarrow$").errors == 0


def test_window_may_start_inside_math():
    r = scan("\\mathcal{O}_X$ and $y$.\n\nNext paragraph with $z$.")
    assert r.errors == 0 and r.start == "$"
    r = scan("A \\ar[r] & B\n}\n$$\nwhich proves it.\n\nAnd $x$.")
    assert r.errors == 0 and r.start == "$$"


def test_completion_closes_the_window():
    text = "we win.\n\\end{proof}\n\\begin{lemma}\nLet $\\mathcal{O"
    completed, prefix = scan(text).complete(text)
    assert prefix.startswith("\\begin{proof}") and completed.endswith("\\end{lemma}\n")
    r = scan(completed, document=True)
    assert r.errors == 0 and not r.open_frames


# ---- check(): metrics, references, vocabulary, never raising -------------------------------
def test_check_never_raises_and_reports_declared_metrics():
    rng = random.Random(0)
    alphabet = "\\{}$%[]()&^_ \n" + string.ascii_letters
    nasty = ["", "\\", "$", "%", "{" * 5000, "}" * 5000, "\\begin{" * 500, "\\end{x}" * 300, "\x00\xff\ufffd",
             "\\verb", "\\verb*", "\\begin{verbatim}", "$$" * 1001, "\\left" * 200, "\\text{" * 100 + "$" * 7]
    nasty += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 400))) for _ in range(200)]
    stats = LatexStats(frozenset({"mathcal"}), frozenset({"lemma"}), frozenset({"x"}), [])
    for text in nasty:
        for st in (None, stats):
            res = check(text, st, pylatexenc=300)
            assert set(res.metrics) == NAMES, text[:40]
            assert all(v is None or isinstance(v, float) for v in res.metrics.values())
            assert len(res.issues) <= 100


def test_references():
    res = check(r"see Lemma \ref{lemma-a} and (\eqref{eq-b}); \label{lemma-a}")
    assert res.metrics["refs_undefined"] == 0.5 and res.metrics["refs_unknown"] is None
    assert [i.message for i in res.issues if i.kind == "undefined_ref"] == ["\\ref{eq-b}: the sample never defines this label"]
    stats = LatexStats(frozenset({"ref"}), frozenset(), frozenset({"lemma-flat", "eq-b"}), [])
    # Stacks cross-references prefix the chapter: algebra-lemma-flat is lemma-flat of algebra.tex
    res = check(r"\ref{algebra-lemma-flat}, \ref{eq-b}, \ref{lemma-invented}", stats)
    assert res.metrics["refs_unknown"] == pytest.approx(1 / 3)
    assert [i.kind for i in res.issues] == ["unknown_ref"] and "lemma-invented" in res.issues[0].message
    assert check("no references here", stats).metrics["refs_undefined"] is None


def test_invented_commands_and_environments():
    stats = LatexStats(frozenset({"mathcal", "begin", "end", "def", "ref"}), frozenset({"lemma"}), frozenset(), [])
    res = check(r"\begin{lemmma} $\mathcla{O}$ \end{lemmma} \def\foo{x} \foo and \mathc", stats)
    assert res.metrics["invented_macros"] == 1.0  # \mathcla; \foo is defined here, \mathc is cut
    assert res.metrics["invented_envs"] == 1.0
    assert {i.kind for i in res.issues} == {"invented_macro", "invented_env"}
    assert check(r"\mathcla", None).metrics["invented_macros"] is None  # needs --against


def test_pylatexenc_is_an_option():
    assert check(r"\begin{proof} x \end{proof}").metrics["pylatexenc_ok"] is None
    assert check(r"\begin{proof} x \end{proof}", pylatexenc=True).metrics["pylatexenc_ok"] == 1.0
    bad = check(r"\begin{proof} x \end{lemma}", pylatexenc=True)
    assert bad.metrics["pylatexenc_ok"] == 0.0
    assert any(i.kind == "pylatexenc_error" and "lemma" in i.message for i in bad.issues)
    assert check("x" * 50, pylatexenc=10).metrics["pylatexenc_ok"] is None  # over the size bound
    # the window is completed first: closing an older environment is no parse error
    assert check("x \\end{proof}\n\\begin{lemma} y", pylatexenc=True).metrics["pylatexenc_ok"] == 1.0


@pytest.mark.skipif(not HAS_PDFLATEX, reason="pdflatex not installed (apt-get install texlive-latex-base)")
def test_compile_in_parallel_with_first_error():
    samples = ["Let $x \\in \\mathbb{Z}$.\n\\end{proof}\n\\begin{lemma}\nThen $x^2 \\geq 0$",
               "Fine text.\nMore text.\n\\undefinedcommand{a} here\n", "\\input{/etc/passwd} $y$"]
    ctx = EvalContext(D, None, {"compile": True, "compile_timeout": 30})
    results = [D.check(s, ctx) for s in samples]  # returns at once, compiles run on the pool
    # the headline compiles the text as written (the stray \end{proof} fails it); the repaired
    # figure completes the window first
    assert [r.metrics["compile_ok"] for r in results] == [0.0, 0.0, 1.0]
    assert [r.metrics["compile_ok_repaired"] for r in results] == [1.0, 0.0, 1.0]
    err = next(i for i in results[1].issues if i.kind == "compile_error")  # the first error, at its line
    assert err.message.startswith("Undefined control sequence") and err.offset == samples[1].index("\\undef")
    assert "\\undefinedcommand" in err.excerpt


@pytest.mark.skipif(not HAS_PDFLATEX, reason="pdflatex not installed (apt-get install texlive-latex-base)")
def test_compile_headline_is_the_text_as_written():
    doc = "\\documentclass{article}\n\\begin{document}\nHello $x$.\n\\end{document}\n"
    broken_doc = doc.replace("\\end{document}", "")
    unclosed = "Some text.\n\\begin{itemize}\n\\item one\n"
    stray = "text \\end{proof} more"
    ctx = EvalContext(D, None, {"compile": True, "compile_timeout": 30})
    got = {name: D.check(s, ctx).metrics for name, s in
           [("doc", doc), ("broken_doc", broken_doc), ("unclosed", unclosed), ("stray", stray)]}
    assert got["doc"]["compile_ok"] == 1.0 and got["broken_doc"]["compile_ok"] == 0.0
    assert got["unclosed"]["compile_ok"] == 0.0 and got["unclosed"]["compile_ok_repaired"] == 1.0
    assert got["stray"]["compile_ok"] == 0.0 and got["stray"]["compile_ok_repaired"] == 1.0


def test_missing_engine_is_reported_once(monkeypatch):
    monkeypatch.setattr(latex_compile.shutil, "which", lambda name: None)
    d = type(D)()
    ctx = EvalContext(d, None, {"compile": True})
    results = [d.check("$x$", ctx) for _ in range(3)]
    assert all(r.metrics["compile_ok"] is None for r in results)
    notes = [i for r in results for i in r.issues if i.kind == "compile_unavailable"]
    assert len(notes) == 1 and "pdflatex not found" in notes[0].message


# ---- prepare ------------------------------------------------------------------------------
def test_documents_follow_the_chapter_list(tmp_path: Path):
    spec = resolve_corpus("latex")
    for name in ("a", "b", "front", "preamble"):
        (tmp_path / f"{name}.tex").write_text(f"% {name}\n\\section{{{name}}}\n", encoding="utf-8")
    (tmp_path / "README").write_text("not tex", encoding="utf-8")
    (tmp_path / "chapters.tex").write_text("\\hyperref[b-section-phantom]{B}\n\\hyperref[a-section-phantom]{A}\n"
                                           "\\hyperref[index-section-phantom]{Index}\n", encoding="utf-8")
    report = PrepareReport()
    docs = list(D.documents(tmp_path, spec, {}, report))
    heads = [d.split("\n")[0] for d in docs]
    assert heads == ["\\hyperref[b-section-phantom]{B}", "% front", "% preamble", "% b", "% a"]
    assert report.skipped == {"not matching the corpus file patterns": 1}
    assert "chapters.tex" in report.notes[0]
    (tmp_path / "Makefile").write_text("LIJST = preamble a \\\n\tb\nOTHER = x\n", encoding="utf-8")
    docs = list(D.documents(tmp_path, spec, {"strip_comments": True}, PrepareReport()))
    assert [d.strip() for d in docs][2:] == ["\\section{preamble}", "\\section{a}", "\\section{b}"]
    for f in ("Makefile", "chapters.tex"):
        (tmp_path / f).unlink()
    docs = list(D.documents(tmp_path, spec, {}, PrepareReport()))
    assert [d.split("\n")[0] for d in docs] == ["% a", "% b", "% front", "% preamble"]


def test_strip_comments():
    text = ("a % note\n% a whole comment line\nb 50\\% c\\\\% gone\n\\begin{verbatim}\n% kept\n\\end{verbatim}\n"
            "\\verb|%| d\n\n% before a blank line\n\ne")
    assert strip_comments(text) == ("a\nb 50\\% c\\\\\n\\begin{verbatim}\n% kept\n\\end{verbatim}\n"
                                    "\\verb|%| d\n\n\ne")


def test_corruptions_do_what_they_say():
    rng = random.Random(3)
    text = "\\begin{lemma}\nSee \\ref{x}, $\\left( \\mathcal{O} \\right)$.\n\\end{lemma}\n"
    assert scan(latex_corrupt.rename_end(text, rng)).counts["env_mismatched"] == 1
    assert "\\end" not in latex_corrupt.drop_end(text, rng)
    dropped = latex_corrupt.drop_brace(text, rng)
    assert dropped.count("{") + dropped.count("}") == text.count("{") + text.count("}") - 1
    assert latex_corrupt.drop_dollar(text, rng).count("$") == 1
    assert "\\right" not in latex_corrupt.drop_right(text, rng)
    assert latex_corrupt.invent_reference(text, rng).count("\\ref{xq}") == 1
    renamed = latex_corrupt.invent_environment(text, rng)
    assert renamed.count("{lemmaq}") == 2 and scan(renamed).errors == 0
    assert latex_corrupt.corrupt("plain words", rng) == "plain words"


# ---- tracker and features -----------------------------------------------------------------
def fed(text: str, **kw) -> LatexTracker:
    t = LatexTracker(**kw)
    t.feed_text(text)
    return t


def test_tracker_constraints():
    t = fed("\\begin{proof}\n\\begin{lemma} x \\end{le")
    assert t.constraint().allow == frozenset("m")
    t.feed_text("mma}\n\\end{")
    assert t.constraint().allow == frozenset("p")
    assert "}" in fed("x").constraint().ban  # nothing open
    assert "}" in fed("\\begin{lemma} {x} ").constraint().ban  # the innermost frame is the environment
    assert "}" not in fed("{x").constraint().ban
    assert "$" in fed("\\begin{equation} x").constraint().ban  # $ inside display math
    assert fed("$$ x $").constraint().allow == frozenset("$")  # the second $ of a closing $$
    assert "\n" in fed("$x\n").constraint().ban and "\n" not in fed("x\n").constraint().ban
    assert fed("\\begin{lemma} $x \\end").constraint().allow == frozenset(string.ascii_letters + "@")
    assert fed("$x \\right").constraint().allow is not None  # no \left open: only \rightarrow & co
    assert "[" in fed("$x \\").constraint().ban and "]" in fed("x \\").constraint().ban
    assert fed("$\\begin{p").constraint().allow == frozenset("m")  # pmatrix, not proof, inside math
    assert fed("\\begin{p").constraint().allow is None
    assert fed("% \\begin{proof} {").constraint().free and fed("\\verb|}{").constraint().free
    assert fed("\\begin{enumerate}", enabled=["brace"]).constraint().ban == frozenset("}")


def test_tracker_counts_what_it_bans():
    t = fed("\\begin{proof} x \\end{lemma} }")
    assert t.violations() == 2  # the l of lemma, the } with nothing open
    assert fed("\\begin{proof} x \\end{proof} $x$ {y}").violations() == 0


def test_tracker_closing_order():
    t = fed("\\begin{proof}\n\\begin{enumerate}\n\\item $\\left( x + \\mathcal{O")
    closing = t.closing()
    assert closing == "}\\right.$ \n\\end{enumerate}\n\\end{proof}"
    text = "\\begin{proof}\n\\begin{enumerate}\n\\item $\\left( x + \\mathcal{O" + closing
    assert scan(text, document=True).errors == 0 and fed(text).violations() == 0
    for cut in ["\\begin{lem", "x \\end", "$$ a $", "\\verb|ab", "% c {", "\\beg", "\\", "\\begin{verbatim} x",
                "$x", "\\text{", "\\left"]:
        t = fed(cut)
        text = cut + t.closing()
        r = scan(text, document=True)
        assert r.errors == 0 and not r.open_frames, (cut, text)
        assert fed(text).violations() == 0 and not fed(text).stack


def test_tracker_fast_path_and_closing_on_random_text():
    """feed_text reads exactly like feed(); closing() adds no violation and closes everything."""
    rng = random.Random(5)
    alphabet = "\\{}$%[]()&^_ \n*|abegindlrtvx\u00e9"
    for _ in range(600):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 150)))
        if rng.random() < 0.5:
            text = text.replace("b", "\\begin{").replace("d", "\\end{").replace("l", "\\left(")
        fast, slow = fed(text), LatexTracker()
        for ch in text:
            slow.feed(ch)
        assert (fast.stack, fast.mode, fast.dollar, fast.nl, fast.violations()) == \
               (slow.stack, slow.mode, slow.dollar, slow.nl, slow.violations()), text
        closed = fed(text + fast.closing())
        assert closed.violations() == fast.violations() and not closed.stack and closed.mode == 0, text


def test_guided_random_text_always_scans_clean():
    """A random 'model' that proposes LaTeX pieces but obeys the tracker: the scanner must
    find nothing to complain about once closing() is appended (tracker and scanner agree)."""
    rng = random.Random(7)
    pieces = ["\\begin{proof}\n", "\\begin{lemma}", "\\end{proof}", "\\end{lemma}\n", "\\end{", "$", "$$", "{", "}",
              "\\left(", "\\right)", "\\[", "\\]", "\n\n", "\n", " x", "\\mathcal{O}", "\\text{ y $z$ }", "%c\n",
              "\\begin{equation}", "\\end{equation}", "\\begin{matrix}", "\\item ", "\\\\", "\\{", "_", "^"]
    alphabet = list(set("".join(pieces)))
    for _ in range(150):
        t, out = LatexTracker(), []
        while len(out) < 300:
            for ch in rng.choice(pieces):
                c = t.constraint()
                if (c.allow is not None and ch not in c.allow) or ch in c.ban:
                    options = sorted(c.allow) if c.allow is not None else [a for a in alphabet if a not in c.ban]
                    ch = rng.choice(options)
                    t.feed(ch)
                    out.append(ch)
                    break
                t.feed(ch)
                out.append(ch)
        text = "".join(out) + t.closing()
        r = scan(text, document=False, start="text")  # the tracker's reading: closing older environments is fine
        assert t.violations() == 0 and r.errors == 0 and not r.open_frames, (text, r.issues)


def test_features():
    text = "\\begin{lemma} $x_{1}$ % c\n\\end{lemma}"
    f = latex_features(text)
    assert set(f) == {"in_math", "env_depth", "brace_depth", "in_comment", "in_command_name", "line_position"}
    assert all(len(v) == len(text) and v.dtype.name == "float32" for v in f.values())
    at = text.index
    assert f["in_math"][at("x")] == 1 and f["in_math"][at(" %")] == 0
    assert f["env_depth"][at("x")] == 1 and f["env_depth"][-1] == 0
    assert f["brace_depth"][at("1")] == 1 and f["brace_depth"][at("1") + 2] == 0
    assert f["in_comment"][at("c\n")] == 1 and f["in_comment"][at("x")] == 0
    assert f["in_command_name"][at("egin")] == 1 and f["in_command_name"][at("x")] == 0
    assert f["line_position"][at("\\end")] == 0 and f["line_position"][3] == 3


# ---- the real Stacks Project --------------------------------------------------------------
@pytest.fixture(scope="module")
def chapters() -> list[tuple[str, str]]:
    from conftest import shared_corpora_dir

    root = (shared_corpora_dir() or Path("/nonexistent")) / "latex" / "stacks-project"
    if not root.is_dir():
        pytest.skip("../shared/corpora/latex is not present")
    return [(f.name, f.read_text(encoding="utf-8")) for f in sorted(root.glob("*.tex"))]


def test_real_chapters_scan_clean(chapters):
    for name, text in chapters:
        r = scan(text)  # a chapter starts with \input{preamble}: judged as a whole document
        assert r.document or name in ("preamble.tex", "chapters.tex", "bibliography.tex")
        assert r.errors == 0 and not r.open_frames, (name, r.issues[:3])


@pytest.mark.slow
def test_tracker_never_flags_real_chapters(chapters):
    for name, text in chapters:
        t = fed(text)
        assert t.violations() == 0 and not t.stack and t.closing() == "", name
    # feed_text's fast paths read exactly like feeding one character at a time
    for name, text in chapters:
        if name in ("coding.tex", "algebra.tex"):
            part = text[:150_000]
            slow = LatexTracker()
            for ch in part:
                slow.feed(ch)
            fast = fed(part)
            assert (slow.stack, slow.mode, slow.violations()) == (fast.stack, fast.mode, fast.violations())


@pytest.fixture(scope="module")
def stacks_data(chapters, tmp_path_factory) -> CorpusData:
    """The whole Stacks Project prepared as the `latex` corpus (its tail is the held-out part)."""
    spec = resolve_corpus("latex")
    out = tmp_path_factory.mktemp("prepared") / "latex"
    from conftest import shared_corpora_dir

    prepare(spec, D, str(shared_corpora_dir() / "latex" / "stacks-project"), out)  # the development copy as --src
    return CorpusData(out)


def _means(texts: list[str], ctx: EvalContext) -> dict[str, float]:
    results = [D.check(t, ctx) for t in texts]
    out = {}
    for name in NAMES:
        vals = [r.metrics[name] for r in results if r.metrics[name] is not None]
        out[name] = sum(vals) / len(vals) if vals else float("nan")
    return out


def test_calibration_real_windows_vs_corrupted(stacks_data):
    rng = random.Random(0)
    real = D.baseline(stacks_data, [1500] * 80, rng)
    bad = [D.corrupt(t, rng) for t in real]
    ctx = EvalContext(D, stacks_data, {"pylatexenc": True})
    r, c = _means(real, ctx), _means(bad, ctx)
    # real text is (nearly) clean on every check ...
    assert r["structure_ok"] >= 0.95 and r["pylatexenc_ok"] >= 0.9
    for name in ("env_mismatched", "env_unclosed", "brace_errors", "math_errors", "leftright_errors",
                 "refs_unknown", "invented_macros", "invented_envs"):
        assert r[name] <= 0.05, (name, r[name])
    # ... and the corrupted copy is clearly worse on each of them
    assert c["structure_ok"] <= 0.3 and c["pylatexenc_ok"] <= 0.5
    for name, floor in (("env_mismatched", 0.3), ("env_unclosed", 0.05), ("brace_errors", 0.5),
                        ("math_errors", 0.5), ("refs_unknown", 0.2), ("invented_macros", 0.8),
                        ("invented_envs", 0.3)):
        assert c[name] >= floor and c[name] >= r[name] + floor / 2, (name, r[name], c[name])
    right = [t for t in real if "\\right" in t]  # \left/\right: only windows that have a pair
    if right:
        worse = _means([latex_corrupt.drop_right(t, rng) for t in right], ctx)["leftright_errors"]
        assert worse >= 0.5


@pytest.mark.skipif(not HAS_PDFLATEX, reason="pdflatex not installed (apt-get install texlive-latex-base)")
def test_calibration_compile_rate(stacks_data):
    rng = random.Random(1)
    real = D.baseline(stacks_data, [800] * 6, rng)
    bad = [D.corrupt(t, rng) for t in real]
    ctx = EvalContext(D, stacks_data, {"compile": True})
    results = [D.check(t, ctx) for t in real + bad]
    ok = [r.metrics["compile_ok_repaired"] for r in results]  # windows cut anywhere: repaired
    assert sum(ok[:6]) >= 4 and sum(ok[6:]) <= 1, ok


def test_throughput_without_compilation(stacks_data):
    """Eval speed of check() (no compile, no pylatexenc) on held-out windows, as `gen eval
    --against latex` runs it; CPU time, best of 3, because the test machine is shared."""
    windows = D.baseline(stacks_data, [2000] * 300, random.Random(2))
    figures = {}
    for label, data in (("with --against", stacks_data), ("without", None)):
        ctx = EvalContext(D, data, {})
        assert (ctx.stats is None) == (data is None)  # built once, outside the timing
        best = float("inf")
        for _ in range(3):
            t0 = time.process_time()
            for w in windows:
                D.check(w, ctx)
            best = min(best, time.process_time() - t0)
        figures[label] = sum(map(len, windows)) / best / 1e6
    print("latex check throughput (MB/s):", {k: round(v, 1) for k, v in figures.items()})
    assert min(figures.values()) >= 5.0  # measured 12-25 MB/s; the floor leaves room for a loaded machine

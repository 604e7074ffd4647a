"""The LaTeX domain: the Stacks Project book, and how close samples come to compiling.

* prepare: the ``.tex`` files of a tree, in the book's chapter order when the tree gives one
  (a Makefile ``LIJST``, a ``book.tex``/``main.tex`` of ``\\input``/``\\include`` lines, or the
  Stacks Project's ``chapters.tex``), otherwise sorted; ``--strip-comments`` drops ``%`` comments.
* eval: the own stack matcher (``scan``) counts environment, brace, math and
  ``\\left``/``\\right`` errors fast; references and invented commands are judged against the
  training corpus. pylatexenc (strict mode) and pdflatex (``compile``) are second and third
  opinions, two orders of magnitude slower, that run only when asked for (speeds:
  evals/BENCHMARKS.md, "Design measurements").
* sample/viz: ``tracker`` (with ``constraints``) keeps environments, braces and math closed while
  sampling; ``closing`` closes a cut sample; ``features`` gives per-character structure features.

Eval options (``ctx.options``): ``compile`` (bool) compiles every sample with pdflatex, as written (``compile_ok``) and as a completed window (``compile_ok_repaired``);
``pylatexenc``: True parses every sample, an integer N only samples of at most N characters
(the bound keeps it from dominating eval time); ``latex_mode`` ``auto``/``window``/``document``
picks how strictly stray closers and unclosed openers are judged (see :mod:`.scan`);
``compile_timeout`` (s), ``compile_workers`` and ``compile_preamble`` (a file) tune the compile.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gen.core.api import (
    CheckResult,
    Choice,
    Claim,
    CorpusData,
    CorpusSpec,
    Domain,
    EvalContext,
    Issue,
    MetricSpec,
    Option,
    PathValue,
    PrepareReport,
    Range,
    SourceSample,
    Tracker,
    decode,
    excerpt,
    hookimpl,
    iter_sources,
    walk_files,
)

from . import compile as latex_compile
from . import corrupt as latex_corrupt
from .features import latex_features
from .scan import ERROR_KEYS, ScanResult, scan
from .tracker import LatexTracker

MAX_ISSUES = 60  # per sample: a pathological sample must not flood records.jsonl

METRICS = (
    MetricSpec("structure_ok", True, "share of samples with no environment, brace, math or \\left/\\right error"),
    MetricSpec("env_mismatched", False, "\\end{Y} closing an open \\begin{X} (per sample)"),
    MetricSpec("env_unclosed", False, "environments left open inside the text (closed over by an outer \\end; "
                                      "in document mode also at the end)"),
    MetricSpec("env_stray", False, "\\end with nothing open (document mode: the sample holds \\begin{document})"),
    MetricSpec("brace_errors", False, "unmatched } and { closed over by \\end or math (per sample)"),
    MetricSpec("math_errors", False, "unbalanced $, $$, \\[ \\], \\( \\), math across a blank line (per sample)"),
    MetricSpec("leftright_errors", False, "\\left without \\right and the reverse (per sample)"),
    MetricSpec("env_open_at_end", False, "environments still open where the sample stops (cut, not an error)"),
    MetricSpec("refs_undefined", False, "share of \\ref/\\eqref targets the sample never \\label-s"),
    MetricSpec("refs_unknown", False, "share of \\ref/\\eqref targets labelled nowhere: not in the sample, "
                                      "not in the corpus (needs --against)"),
    MetricSpec("invented_macros", False, "distinct commands the training corpus never uses (needs --against)"),
    MetricSpec("invented_envs", False, "distinct environment names the training corpus never uses (needs --against)"),
    MetricSpec("pylatexenc_ok", True, "pylatexenc strict parse succeeds on the completed sample (option pylatexenc)"),
    MetricSpec("compile_ok", True, "pdflatex compiles the sample as written: a full document as it is, else "
                                   "wrapped in a minimal document, nothing repaired (option compile)"),
    MetricSpec("compile_ok_repaired", True, "pdflatex compiles the sample as a window of a document: the frames "
                                            "it leaves open or closes completed first (option compile)"),
)

_LABEL = re.compile(r"\\label\{([^{}\\\n]*)\}")
_REF = re.compile(r"\\(?:eq|page|auto|c|C)?ref\{([^{}\\\n%]*)\}|\\hyperref\[([^\]\\\n%]*)\]")
_CMD = re.compile(r"\\([a-zA-Z@]+)")
_BEGIN = re.compile(r"\\begin[ \t]*\{([^{}\\\n%]*)\}")
# a command with its first {argument} or [argument] (environment definitions in a sample)
_COMMAND_ARG = re.compile(r"\\([a-zA-Z@]+)(?:[ \t]*\{([^{}\\\n%]*)\}|\[([^\]\\\n]*)\])?")
DEFINERS = frozenset({"def", "gdef", "edef", "xdef", "let", "newcommand", "renewcommand", "providecommand",
                      "DeclareMathOperator"})
ENV_DEFINERS = frozenset({"newenvironment", "renewenvironment", "newtheorem"})


# ---- prepare -----------------------------------------------------------------------------
def chapter_order(root: Path) -> tuple[list[str], str]:
    """Chapter names in book order, from the first file of the tree that states one."""
    candidates = [
        ("Makefile", re.compile(r"^LIJST\s*=((?:[^\n]*\\\n)*[^\n]*)", re.M), None),
        ("book.tex", re.compile(r"^[ \t]*\\(?:input|include)\{([^{}]+)\}", re.M), 1),
        ("main.tex", re.compile(r"^[ \t]*\\(?:input|include)\{([^{}]+)\}", re.M), 1),
        ("chapters.tex", re.compile(r"\\hyperref\[([\w-]+)-section-phantom\]"), 1),
    ]
    for fname, pattern, group in candidates:
        path = root / fname
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if group is None:
            m = pattern.search(text)
            names = m.group(1).replace("\\\n", " ").split() if m else []
        else:
            names = [n.strip() for n in pattern.findall(text)]
        names = [n.removesuffix(".tex") for n in names]
        present = [n for n in dict.fromkeys(names) if (root / f"{n}.tex").is_file()]
        if len(present) >= 2:
            return present, fname
    return [], ""


_VERB_ENVS = "verbatim|verbatim\\*|Verbatim|lstlisting|minted|filecontents"
_STRIP = re.compile(r"(\\begin\{(" + _VERB_ENVS + r")\}.*?\\end\{\2\})"  # kept as is
                    r"|(\\verb\*?([^a-zA-Z\s*]).*?\4)"  # kept as is
                    r"|(\\[^a-zA-Z])"  # escapes (\% \\) kept as is
                    r"|^[ \t]*%[^\n]*\n"  # a comment line: dropped with its line end
                    r"|[ \t]*%[^\n]*", re.S | re.M)  # a trailing comment: dropped, the line end kept


def strip_comments(text: str) -> str:
    """Drop ``%`` comments (not ``\\%``, nor inside verbatim or ``\\verb``). A line holding only a
    comment disappears with its line end, so no blank line (paragraph break) appears."""
    if "%" not in text:
        return text
    return _STRIP.sub(lambda m: m.group(1) or m.group(3) or m.group(5) or "", text)


@dataclass
class LatexStats:
    """What --against needs from the training corpus."""

    macros: frozenset[str]  # command names used in training
    envs: frozenset[str]  # environment names used in training
    labels: frozenset[str]  # labels defined anywhere in the corpus (train and val)
    preamble: list[str]  # definition lines (\def, \newtheorem ...) a compile preamble can use


def _label_known(label: str, labels: frozenset[str]) -> bool:
    """Stacks cross-references prefix the chapter: \\ref{algebra-lemma-x} points at lemma-x."""
    if label in labels:
        return True
    i = label.find("-")
    while i >= 0:
        if label[i + 1:] in labels:
            return True
        i = label.find("-", i + 1)
    return False


class LatexDomain(Domain):
    name = "latex"
    description = "LaTeX sources (the Stacks Project): environment, brace and math matching, compile rate"
    default_corpus = "latex"
    metrics = METRICS
    prepare_options = (Option("strip_comments", "drop % comments (not \\%, not inside verbatim)"),)
    eval_options = (
        Option("compile", "also compile every sample with pdflatex (compile_ok)"),
        Option("pylatexenc", "also parse with pylatexenc (strict) samples up to N characters (slow)",
               None, int),
        Option("latex_mode", "judge stray closers/unclosed openers as a window of a document, a whole "
               "document, or by whether the text has \\documentclass", "auto",
               Choice(("auto", "window", "document"))),
        Option("compile_timeout", "seconds per pdflatex run", 20.0, Range(float, min=0.1)),
        Option("compile_workers", "parallel pdflatex runs", 2, Range(int, min=1)),
        Option("compile_preamble", "a file whose preamble the compiled samples get", None,
               PathValue(dir_okay=False)),
    )
    serial_options = ("compile",)  # pdflatex runs in its own pool of compile_workers
    defaults = {
        # CPU: a 2-layer LSTM that learns \begin/\end pairing in minutes
        "cpu": {"n_layer": 2, "n_hidden": 256, "seq_len": 128, "batch_size": 32, "max_steps": 2000},
        # GPU: the blog's multilayer LSTM (3 x 512) with long unrolls for environment spans
        "gpu": {"n_layer": 3, "n_hidden": 512, "n_embd": 64, "seq_len": 256, "batch_size": 128,
                "dropout": 0.2, "max_steps": 20000, "eval_every": 1000},
    }

    # ---- prepare -------------------------------------------------------------------------
    def claim(self, source: SourceSample) -> Claim | None:
        return source.suffix_claim((".tex", ".sty"), "LaTeX")

    def documents(self, src: Path, corpus: CorpusSpec, options: dict[str, Any],
                  report: PrepareReport) -> Iterator[str]:
        strip = bool(options.get("strip_comments"))
        path = Path(src) if not isinstance(src, Path) else src
        if str(src) != "-" and not str(src).startswith("package:") and path.is_dir():
            texts = self._tree(path, corpus, report)
        else:
            texts = (text for _name, text in iter_sources(src, corpus.patterns, report))
        for text in texts:
            yield strip_comments(text) if strip else text

    def _tree(self, root: Path, corpus: CorpusSpec, report: PrepareReport) -> Iterator[str]:
        files = list(walk_files(root, corpus.patterns, report))
        order, origin = chapter_order(root)
        if order:
            # the unlisted files (the preamble, the chapter index ...) come first, sorted, as
            # front matter; then the chapters in book order, so held-out text is book text
            rank = {name: i + 1 for i, name in enumerate(order)}
            key = {f: rank.get(str(f.relative_to(root).with_suffix("")), 0) for f in files}
            files.sort(key=lambda f: key[f])  # stable: the unlisted files keep their sorted order
            rest = sum(1 for v in key.values() if v == 0)
            report.note(f"chapter order from {origin}: {rest} other files first (sorted), "
                        f"then {len(order)} chapters")
        else:
            report.note("no chapter list found (Makefile LIJST, book.tex, main.tex, chapters.tex): sorted order")
        for f in files:
            text = decode(f.read_bytes(), str(f), report)
            if text is not None:
                yield text

    # ---- eval ----------------------------------------------------------------------------
    def corpus_stats(self, data: CorpusData) -> LatexStats:
        macros: set[str] = set()
        envs: set[str] = set()
        labels: set[str] = set()
        preamble: list[str] = []
        for chunk in data.iter_text("train"):
            macros.update(_CMD.findall(chunk))
            envs.update(_BEGIN.findall(chunk))
            labels.update(_LABEL.findall(chunk))
            if len(preamble) < 2000:
                preamble.extend(latex_compile.definition_lines(chunk))
        for chunk in data.iter_text("val"):
            labels.update(_LABEL.findall(chunk))
        return LatexStats(frozenset(macros), frozenset(envs), frozenset(labels), list(dict.fromkeys(preamble)))

    def check(self, sample: str, ctx: EvalContext) -> CheckResult:
        return self.check_many([sample], ctx)[0]

    def check_many(self, samples: list[str], ctx: EvalContext) -> list[CheckResult]:
        """Scan every sample; with ``compile``, compile them on the worker pool in parallel and
        fill ``compile_ok`` (as written) and ``compile_ok_repaired`` once each finishes."""
        results, jobs = [], []
        for sample in samples:  # a check that raises is caught (once) by the eval harness
            result, res = self._check(sample, ctx)
            if ctx.options.get("compile"):
                for metric, repair in (("compile_ok", False), ("compile_ok_repaired", True)):
                    jobs.append((result, metric, self._compile(sample, res, ctx, result, repair)))
            results.append(result)
        for result, metric, future in jobs:
            if future is None:
                continue
            try:
                ok, issue = future.result()
            except Exception as exc:  # noqa: BLE001 - a failed compile job is a finding, not a crash
                ok, issue = None, Issue("compile_error", f"compile job failed: {type(exc).__name__}: {exc}")
            result.metrics[metric] = None if ok is None else float(ok)
            if issue is not None:
                result.issues.append(issue)
        return results

    def _check(self, sample: str, ctx: EvalContext) -> tuple[CheckResult, ScanResult]:
        mode = ctx.options.get("latex_mode", "auto")
        res = scan(sample, None if mode == "auto" else mode == "document")
        c = res.counts
        metrics: dict[str, float | None] = {k: float(c[k]) for k in ERROR_KEYS if k != "env_malformed"}
        metrics["env_mismatched"] += c["env_malformed"]
        metrics["structure_ok"] = 1.0 if res.errors == 0 else 0.0
        metrics["env_open_at_end"] = float(c["env_open_at_end"])
        issues = [Issue(kind, msg, off, excerpt(sample, off)) for kind, msg, off in res.issues[:MAX_ISSUES]]
        if len(res.issues) > MAX_ISSUES:
            issues.append(Issue("issues_truncated", f"{len(res.issues) - MAX_ISSUES} more issues not listed"))
        clean = sample
        if res.skipped:  # references and commands inside comments and verbatim do not count
            parts, last = [], 0
            for a, b in res.skipped:
                parts.append(sample[last:a])
                last = max(last, b)
            clean = "".join(parts) + sample[last:]
        stats = ctx.stats
        if "ref" in clean:  # about half of the short samples have no reference: skip the work
            self._references(sample, clean, stats, metrics, issues)
        else:
            metrics["refs_undefined"] = metrics["refs_unknown"] = None
        self._vocabulary(sample, clean, stats, metrics, issues)
        metrics["pylatexenc_ok"] = None
        limit = ctx.options.get("pylatexenc")
        if limit and (limit is True or len(sample) <= int(limit)):
            ok, issue = latex_compile.pylatexenc_opinion(sample, res)
            metrics["pylatexenc_ok"] = None if ok is None else float(ok)
            if issue:
                issues.append(issue)
        metrics["compile_ok"] = metrics["compile_ok_repaired"] = None
        return CheckResult(metrics, issues), res

    def _references(self, sample: str, clean: str, stats: LatexStats | None,
                    metrics: dict[str, float | None], issues: list[Issue]) -> None:
        refs = [a or b for a, b in _REF.findall(clean) if a or b]
        if not refs:
            metrics["refs_undefined"] = metrics["refs_unknown"] = None
            return
        defined = set(_LABEL.findall(clean)) if "\\label" in clean else set()
        undefined = [r for r in refs if r not in defined]
        metrics["refs_undefined"] = len(undefined) / len(refs)
        if stats is None:  # without the corpus, a label the sample never defines is all we can say
            metrics["refs_unknown"] = None
            bad, kind, why = undefined, "undefined_ref", "the sample never defines this label"
        else:
            bad = [r for r in undefined if not _label_known(r, stats.labels)]
            metrics["refs_unknown"] = len(bad) / len(refs)
            kind, why = "unknown_ref", "no such label in the sample or the corpus"
        for r in list(dict.fromkeys(bad))[:10]:
            where = sample.find(r)
            issues.append(Issue(kind, f"\\ref{{{r}}}: {why}", where, excerpt(sample, where)))

    def _vocabulary(self, sample: str, clean: str, stats: LatexStats | None,
                    metrics: dict[str, float | None], issues: list[Issue]) -> None:
        if stats is None:
            metrics["invented_macros"] = metrics["invented_envs"] = None
            return
        names = _CMD.findall(clean)
        invented = set(names) - stats.macros
        if invented:
            tail = clean[clean.rfind("\\") + 1:]
            if tail.isalpha() and names.count(tail) == 1:
                invented.discard(tail)  # a command cut by the end of the sample is no invention
            # \def\foo, \newcommand{\foo}: the command after a definer is defined here
            invented -= {names[i + 1] for i in range(len(names) - 1) if names[i] in DEFINERS}
        envs = set(_BEGIN.findall(clean)) - stats.envs if "\\begin" in clean else set()
        if envs:  # \newenvironment{foo} or \newtheorem{foo} in the sample defines foo
            envs -= {arg for name, arg, _ in _COMMAND_ARG.findall(clean) if name in ENV_DEFINERS}
        metrics["invented_macros"] = float(len(invented))
        metrics["invented_envs"] = float(len(envs))
        for name in sorted(invented)[:10]:
            where = sample.find("\\" + name)
            issues.append(Issue("invented_macro", f"\\{name} is never used in the training corpus",
                                where, excerpt(sample, where)))
        for name in sorted(envs)[:10]:
            where = sample.find("{" + name + "}")
            issues.append(Issue("invented_env", f"environment {name!r} is never used in the training corpus",
                                where, excerpt(sample, where)))

    def _compile(self, sample: str, res: ScanResult, ctx: EvalContext, result: CheckResult,
                 repair: bool) -> Future | None:
        """Submit one compile job (None when no engine is installed: the report says so once)."""
        compiler = ctx.state.get("latex_compiler")  # one pool per evaluation
        if compiler is None:
            compiler = latex_compile.Compiler(ctx.stats.preamble if ctx.stats else None,
                                              ctx.options.get("compile_preamble"),
                                              int(ctx.options.get("compile_workers", 2)),
                                              float(ctx.options.get("compile_timeout", 20)))
            ctx.state["latex_compiler"] = compiler
        if compiler.engine is None:
            if not ctx.state.get("latex_compile_noted"):  # say it once per evaluation, on its first sample
                ctx.state["latex_compile_noted"] = True
                result.issues.append(Issue("compile_unavailable", compiler.note))
            return None
        return compiler.pool.submit(compiler.compile, sample, res, repair)

    # ---- calibration ---------------------------------------------------------------------
    def corrupt(self, text: str, rng: random.Random) -> str:
        return latex_corrupt.corrupt(text, rng)

    # ---- guided sampling and interpretation ----------------------------------------------
    def tracker(self, enabled: Iterable[str] | None = None, stats: Any = None) -> Tracker:
        return LatexTracker(enabled)

    def features(self, text: str) -> dict[str, np.ndarray]:
        return latex_features(text)


@hookimpl
def register_domains(register):
    register(LatexDomain())

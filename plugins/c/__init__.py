"""The C source domain: Linux kernel code, prepared at disk speed and judged like a compiler would.

Corpus ``linux`` (manifest ``corpora/linux.toml``): every ``.c``/``.h`` file of a tree, a single
file or a tar archive, in sorted path order. Files are joined by :data:`FILE_SEPARATOR`, a line
holding only U+241C SYMBOL FOR FILE SEPARATOR. Why that character: it never occurs in the
kernel (checked on the shared subset; :meth:`CDomain.documents` removes any stray copy), so the
model sees exactly one way a file ends and learns it in a few steps; it is visible when a
sample is printed (unlike the ASCII control ``\\x1c``); and eval splits a sample into files on it
without any ambiguity, which a comment line such as ``// next file`` would not give (real code
holds comments like that). A sampler primed with the separator starts a new file.

Checks (``gen eval c SAMPLES``), per file of a sample, then combined:
* syntax with tree-sitter-c (:mod:`.sem`): ERROR bytes, MISSING nodes, clean top-level
  definitions;
* balance with a string- and comment-aware lexer, per ``#if``/``#else`` branch (:mod:`.lex`);
* semantics: undeclared variables, unused locals, void functions returning a value, non-void
  functions falling off their end, self-comparisons such as ``tty == tty``; names that the
  text's headers declare are known (:mod:`.headers`: ``--include-dir``, the compiler's system
  headers, the corpus's own), and :mod:`.names` sorts the rest into unknown and undeclared;
* with ``--gcc`` and gcc installed, the ``gcc -fsyntax-only`` pass rate (:mod:`.gcc`).
Tracker and per-character features live in :mod:`.scan`; how far the checks agree with clang,
``python -m gen.evals.agreement c SRC`` measures (evals/BENCHMARKS.md).
"""

from __future__ import annotations

import functools
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gen.core.api import (
    CheckResult,
    Claim,
    CorpusSpec,
    Domain,
    EvalContext,
    Issue,
    MetricSpec,
    Option,
    PathValue,
    PrepareReport,
    SourceSample,
    Tracker,
    excerpt,
    hookimpl,
)

from . import headers as c_headers
from . import lex as c_lex
from . import names as c_names
from . import scan as c_scan
from . import sem as c_sem
from .corrupt import corrupt_c
from .gcc import gcc_syntax

FILE_SEP = c_scan.FILE_SEP
FILE_SEPARATOR = FILE_SEP + "\n"  # documents always end with a newline, so this is a line of its own
MAX_ISSUES_PER_KIND = 5
# corpus statistics read at most this much training text, every k-th document (the shared 15 MB
# subset is read whole; the full kernel is sampled)
STATS_MAX_CHARS = 48_000_000
# tree-sitter's queries take time that grows with the square of the tree's depth: a text nested
# deeper than this (real C stays under ~40; `{` x 100,000 took 41 s) skips the tree checks and
# gets a "budget" issue instead, decided by the bracket count alone, so the same on any machine
MAX_BRACKET_DEPTH = 256
# tree checks of broken text run at about 3-4 s per MB: a sample's files beyond this many
# characters get the bracket checks only (and a "budget" issue)
MAX_TREE_CHARS = 2_000_000


def _kb(n: int) -> float:
    return max(n, 1) / 1024


MAX_CORPUS_HEADERS = 200_000  # header paths kept at prepare (the full kernel has about 22,000)


@dataclass
class CStats:
    """What ``--against`` gives the checks: names the training corpus uses as globals, and the
    corpus's own header paths (an include they match is declared by names the corpus holds,
    when ``complete``: every training document was read)."""

    names: frozenset[str]
    documents: int
    chars: int
    headers: tuple[str, ...] = ()
    complete: bool = True


class CDomain(Domain):
    name = "c"
    description = "C source code (the Linux kernel): syntax, balance and compiler-style semantic checks"
    default_corpus = "linux"
    metrics = (
        MetricSpec("error_bytes", False, "share of bytes inside tree-sitter ERROR nodes"),
        MetricSpec("missing_per_kb", False, "tokens tree-sitter had to invent (MISSING nodes) per KB"),
        MetricSpec("clean_definitions", True, "share of top-level definitions that parse without error"),
        MetricSpec("bracket_errors_per_kb", False, "closers with nothing open or of the wrong kind, per KB"),
        MetricSpec("unclosed_brackets", False, "brackets still open where a file (or the sample) ends"),
        MetricSpec("unterminated_per_kb", False, "string/char literals cut by a newline, unclosed /* */, per KB"),
        MetricSpec("undeclared_ids", False, "share of names used in functions that are declared nowhere"),
        MetricSpec("unknown_ids", False, "share of names used that no visible declaration has but a header "
                   "that was not found could (or, in a window with no #include, a callee or MACRO)"),
        MetricSpec("missing_headers", False, "#include lines found in no include directory, system path or corpus"),
        MetricSpec("unused_locals", False, "share of local variables declared and never used"),
        MetricSpec("void_returns", False, "share of void functions that return a value"),
        MetricSpec("falls_off_end", False, "share of non-void functions that can reach their end"),
        MetricSpec("self_comparisons_per_kb", False, "comparisons of an expression with itself, per KB"),
        MetricSpec("gcc_syntax_ok", True, "gcc -fsyntax-only finds no syntax error (eval option gcc; errors that "
                   "missing headers explain are noted, not counted)"),
    )
    eval_options = (
        Option("gcc", "also run gcc -fsyntax-only on every sample (gcc_syntax_ok; headers from --include-dir)"),
        Option("include_dir", "a folder of headers the samples include (names declared there are known; "
               "also passed to --gcc as -I)", (), PathValue(file_okay=False), multiple=True),
    )
    stats_version = 2  # v2: header paths and completeness beside the names
    serial_options = ("gcc",)
    prepare_options = (
        Option("max_file_kb", "skip source files larger than this many KB (generated tables)", 1024),
    )
    defaults = {  # the same as corpora/linux.toml, for other C corpora
        # CPU: a model that learns C's shape on a laptop CPU in tens of minutes (0.9M parameters)
        "cpu": {"n_layer": 2, "n_hidden": 256, "n_embd": 64, "seq_len": 128, "batch_size": 32, "lr": 3e-3,
                "max_steps": 3000},
        # GPU: the blog's Linux model, 3 LSTM layers of about 10M parameters (704 units: 10.2M)
        "gpu": {"n_layer": 3, "n_hidden": 704, "n_embd": 64, "seq_len": 256, "batch_size": 128,
                "dropout": 0.1, "lr": 2e-3, "max_steps": 20000},
    }

    # ---- prepare ---------------------------------------------------------------------------
    def claim(self, source: SourceSample) -> Claim | None:
        return source.suffix_claim((".c", ".h"), "C sources")

    def documents(self, src: Path, corpus: CorpusSpec, options: dict[str, Any],
                  report: PrepareReport) -> Iterator[str]:
        from gen.core.api import iter_sources

        max_kb = options.get("max_file_kb", 1024)
        max_bytes = int(max_kb) * 1024 if max_kb else None
        stray = 0
        headers: list[str] = []
        for name, text in iter_sources(src, corpus.patterns, report, max_bytes):
            if name.endswith(".h") and len(headers) < MAX_CORPUS_HEADERS:
                headers.append(name.replace("\\", "/"))
            if "\r" in text:
                text = text.replace("\r\n", "\n")
            if FILE_SEP in text:  # the separator must mean "next file" and nothing else
                stray += 1
                text = text.replace(FILE_SEP, "")
            if not text or text.isspace():
                report.skip("empty file")
                continue
            yield text if text.endswith("\n") else text + "\n"
        if stray:
            report.note(f"removed the file separator character from {stray} file(s)")
        report.extra["c_headers"] = headers

    # ---- eval --------------------------------------------------------------------------------
    def corpus_stats(self, data: Any) -> CStats:
        """Global and free names of the training corpus (see c_sem). Reads at most
        STATS_MAX_CHARS of it, every k-th document, so the full kernel stays quick."""
        total = int(data.meta.get("train_chars", 0)) or 1
        stride = max(1, -(-total // STATS_MAX_CHARS))
        names: set[bytes] = set()
        docs = chars = 0
        for doc in train_documents(data, stride):
            try:
                names |= c_sem.free_names(doc)
            except Exception:  # noqa: BLE001 - one odd document must not sink the statistics
                continue
            docs += 1
            chars += len(doc)
        headers = tuple(data.meta.get("report", {}).get("extra", {}).get("c_headers", ()))
        return CStats(frozenset(n.decode("utf-8", "replace") for n in names), docs, chars, headers, stride == 1)

    def check(self, sample: str, ctx: EvalContext) -> CheckResult:
        found = analyze_sample(sample, ctx)
        total = found.tally
        kb, scanned_kb = _kb(total.bytes), _kb(found.scanned)  # tree-checked bytes; bracket-checked bytes
        metrics: dict[str, float | None] = {
            "error_bytes": total.error_bytes / total.bytes if total.bytes else None,
            "missing_per_kb": total.missing / kb if total.bytes else None,
            "clean_definitions": total.clean_defs / total.defs if total.defs else None,
            "bracket_errors_per_kb": found.mismatches / scanned_kb if found.scanned else None,
            "unclosed_brackets": float(found.unclosed) if found.scanned else None,
            "unterminated_per_kb": found.unterminated / scanned_kb if found.scanned else None,
            "undeclared_ids": total.undeclared / total.names_used if total.names_used else None,
            "unknown_ids": total.unknown / total.names_used if total.names_used else None,
            "missing_headers": float(found.missing_headers),
            "unused_locals": total.unused / total.locals if total.locals else None,
            "void_returns": total.void_returns / total.void_fns if total.void_fns else None,
            "falls_off_end": total.falls_off / total.value_fns if total.value_fns else None,
            "self_comparisons_per_kb": total.self_cmp / kb if total.bytes else None,
            "gcc_syntax_ok": None,
        }
        issues = found.issues
        if ctx is not None and ctx.options.get("gcc"):
            ok, message = gcc_syntax(sample.replace(FILE_SEPARATOR, "\n").replace(FILE_SEP, "\n"),
                                     include_dirs(ctx))
            metrics["gcc_syntax_ok"] = ok
            if message:
                issues.append(("gcc" if ok == 0.0 else "gcc_missing_header", 0, message))
        return CheckResult(metrics, _issues(sample, issues))

    def corrupt(self, text: str, rng: random.Random) -> str:
        return corrupt_c(text, rng)

    # ---- guided sampling and interpretation --------------------------------------------------
    def tracker(self, enabled: Iterable[str] | None = None, stats: Any = None) -> Tracker:
        return c_scan.CTracker(enabled)

    def features(self, text: str) -> dict[str, np.ndarray]:
        return c_scan.features(text)


@dataclass
class Found:
    """Everything the checks found in one sample, before it becomes metrics (the agreement
    harness in evals/agreement/ reads the issues with their offsets)."""

    tally: c_sem.Tally
    issues: list[tuple[str, int, str]]  # (kind, character offset, message), up to ISSUES_KEPT per kind
    scanned: int = 0  # bytes the bracket checks read
    mismatches: int = 0
    unclosed: int = 0
    unterminated: int = 0
    missing_headers: int = 0


def analyze_sample(sample: str, ctx: EvalContext | None) -> Found:
    """Run every check but --gcc on each file of ``sample``."""
    stats = ctx.stats if ctx is not None else None
    known = stats.names if isinstance(stats, CStats) else None
    found = Found(c_sem.Tally(), [])
    issues, tree_chars = found.issues, 0
    parts = list(split_files(sample))
    for n, (base, part) in enumerate(parts):
        if not part.strip():
            continue
        bal = c_lex.balance(part)
        found.scanned += len(part.encode("utf-8", "surrogatepass"))
        found.mismatches += bal.n_mismatches
        found.unclosed += bal.n_unclosed
        found.unterminated += bal.n_unterminated
        issues += [("bracket", base + o, m) for o, m in bal.mismatches]
        issues += [("unclosed", base + o, m) for o, m in bal.unclosed]
        issues += [("unterminated", base + o, m) for o, m in bal.unterminated]
        if bal.depth > MAX_BRACKET_DEPTH:
            issues.append(("budget", base, f"brackets nested {bal.depth:,} deep (more than {MAX_BRACKET_DEPTH}): "
                                           "syntax and semantic checks skipped for this file"))
            continue
        # the last file is cut by the length limit: parse it with what closes it appended
        closing = bal.closing if n == len(parts) - 1 else ""
        room = MAX_TREE_CHARS - tree_chars
        if len(part) > room:  # the tree checks see the text up to the budget, cut at a line end
            issues.append(("budget", base + max(room, 0), f"syntax and semantic checks stop after "
                           f"{MAX_TREE_CHARS:,} characters of a sample (about 10 s); brackets are checked "
                           "throughout"))
            part, closing = part[:part.rfind("\n", 0, max(room, 0)) + 1], ""
            if not part.strip():
                continue
        tree_chars += len(part)
        heads, missing = file_headers(part, ctx, stats)
        found.missing_headers += len(missing)
        issues += [("missing_header", base + max(part.find(h), 0), f"#include {h}: found in no include directory, "
                    "system path or corpus (pass --include-dir DIR)") for h in missing[:MAX_ISSUES_PER_KIND]]
        t = c_sem.analyze(part, known, closing, heads)
        for k, v in vars(t).items():
            if isinstance(v, int):
                setattr(found.tally, k, getattr(found.tally, k) + v)
        issues += [(k, base + o, m) for k, o, m in t.issues]
    return found


def include_dirs(ctx: EvalContext | None) -> tuple[str, ...]:
    """The ``include_dir`` option as a tuple of folders (the Python API may pass one path)."""
    dirs = ctx.options.get("include_dir") if ctx is not None else None
    if not dirs:
        return ()
    return (str(dirs),) if isinstance(dirs, str | Path) else tuple(str(d) for d in dirs)


def file_headers(part: str, ctx: EvalContext | None, stats: Any) -> tuple[c_names.Headers, tuple[str, ...]]:
    """What one file's includes declare (see headers.py), and the includes found nowhere."""
    if "include" not in part:
        return c_names.Headers(), ()
    dirs = include_dirs(ctx)
    compiler = c_headers.find_compiler()
    corpus = frozenset()
    if isinstance(stats, CStats) and stats.complete and stats.headers:
        corpus = ctx.state.get("c_corpus_headers")
        if corpus is None:  # once per eval (setdefault would build it at every call: 0.05 s per 0.4 MB)
            corpus = ctx.state["c_corpus_headers"] = c_headers.corpus_suffixes(stats.headers)
    inc = c_headers.resolve(part, dirs, c_headers.system_dirs(compiler), corpus)
    if not (inc.found or inc.corpus or inc.missing):
        return c_names.Headers(), ()
    mode = "complete" if inc.complete else "partial"
    if not inc.complete or not inc.found:
        # an include is missing: every name no declaration shows is "unknown" anyway, so the found
        # headers are not preprocessed (on kernel windows that saved 0.02 s per header)
        return c_names.Headers(mode=mode), inc.missing
    names = c_headers.names_of(part, inc, dirs, compiler)
    expand = functools.partial(c_headers.expanded_declares, part, inc=inc, dirs=dirs, compiler=compiler)
    return c_names.Headers(names.names, names.returning, mode, names.braces, expand), inc.missing


def train_documents(data: Any, stride: int = 1, chunk: int = 1 << 23) -> Iterator[str]:
    """Every ``stride``-th training document, found by the separator's id with numpy and
    decoded from its ids alone (the corpus streamed in chunks would decode the skipped
    documents too; this runs at disk speed: evals/BENCHMARKS.md, "Design measurements")."""
    ids = data.ids("train")
    sep = data.separator
    mark = data.vocab.stoi.get(sep[0]) if sep else None
    if mark is None:
        yield from (d for i, d in enumerate(data.documents("train")) if i % stride == 0)
        return
    ends = np.concatenate([np.flatnonzero(np.asarray(ids[i:i + chunk]) == mark) + i
                           for i in range(0, len(ids), chunk)] + [np.array([len(ids)])])
    start = 0
    for n, end in enumerate(ends.tolist()):
        if n % stride == 0 and end > start:
            doc = data.vocab.decode(np.asarray(ids[start:end]))
            if doc:
                yield doc
        start = end + len(sep)


def split_files(sample: str) -> Iterator[tuple[int, str]]:
    """(offset, file text) for each file of a sample, cut at the file separator."""
    start = 0
    while True:
        i = sample.find(FILE_SEP, start)
        if i < 0:
            yield start, sample[start:]
            return
        yield start, sample[start:i]
        start = i + 1
        if sample.startswith("\n", start):
            start += 1


def _issues(sample: str, found: list[tuple[str, int, str]]) -> list[Issue]:
    """At most MAX_ISSUES_PER_KIND issues of each kind, each with an excerpt (counts are in metrics)."""
    out: list[Issue] = []
    seen: dict[str, int] = {}
    for kind, offset, message in sorted(found, key=lambda x: x[1]):
        seen[kind] = seen.get(kind, 0) + 1
        if seen[kind] <= MAX_ISSUES_PER_KIND:
            out.append(Issue(kind, message, offset, excerpt(sample, offset) if offset >= 0 else ""))
    return out


@hookimpl
def register_domains(register) -> None:
    register(CDomain())

"""The text domain: any text that is none of the five structured domains (lyrics, recipes, other
programming languages, music notation ...), so every user corpus gets a useful `gen eval`.

Checks that need no grammar, each reported only where the text uses what it checks:

* brackets ``() [] {}``: closers with no opener and mismatched pairs per KB, and what is left
  open at the end (a cut sample leaves some open: shown, not counted as an error);
* double quotes: share of lines with an even number of them (lines that have any);
* with ``--against``: the share of words the training text contains, and line length beside the
  training text's (copying, repetition and novelty come from the metrics every domain gets).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from gen.core.api import (
    BRACKETS,
    FALLBACK,
    OPENER_OF,
    CheckResult,
    Claim,
    CorpusData,
    Domain,
    EvalContext,
    Issue,
    MetricSpec,
    SourceSample,
    excerpt,
    hookimpl,
)

WORD = re.compile(r"\w+")
STATS_CHARS = 20_000_000  # training text read for the word list (the rest adds few new words)
MAX_ISSUES = 5

METRICS = (
    MetricSpec("bracket_errors_per_kb", False, "closing brackets with no or the wrong opener, per 1,000 chars"),
    MetricSpec("brackets_open_at_end", None, "brackets still open where the sample ends (a cut sample has some)"),
    MetricSpec("quote_balance", True, "share of lines with quotes whose double quotes pair up"),
    MetricSpec("known_words", True, "share of words that occur in the training text (--against)"),
    MetricSpec("line_length", None, "mean characters per non-empty line"),
    MetricSpec("line_length_train", None, "the same in the training text (--against)", aggregate="none"),
)


@dataclass
class TextStats:
    words: frozenset[str]
    line_length: float | None


class TextDomain(Domain):
    name = "text"
    description = "any other text: brackets, quotes, known words, line lengths, copying and repetition"
    default_corpus = ""
    metrics = METRICS
    defaults = {
        # CPU: a model that learns the look of most texts in minutes on 2 cores
        "cpu": {"n_layer": 2, "n_hidden": 256, "n_embd": 64, "seq_len": 128, "batch_size": 32, "dropout": 0.1,
                "max_steps": 5000, "eval_every": 250},
        # GPU: the blog's 3 x 512 LSTM with dropout, long unrolls
        "gpu": {"n_layer": 3, "n_hidden": 512, "n_embd": 64, "seq_len": 256, "batch_size": 64, "dropout": 0.2,
                "max_steps": 20000, "eval_every": 1000},
    }

    def claim(self, source: SourceSample) -> Claim:
        """Any text: the claim that holds when no structured domain's does."""
        if source.stdin:
            return Claim("standard input (give --domain to pick another)", FALLBACK)
        return Claim("none of the structured domains fits (give --domain to pick one)", FALLBACK)

    def corpus_stats(self, data: CorpusData) -> TextStats:
        words: set[str] = set()
        chars = lines = 0
        for chunk in data.iter_text("train", max_chars=STATS_CHARS):
            words.update(w.lower() for w in WORD.findall(chunk))
            for line in chunk.split("\n"):
                if line.strip():
                    chars += len(line)
                    lines += 1
        return TextStats(frozenset(words), chars / lines if lines else None)

    def check(self, sample: str, ctx: EvalContext) -> CheckResult:
        m: dict[str, float | None] = {}
        issues: list[Issue] = []
        errors, open_at_end = _brackets(sample, issues)
        used = errors or open_at_end or any(c in sample for c in "()[]{}")
        m["bracket_errors_per_kb"] = 1000 * errors / max(1, len(sample)) if used else None
        m["brackets_open_at_end"] = float(open_at_end) if used else None
        quoted = [line for line in sample.split("\n") if '"' in line]
        m["quote_balance"] = sum(line.count('"') % 2 == 0 for line in quoted) / len(quoted) if quoted else None
        lines = [len(line) for line in sample.split("\n") if line.strip()]
        m["line_length"] = float(np.mean(lines)) if lines else None
        stats: TextStats | None = ctx.stats
        words = [w.lower() for w in WORD.findall(sample)]
        m["known_words"] = (sum(w in stats.words for w in words) / len(words)) if stats and words else None
        return CheckResult(m, issues)

    def summarize(self, samples: list[str], results: list[CheckResult], ctx: EvalContext) -> dict[str, float]:
        stats: TextStats | None = ctx.stats
        return {"line_length_train": stats.line_length} if stats and stats.line_length is not None else {}

    def features(self, text: str) -> dict[str, np.ndarray]:
        """Per character: position in the line, bracket depth, inside double quotes."""
        n = len(text)
        pos, depth, quote = np.zeros(n, np.float32), np.zeros(n, np.float32), np.zeros(n, np.float32)
        col = d = 0
        q = False
        for i, c in enumerate(text):
            if c == "\n":
                col, q = 0, False
            else:
                col += 1
            if c in BRACKETS:
                d += 1
            elif c in OPENER_OF and d:
                d -= 1
            elif c == '"':
                q = not q
            pos[i], depth[i], quote[i] = col, d, q
        return {"line_position": pos, "bracket_depth": depth, "in_quotes": quote}


def _brackets(text: str, issues: list[Issue]) -> tuple[int, int]:
    """(errors, left open at the end) of the bracket pairs, one pass with a stack."""
    stack: list[tuple[str, int]] = []
    errors = 0
    for i, c in _bracket_chars(text):
        if c in BRACKETS:
            stack.append((c, i))
        elif stack and stack[-1][0] == OPENER_OF[c]:
            stack.pop()
        else:
            errors += 1
            if len(issues) < MAX_ISSUES:
                what = f"closes {stack[-1][0]!r}" if stack else "closes nothing"
                issues.append(Issue("bracket_mismatch", f"{c!r} {what}", i, excerpt(text, i)))
            if stack:
                stack.pop()
    return errors, len(stack)


def _bracket_chars(text: str) -> Iterable[tuple[int, str]]:
    for m in re.finditer(r"[()\[\]{}]", text):
        yield m.start(), m.group()


@hookimpl
def register_domains(register: Any) -> None:
    register(TextDomain())

"""The contract of a domain: the Domain base class and the small parts it is made of.

Plugins never import this module: they import ``gen.core.api``, the one plugin-facing module,
which re-exports what is defined here. A domain plugin is a module with a
``register_domains(register)`` hook that calls ``register(MyDomain())``. Everything a domain can customise is a method or attribute of
:class:`Domain` below, with a working default, so a new domain overrides only what it needs
and later features (guided sampling, neuron features) never force a rewrite.

Lifecycle of the data a domain touches:

* prepare:  ``claim(source)`` says whether the domain reads a user's --src, and why (core asks
  every domain, built-in or third-party, and picks the strongest claim);
  ``documents(src, corpus, options, report)`` yields documents (str); the engine
  joins them with ``corpus.separator``, builds the vocabulary and writes train/val.
* eval:     ``corpus_stats(corpus_data)`` builds what ``--against`` needs once (training
  names, identifiers, titles ...); ``check(sample, ctx)`` scores one sample and never raises;
  ``summarize`` adds set-level metrics; ``baseline`` cuts real held-out text to compare with.
* sample:   ``tracker()`` returns a :class:`Tracker` for structure-guided sampling.
* viz:      ``features(text)`` returns per-character structural features for neuron search.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gen.core.corrupt import generic_corrupt
from gen.core.sources import Pieces, PrepareReport, iter_text_files, stream_source

if TYPE_CHECKING:  # only for type hints; keeps this module import-light for plugins
    import numpy as np

    from gen.core.data import CorpusData


@dataclass(frozen=True)
class MetricSpec:
    """Declares one metric a domain reports. Values are floats (or None when not applicable)."""

    name: str
    higher_is_better: bool | None  # None: informational (e.g. a mean length to compare by eye)
    description: str = ""
    # how per-sample values become one summary value: "mean" over samples where it is not None,
    # "sum" (counts), or "none" (the domain's summarize() computes it from the whole set)
    aggregate: str = "mean"


@dataclass
class Issue:
    """One problem found in a sample: what, where (character offset) and a short excerpt."""

    kind: str
    message: str
    offset: int = -1
    excerpt: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "message": self.message, "offset": self.offset, "excerpt": self.excerpt}


# the brackets every domain's checks share: opener -> closer, and closer -> opener
BRACKETS = {"(": ")", "[": "]", "{": "}"}
OPENER_OF = {closer: opener for opener, closer in BRACKETS.items()}


def excerpt(text: str, offset: int, width: int = 40) -> str:
    """A one-line window of ``text`` around ``offset``, for issue reports."""
    lo, hi = max(0, offset - width), min(len(text), offset + width)
    return text[lo:hi].replace("\n", "\u21b5")


@dataclass
class CheckResult:
    """What ``Domain.check`` returns for one sample: flat metric values plus issues found.
    Read-only once returned: a check may hand the same object to many samples (names: one
    result for every novel name of a length), so the harness copies, never edits, them."""

    metrics: dict[str, float | None] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)


@dataclass(frozen=True)
class Choice:
    """An option value from a fixed set: ``Option("mode", "...", "auto", Choice(("auto", "window")))``."""

    choices: tuple[str, ...]


@dataclass(frozen=True)
class Range:
    """A number within bounds: ``Range(int, min=1)``, ``Range(float, min=0.1, max=1.0)``."""

    kind: type = int
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class PathValue:
    """A path that must exist: a file (``dir_okay=False``), a folder (``file_okay=False``) or either."""

    file_okay: bool = True
    dir_okay: bool = True


@dataclass(frozen=True)
class Option:
    """A domain's own command-line option, declared once (``prepare_options`` / ``eval_options``).

    The core builds a click option from it (core/options.py), so ``gen prepare``/``gen eval``
    validate it and show it in ``--help``; the parsed value reaches the domain under ``name``
    (prepare ``options``, ``EvalContext.options``). Examples: ``--text-only``, ``--max-file-kb 512``.
    """

    name: str  # python name: text_only -> command-line --text-only
    help: str
    default: Any = False  # a bool default makes it a flag; otherwise the value's type parses it
    type: Any = None  # int, float, str, or gen's Choice, Range, PathValue; None: type(default)
    multiple: bool = False  # repeatable (``--include-dir A --include-dir B``): the value is a tuple

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


@dataclass(frozen=True)
class Claim:
    """A domain's answer to "is this --src yours?": the reason shown to the user, and how strongly
    it claims (the strongest claim of all domains picks the domain of a new user corpus)."""

    reason: str
    strength: float


# how strongly the common kinds of evidence claim a source; a domain may use any float
BY_FILE_SUFFIX = 2.0  # most files carry the domain's suffixes (plus their share, so the larger share wins)
BY_FORMAT = 1.5  # the text is in the domain's own format (an XML dialect, a header line)
BY_SHAPE = 1.0  # the text has the domain's shape (one short entry per line)
FALLBACK = 0.0  # any text at all


@dataclass
class SourceSample:
    """What domain inference reads of a --src before a domain is picked: file names (inside a
    folder or an archive, at most a few thousand) and the first bytes of the first text file."""

    names: list[str]
    head: bytes
    complete: bool  # head holds the whole first file
    stdin: bool = False

    @property
    def text(self) -> str:
        """The head as text ("" when it looks binary)."""
        from gen.core.sources import binary_reason

        return self.head.decode("utf-8", errors="ignore") if not binary_reason(self.head[:8192]) else ""

    def lines(self) -> list[str]:
        """Non-empty lines of the head (a line cut by the head's end left out)."""
        lines = self.text.splitlines()
        return [line for line in (lines if self.complete else lines[:-1]) if line.strip()]

    def suffix_claim(self, suffixes: tuple[str, ...], what: str) -> Claim | None:
        """The claim of a domain whose files end in ``suffixes``: at least a tenth of the files
        (and one) do; the larger that share, the stronger the claim."""
        import os

        count = sum(1 for n in self.names if os.path.splitext(n)[1].lower() in suffixes)
        if not count or count < len(self.names) // 10:
            return None
        return Claim(f"{count} of {len(self.names)} files are {what}", BY_FILE_SUFFIX + count / len(self.names))


@dataclass
class CorpusSpec:
    """A named corpus from a manifest in ``corpora/`` (or registered by a plugin)."""

    name: str
    domain: str
    description: str = ""
    patterns: list[str] = field(default_factory=lambda: ["*"])  # file globs taken from a --src tree
    separator: str = "\n"  # joins documents in the prepared stream
    split: str = "tail"  # "tail": last val_fraction of the stream; "hash": per document by hash
    val_fraction: float = 0.1
    sources: list[str] = field(default_factory=list)  # default --src: package:DIST/FILE (shipped in a package)
    # where the text comes from for real, when no --src is given: {"url", "sha256" or "size", "file",
    # "note"}; gen prepare downloads it (resumable, verified, cached in the workspace)
    download: dict[str, Any] = field(default_factory=dict)
    defaults: dict[str, dict[str, Any]] = field(default_factory=dict)  # {"cpu": {...}, "gpu": {...}}
    options: dict[str, Any] = field(default_factory=dict)  # default prepare options
    src: str = ""  # a user corpus: the --src it was prepared from
    # the text's licence as a Hugging Face licence id (cc-by-sa-3.0, gpl-2.0, ...) or "other:NAME";
    # an exported model card states it ("" where unknown)
    license: str = ""
    origin: str = ""  # where the manifest came from (file path, plugin name, or the workspace)

    @property
    def user(self) -> bool:
        """A corpus the user named (its manifest lives in the workspace), not a built-in."""
        return self.origin.startswith("workspace")


@dataclass(frozen=True)
class Constraint:
    """What a tracker allows next. ``allow`` None means any character not in ``ban``."""

    allow: frozenset[str] | None = None
    ban: frozenset[str] = frozenset()

    @property
    def free(self) -> bool:
        return self.allow is None and not self.ban


FREE = Constraint()


class Tracker:
    """Incremental structure state for guided sampling, fed one character at a time.

    Subclasses keep their state small (stacks, flags) so ``feed`` is cheap: it runs once per
    generated character. ``constraint`` says which next characters would break the structure;
    ``closing`` returns text that closes everything still open, in the right order.
    ``constraints`` names the families this tracker enforces, so users can pick a subset.
    """

    constraints: tuple[str, ...] = ()

    def __init__(self, enabled: Iterable[str] | None = None) -> None:
        self.enabled = set(self.constraints if enabled is None else enabled)

    def feed(self, ch: str) -> None:
        """Advance the state by one character."""

    def feed_text(self, text: str) -> None:
        for ch in text:
            self.feed(ch)

    def constraint(self) -> Constraint:
        """Characters that may (not) come next, given the state."""
        return FREE

    def closing(self) -> str:
        """Text that closes the open structure (empty when nothing is open)."""
        return ""

    def violations(self) -> int:
        """How many structure breaks the text fed so far contained (for tests and reports)."""
        return 0


class Domain:
    """Base class of every domain plugin. Override what differs; defaults are generic."""

    name: str = ""
    description: str = ""
    default_corpus: str = ""
    # a .txt samples file holds one sample per line (names) rather than one sample per file
    samples_per_line: bool = False
    # sampling stops a sample at this string by default (a name ends at its newline)
    stop: str | None = None
    metrics: tuple[MetricSpec, ...] = ()
    prepare_options: tuple[Option, ...] = ()  # flags of `gen prepare` for this domain's corpora
    eval_options: tuple[Option, ...] = ()  # flags of `gen eval DOMAIN`; values in EvalContext.options
    serial_options: tuple[str, ...] = ()  # eval options that run their own tool pool: no eval process pool
    stats_version: int = 1  # bump when corpus_stats changes shape: cached statistics are rebuilt
    # hyperparameter overrides of TrainConfig by device kind; corpus manifests override these
    defaults: dict[str, dict[str, Any]] = {}

    # ---- prepare -------------------------------------------------------------------------
    def eval_defaults(self) -> dict[str, Any]:
        """The values of :attr:`eval_options` when none is given (`gen eval`, `gen serve`'s checks)."""
        return {o.name: o.default for o in self.eval_options}

    def claim(self, source: SourceSample) -> Claim | None:
        """Whether a user's --src is text of this domain, and why (``gen prepare NAME --src``
        without ``--domain``). Default: no claim."""
        return None

    def documents(self, src: Path, corpus: CorpusSpec, options: dict[str, Any],
                  report: PrepareReport) -> Iterator[str | Pieces]:
        """Yield the documents of ``src`` (a file or a tree). Default: text files matching the
        corpus patterns, in sorted path order, one document per file; stdin or a single file
        streamed as :class:`Pieces` (memory stays flat whatever its size)."""
        single = stream_source(src, report)
        if single is not None:
            yield single
            return
        yield from iter_text_files(src, corpus.patterns, report)

    # ---- eval ----------------------------------------------------------------------------
    def corpus_stats(self, data: CorpusData) -> Any:
        """Statistics of the training corpus that checks compare against (built once)."""
        return None

    def check(self, sample: str, ctx: EvalContext) -> CheckResult:
        """Score one sample. Must never raise on a bad sample: bad samples are data."""
        return CheckResult()

    def check_many(self, samples: list[str], ctx: EvalContext) -> list[CheckResult]:
        """Score a whole set; override to run work in parallel (e.g. compiling samples)."""
        return [self.check(s, ctx) for s in samples]

    def summarize(self, samples: list[str], results: list[CheckResult], ctx: EvalContext) -> dict[str, float]:
        """Set-level metrics (e.g. share of unique samples), beside the per-sample means."""
        return {}

    def baseline(self, data: CorpusData, lengths: list[int], rng: random.Random) -> list[str]:
        """Real held-out text cut to the samples' lengths, scored beside the samples."""
        return data.val_windows(lengths, rng)

    def corrupt(self, text: str, rng: random.Random) -> str:
        """A damaged copy of real text (for calibration: it must score clearly worse)."""
        return generic_corrupt(text, rng)

    # ---- guided sampling and interpretation (later features; defaults do nothing) --------
    def tracker(self, enabled: Iterable[str] | None = None, stats: Any = None) -> Tracker | None:
        """A fresh structure tracker for guided sampling, or None when the domain has none.
        ``enabled`` picks constraint families; ``stats`` (from ``corpus_stats``) is given when the
        training corpus is known, e.g. for names to avoid."""
        return None

    def features(self, text: str) -> dict[str, np.ndarray]:
        """Per-character structural features of ``text`` (name -> float array of len(text))."""
        return {}


@dataclass
class EvalContext:
    """What a check is handed besides the sample."""

    domain: Domain
    data: CorpusData | None = None  # the --against corpus, when given
    options: dict[str, Any] = field(default_factory=dict)
    # per-eval scratch space of checks (caches, worker pools): lives and dies with this eval,
    # never on the domain object, so two evals in one process cannot see each other's state
    state: dict[str, Any] = field(default_factory=dict)
    _stats: Any = None
    _stats_built: bool = False

    @property
    def stats(self) -> Any:
        """The domain's corpus statistics (None without --against): loaded from the corpus
        folder's cache, or built on first use and cached there (core/statscache.py)."""
        if not self._stats_built:
            from gen.core.statscache import load_or_build

            self._stats = load_or_build(self.domain, self.data) if self.data is not None else None
            self._stats_built = True
        return self._stats


class SampleMetric:
    """A family of metrics that applies to every domain (novelty, repetition, copying ...).

    Registered through ``register_metrics(register)``; checked on every sample beside the
    domain's own checks, with the same never-raise rule.
    """

    name: str = ""
    metrics: tuple[MetricSpec, ...] = ()

    def check(self, sample: str, ctx: EvalContext) -> CheckResult:
        return CheckResult()

    def check_many(self, samples: list[str], ctx: EvalContext) -> list[CheckResult]:
        """Score a whole set; override to share work across samples."""
        return [self.check(s, ctx) for s in samples]

    def summarize(self, samples: list[str], results: list[CheckResult], ctx: EvalContext) -> dict[str, float]:
        return {}

"""The plugin API: everything a domain or metric plugin may import, in one module.

A plugin imports ``gen.core.api`` and nothing else of gen (tests/core/test_layout.py enforces it),
so the engine's internals can move without breaking plugins::

    from gen.core.api import CheckResult, Domain, MetricSpec, hookimpl

    class Morse(Domain):
        name = "morse"
        metrics = (MetricSpec("dots", None),)
        def claim(self, source):  # gen prepare mine --src signals.morse: this domain, and why
            return source.suffix_claim((".morse",), "Morse code")
        def check(self, sample, ctx):
            return CheckResult({"dots": sample.count(".")})

    @hookimpl
    def register_domains(register):
        register(Morse())
"""

from gen.core.corrupt import cut_spans, generic_corrupt
from gen.core.data import CorpusData
from gen.core.domain import (
    BRACKETS,
    BY_FILE_SUFFIX,
    BY_FORMAT,
    BY_SHAPE,
    FALLBACK,
    FREE,
    OPENER_OF,
    CheckResult,
    Choice,
    Claim,
    Constraint,
    CorpusSpec,
    Domain,
    EvalContext,
    Issue,
    MetricSpec,
    Option,
    PathValue,
    Range,
    SampleMetric,
    SourceSample,
    Tracker,
    excerpt,
)
from gen.core.errors import GenError
from gen.core.hookspecs import hookimpl
from gen.core.sources import (
    ARCHIVE_SUFFIXES,
    Pieces,
    PrepareReport,
    binary_reason,
    decode,
    iter_sources,
    matches,
    walk_files,
)
from gen.core.vocab import code_points, from_code_points

__all__ = [
    # the contract: a domain and its parts, a metric for every domain, the hook marker
    "Domain", "SampleMetric", "MetricSpec", "CheckResult", "Issue", "EvalContext", "Tracker", "Constraint", "FREE",
    "Option", "Choice", "Range", "PathValue", "Claim", "SourceSample", "BY_FILE_SUFFIX", "BY_FORMAT", "BY_SHAPE",
    "FALLBACK", "CorpusSpec", "CorpusData", "hookimpl", "GenError",
    # helpers domains share: reading sources, reporting issues, damaging text, code points
    "ARCHIVE_SUFFIXES", "Pieces", "PrepareReport", "binary_reason", "decode", "iter_sources", "matches", "walk_files",
    "excerpt", "BRACKETS", "OPENER_OF", "cut_spans", "generic_corrupt", "code_points", "from_code_points",
]

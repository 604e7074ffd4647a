"""The public plugin API: everything a domain or metric plugin may import, in one module.

A plugin imports ``gen.core.api`` and nothing else of gen (tests/test_layout.py enforces it),
so the engine's internals can move without breaking plugins::

    from gen.core.api import CheckResult, Domain, MetricSpec, hookimpl

    class Morse(Domain):
        name = "morse"
        metrics = (MetricSpec("dots", None),)
        def check(self, sample, ctx):
            return CheckResult({"dots": sample.count(".")})

    @hookimpl
    def register_domains(register):
        register(Morse())
"""

from gen.core.atomic import atomic_write, atomic_write_text
from gen.core.corrupt import change_letters, drop_chars, generic_corrupt, shuffle_lines
from gen.core.data import CorpusData
from gen.core.domain import (
    FREE,
    CheckResult,
    Constraint,
    CorpusSpec,
    Domain,
    EvalContext,
    Issue,
    MetricSpec,
    Option,
    SampleMetric,
    Tracker,
    excerpt,
)
from gen.core.errors import GenError
from gen.core.hookspecs import hookimpl
from gen.core.sources import (
    ARCHIVE_SUFFIXES,
    PrepareReport,
    binary_reason,
    decode,
    iter_sources,
    iter_text_files,
    matches,
    walk_files,
)
from gen.core.vocab import code_points, from_code_points

__all__ = [
    "ARCHIVE_SUFFIXES", "FREE", "CheckResult", "Constraint", "CorpusData", "CorpusSpec", "Domain", "EvalContext",
    "GenError", "Issue", "MetricSpec", "Option", "PrepareReport", "SampleMetric", "Tracker", "atomic_write",
    "atomic_write_text", "binary_reason", "change_letters", "code_points", "decode", "drop_chars", "excerpt", "from_code_points", "generic_corrupt", "hookimpl",
    "iter_sources", "iter_text_files", "matches", "shuffle_lines", "walk_files",
]

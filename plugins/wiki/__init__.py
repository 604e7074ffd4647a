"""The wiki domain: Wikipedia dumps (enwik8) as raw MediaWiki XML with wikitext.

The blog trained on enwik8 raw: the model learned ``[[links]]``, ``{{templates}}``, headings and
the dump's XML, and invented URLs, timestamps and page ids. This plugin prepares such dumps
(plain or compressed, streamed page by page; see :mod:`.source`) and judges samples on three
layers, each a module of its own:

* XML (:mod:`.xmlcheck`): well-formedness and nesting of the dump's elements, with a tag-stack
  scanner and expat guarded as defusedxml guards it (no DTD, no entity expansion, no fetching:
  a sample may be an entity bomb);
* wikitext (:mod:`.text`): ``[[ ]]``, ``{{ }}``, ``'' '''``, headings, tables, ``<ref>``;
* invention: link targets that name pages the training corpus knows, well-formed URLs, valid
  timestamps, numeric ids; optionally mwparserfromhell as a second parser (``mwparser`` eval
  option; slow on real text and superlinear on broken markup, so off by default and
  time-limited in a worker process, :mod:`.mwp`).

Guided sampling lives in :mod:`.tracker`, neuron features in :mod:`.features`, the
calibration damage in :mod:`.corrupt`.
"""

from __future__ import annotations

import bisect
import random
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from gen.core.api import (
    BY_FORMAT,
    CheckResult,
    Claim,
    CorpusSpec,
    Domain,
    EvalContext,
    Issue,
    MetricSpec,
    Option,
    PrepareReport,
    SourceSample,
    Tracker,
    excerpt,
    hookimpl,
)

from . import text as wt
from .features import wiki_features
from .source import iter_documents, xml_unescape
from .tracker import WikiTracker
from .xmlcheck import has_xml, scan_xml

# mwparserfromhell (eval option mwparser) gets this long per sample: 5x its speed on real text
MWP_SECONDS, MWP_SECONDS_PER_CHAR = 0.5, 5e-6
_TITLE = re.compile(r"<title>([^<]{1,512})</title>")

METRICS = (
    MetricSpec("xml_well_formed", True, "samples with XML: no mismatched/unclosed/misplaced element, "
               "and the fragment closed at both ends parses (defusedxml)"),
    MetricSpec("xml_mismatched", False, "close tags that close nothing open (per sample with XML)"),
    MetricSpec("xml_unclosed", False, "elements left open inside a closed parent (per sample with XML)"),
    MetricSpec("xml_bad_nesting", False, "elements where the dump schema has none (per sample with XML)"),
    MetricSpec("link_balance", True, "share of [[ ]] that pair up on their line"),
    MetricSpec("template_balance", True, "share of {{ }} that pair up"),
    MetricSpec("emphasis_pairing", True, "share of lines whose '' and ''' pair up"),
    MetricSpec("heading_balance", True, "share of heading lines with as many = on both sides"),
    MetricSpec("table_balance", True, "share of {| |} that pair up"),
    MetricSpec("ref_balance", True, "share of <ref> </ref> that pair up"),
    MetricSpec("link_known", True, "share of link targets the training corpus knows (a page title "
               "or a link target there); the rest are invented (needs --against)"),
    MetricSpec("link_title_known", True, "share of link targets naming a training page's title "
               "(needs --against)"),
    MetricSpec("url_valid", True, "share of URLs that are well-formed (host, port, characters)"),
    MetricSpec("timestamp_valid", True, "share of <timestamp> values that are real dates, 2001..now"),
    MetricSpec("id_numeric", True, "share of <id> values that are numbers"),
    MetricSpec("mwp_link_parsed", True, "share of [[ that mwparserfromhell reads as a link "
               "(eval option mwparser)"),
    MetricSpec("mwp_template_parsed", True, "share of {{ that mwparserfromhell reads as a template "
               "(eval option mwparser)"),
)
_UNIT_METRIC = {"links": "link_balance", "templates": "template_balance", "emphasis": "emphasis_pairing",
                "headings": "heading_balance", "tables": "table_balance", "refs": "ref_balance",
                "urls": "url_valid", "timestamps": "timestamp_valid", "ids": "id_numeric",
                "known": "link_known", "titles": "link_title_known",
                "mwp_links": "mwp_link_parsed", "mwp_templates": "mwp_template_parsed"}


@dataclass
class WikiStats:
    """What --against needs from the training split: page titles, and titles plus link targets."""

    titles: set[str]
    known: set[str]

    @classmethod
    def from_chunks(cls, chunks: Iterable[str]) -> WikiStats:
        titles: set[str] = set()
        targets: set[str] = set()
        carry = ""
        for chunk in chunks:
            text = carry + chunk
            cut = text.rfind("\n") + 1 or len(text)  # links and titles never span the cut
            if len(text) - cut > 1 << 16:
                cut = len(text)
            whole, carry = text[:cut], text[cut:]
            titles.update(wt.normalize_title(t) for t in _TITLE.findall(whole))
            targets.update(t for _, t in wt.link_targets(whole))
        titles.update(wt.normalize_title(t) for t in _TITLE.findall(carry))
        targets.update(t for _, t in wt.link_targets(carry))
        return cls(titles, titles | targets)


class WikiDomain(Domain):
    name = "wiki"
    description = "Wikipedia dumps (MediaWiki XML + wikitext), checked for XML, markup and invention"
    default_corpus = "enwik8"
    metrics = METRICS
    prepare_options = (Option("text_only", "keep only each page's wikitext (unescaped), no XML"),)
    eval_options = (Option("mwparser", "also parse with mwparserfromhell (time-limited per sample)"),)
    serial_options = ("mwparser",)
    defaults = {
        # CPU: a model that learns links, templates and the XML skeleton in minutes
        "cpu": {"n_layer": 2, "n_hidden": 256, "seq_len": 128, "batch_size": 32, "max_steps": 3000},
        # GPU: the blog's overnight run: 3 x 512 LSTM, long BPTT, dropout for 100 MB of text
        "gpu": {"n_layer": 3, "n_hidden": 512, "seq_len": 256, "batch_size": 128, "dropout": 0.2,
                "lr": 2e-3, "max_steps": 50000, "eval_every": 1000},
    }

    # ---- prepare ---------------------------------------------------------------------------
    def claim(self, source: SourceSample) -> Claim | None:
        text = source.text
        if "<mediawiki" in text[:4096] or ("<page>" in text and "<title>" in text):
            return Claim("it is MediaWiki XML", BY_FORMAT)
        return None

    def documents(self, src: Path, corpus: CorpusSpec, options: dict[str, Any],
                  report: PrepareReport) -> Iterator[str]:
        yield from iter_documents(src, corpus.patterns, report, text_only=bool(options.get("text_only")))

    # ---- eval ------------------------------------------------------------------------------
    def corpus_stats(self, data) -> WikiStats:
        return WikiStats.from_chunks(data.iter_text("train"))

    def check(self, sample: str, ctx: EvalContext) -> CheckResult:
        result = CheckResult(metrics={m.name: None for m in METRICS})
        self._check(sample, ctx, result)
        return result

    def _check(self, sample: str, ctx: EvalContext, result: CheckResult) -> None:
        tally = wt.Tally()
        m = result.metrics
        if has_xml(sample):
            xs = scan_xml(sample)
            m["xml_well_formed"] = float(xs.well_formed)
            m["xml_mismatched"] = float(xs.mismatched)
            m["xml_unclosed"] = float(xs.unclosed)
            m["xml_bad_nesting"] = float(xs.bad_nesting)
            tally.issues.extend(xs.problems)
            segments = xs.segments
            wt.check_values(xs.values, tally, datetime.now(timezone.utc))
        else:
            segments = [(0, len(sample), True, True)]
        stats = ctx.stats
        use_mwp = bool(ctx.options.get("mwparser"))
        mwp_views: list[str] = []
        for start, end, cut_start, cut_end in segments:
            view = sample[start:end]
            wt.check_wikitext(view, start, cut_start, cut_end, tally)
            wt.check_urls(view, start, len(sample), tally)
            if stats is not None:
                self._invention(view, start, stats, tally)
            if use_mwp:
                mwp_views.append(view)
        if use_mwp and mwp_views:  # one call per sample: one time limit per sample
            _mwparser("\n\n".join(mwp_views), tally, segments[0][0])
        for unit, metric in _UNIT_METRIC.items():
            m[metric] = tally.share(unit)
        result.issues.extend(Issue(kind, msg, off, excerpt(sample, off)) for kind, msg, off in tally.issues)

    @staticmethod
    def _invention(view: str, base: int, stats: WikiStats, tally: wt.Tally) -> None:
        raws = wt.link_raw_targets(view)
        if not raws:
            return
        targets = [t for t in map(wt.article_target, raws) if t]
        if not targets:
            return
        unknown = [t for t in targets if t not in stats.known]
        tally.add("known", len(targets) - len(unknown), len(targets))
        tally.add("titles", sum(t in stats.titles for t in targets), len(targets))
        for t in unknown[:3]:  # a few examples: the metric carries the count
            off = max(0, view.find(t[1:]) - 3)  # where the link is (its first letter may differ)
            tally.issue("link_invented", f"[[{t[:60]}]] names no page the training corpus knows", base + off)

    def baseline(self, data, lengths: list[int], rng: random.Random) -> list[str]:
        """Held-out pages cut to the samples' lengths, each window starting at a line start
        (samples start after a newline too: the corpus separator primes them)."""
        split = "val" if len(data.ids("val")) else "train"
        text = data.text(split, max(8 * sum(lengths), 2 << 20))
        starts = [0] + [m.end() for m in re.finditer("\n", text) if m.end() < len(text)]
        out = []
        for n in lengths:
            k = bisect.bisect_right(starts, len(text) - n)  # starts with n characters after them
            s = starts[rng.randrange(k)] if k else 0
            out.append(text[s:s + n])
        return out

    def corrupt(self, text: str, rng: random.Random) -> str:
        from .corrupt import corrupt_wiki

        return corrupt_wiki(text, rng)

    # ---- guided sampling and interpretation ------------------------------------------------
    def tracker(self, enabled: Iterable[str] | None = None, stats: Any = None) -> Tracker:
        return WikiTracker(enabled)

    def features(self, text: str) -> dict[str, np.ndarray]:
        return wiki_features(text)


def _mwparser(view: str, tally: wt.Tally, base: int) -> None:
    """mwparserfromhell's reading of the wikitext: links and templates it recognises, against
    the [[ and {{ written (it reads broken markup as text). Time-limited: see wiki_mwp."""
    from .mwp import WORKER

    text = xml_unescape(view)
    opens_l, opens_t = text.count("[["), text.count("{{")
    if not opens_l and not opens_t:
        return
    got = WORKER.count(text, MWP_SECONDS + len(text) * MWP_SECONDS_PER_CHAR)
    if not isinstance(got, tuple):
        tally.issue("mwparser_gave_up", f"mwparserfromhell: {got or 'out of time'}", base)
        return
    links, tpls = got
    if opens_l:
        tally.add("mwp_links", min(links, opens_l), opens_l)
    if opens_t:
        tally.add("mwp_templates", min(tpls, opens_t), opens_t)


@hookimpl
def register_domains(register) -> None:
    register(WikiDomain())

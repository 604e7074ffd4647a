"""The prose domain: English text (Shakespeare's plays, War and Peace, any .txt files).

Prepare keeps the text as written: it only normalises line ends, drops a byte-order mark and
removes Project Gutenberg header and footer blocks (reported). Evaluation asks what a reader
would notice, per sample, with excerpts:

* word validity: words found in the training text, in the system word list (Debian's
  ``wamerican``, /usr/share/dict/words) and the invented ones, listed;
* form: double quotes and brackets pairing within paragraphs, sentence lengths against
  training (Kolmogorov-Smirnov distance, pooled over the set), and for play text speaker
  blocks (``NAME:`` then lines) and whether the speakers exist in training;
* repetition: repeated word 4-grams, the low-temperature loop.

Copying from training is measured for every domain by ``gen.evals.copydetect.copying``.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gen.core.api import (
    CheckResult,
    CorpusData,
    CorpusSpec,
    Domain,
    EvalContext,
    Issue,
    MetricSpec,
    PrepareReport,
    excerpt,
    hookimpl,
    iter_sources,
)

from . import text as pt
from .sentences import SentenceIndex
from .structure import ProseTracker
from .structure import features as prose_features

MAX_STATS_CHARS = 64_000_000  # training text read for corpus statistics (prose corpora are small)
MAX_LISTED = 12  # invented words listed per sample
REF_WINDOWS = 4  # training windows per sample for the sentence-length reference


@dataclass
class ProseStats:
    """What ``--against`` compares with: the training words, speakers and sentence lengths."""

    words: frozenset[str] = frozenset()
    speakers: frozenset[str] = frozenset()
    play: bool = False
    text: str = ""  # the training text, for reference windows cut like the samples
    index: SentenceIndex | None = field(default=None, repr=False, compare=False)  # built on first use

    @classmethod
    def from_text(cls, text: str) -> ProseStats:
        paras = pt.paragraphs(text)
        play = pt.is_play(paras)
        speakers = {s for s in (pt.speaker_of(p) for _, p in paras) if s}
        return cls(words=frozenset(pt.norm(w) for w in pt.distinct_words(text)),
                   speakers=frozenset(speakers) if play else frozenset(), play=play, text=text)

    def reference_sentence_lengths(self, lengths: list[int], per_sample: int = REF_WINDOWS,
                                   seed: int = 0) -> np.ndarray:
        """Sentence lengths of training windows cut like the samples (same lengths, starting at
        a line, first and last pieces dropped): a window favours long sentences at its cut
        ends and cannot hold sentences longer than itself, so whole-text lengths would not
        compare fairly with samples."""
        rng = random.Random(seed)
        spans: list[tuple[int, int]] = []
        text = self.text
        if self.index is None:
            self.index = SentenceIndex(text, self.play)
        for n in lengths:
            for _ in range(per_sample):
                if len(text) <= n:
                    start = 0
                else:
                    start = text.find("\n", rng.randrange(len(text) - n)) + 1
                spans.append((start, start + n))
        return np.sort(self.index.windows(spans))


class ProseDomain(Domain):
    name = "prose"
    description = "English prose and plays (tiny Shakespeare, War and Peace, any .txt files)"
    default_corpus = "shakespeare"
    metrics = (
        MetricSpec("word_train", True, "share of words found in the training text"),
        MetricSpec("word_dict", True, "share of words found in the system word list (wamerican)"),
        MetricSpec("invented", False, "share of words in neither the training text nor the word list"),
        MetricSpec("quote_pairing", True, "share of whole paragraphs with quotes whose double quotes pair"),
        MetricSpec("bracket_pairing", True, "share of whole paragraphs with brackets whose brackets pair"),
        MetricSpec("sentence_len_ks", False, "KS distance of words per sentence vs training (pooled over "
                                             "the set)", aggregate="none"),
        MetricSpec("speaker_blocks", True, "play text: share of whole blocks that are NAME: then lines"),
        MetricSpec("speaker_known", True, "play text: share of speaker names found in training"),
        MetricSpec("repeat_ngrams", False, "share of word 4-grams repeated within the sample"),
    )
    # CPU: a 15-minute budget (the schedule anneals over it) for the model that learns most in
    # it on 2 cores: one 2x512 step costs about 4x a 2x256 step there, so 2x256 sees ~4x the
    # text; fp32, since this CPU has no bf16 units (bf16 autocast ran 3-7x slower). GPU: the
    # blog's 3x512 with dropout. Corpus manifests refine these; the lead tunes the CPU figures.
    defaults = {
        "cpu": {"n_layer": 2, "n_hidden": 256, "n_embd": 64, "dropout": 0.0, "batch_size": 32, "seq_len": 128,
                "lr": 3e-3, "max_steps": 100_000, "max_time": 900.0, "eval_every": 200, "eval_chars": 100_000},
        "gpu": {"n_layer": 3, "n_hidden": 512, "n_embd": 64, "dropout": 0.3, "batch_size": 64, "seq_len": 128,
                "lr": 2e-3, "max_steps": 5000, "eval_every": 250},
    }

    # ---- prepare ---------------------------------------------------------------------------
    def documents(self, src: Path, corpus: CorpusSpec, options: dict[str, Any],
                  report: PrepareReport) -> Iterator[str]:
        for fname, text in iter_sources(src, corpus.patterns, report):
            text = pt.normalise_newlines(text)
            body, head, tail = pt.strip_gutenberg(text)
            if head or tail:
                report.note(f"{fname}: removed Project Gutenberg header ({head} chars) "
                            f"and footer ({tail} chars)")
            yield body

    # ---- eval ------------------------------------------------------------------------------
    def corpus_stats(self, data: CorpusData) -> ProseStats:

        return ProseStats.from_text(data.text("train", MAX_STATS_CHARS))

    def check(self, sample: str, ctx: EvalContext) -> CheckResult:
        return self._check(sample, ctx.stats)

    def _check(self, sample: str, stats: ProseStats | None) -> CheckResult:
        res = CheckResult()
        m = res.metrics
        raw, starts = pt.words_at(sample)
        if raw and pt.LETTER.match(sample[-1]):
            raw.pop()  # the last word runs to the end: cut by the length limit, not an invented word
        distinct = list(set(raw))  # each distinct spelling normalised once, all in one string
        normal = dict(zip(distinct, pt.norm("\n".join(distinct)).split("\n"), strict=True)) if distinct else {}
        normed = list(map(normal.__getitem__, raw))
        self._word_validity(sample, raw, starts, normed, stats, res)
        paras = pt.paragraphs(sample)
        whole = list(range(1, len(paras) - 1))  # the first and last blocks may be cut
        self._pairing(sample, paras, whole, res)
        play = stats.play if stats is not None else pt.is_play(paras)
        m["sentence_len_ks"] = None  # a set-level figure: see summarize()
        m["speaker_blocks"] = m["speaker_known"] = None
        if play:
            self._speakers(sample, paras, whole, stats, res)
        m["repeat_ngrams"] = pt.repeated_ngram_share(normed, 4)
        if m["repeat_ngrams"] is not None and m["repeat_ngrams"] >= 0.2:
            res.issues.append(Issue("repetition", f"{m['repeat_ngrams']:.0%} of word 4-grams repeat "
                                                  "earlier ones (a loop?)", 0, excerpt(sample, len(sample) // 2)))
        return res

    def _word_validity(self, sample: str, raw: list[str], starts: np.ndarray, normed: list[str],
                       stats: ProseStats | None, res: CheckResult) -> None:
        """Each distinct word is looked up once (a sample repeats most of its words), then
        counted by its occurrences: the shares are over every word. ``raw`` are the words as
        written, ``starts`` their offsets, ``normed`` their normal forms."""
        m = res.metrics
        n = len(normed)
        counts = Counter(normed)  # in order of first occurrence
        # the words found, as sets (membership tested in C, not a Python loop per word)
        in_train = stats.words.intersection(counts) if stats is not None else None
        in_dict = pt.dictionary_words(counts)
        m["word_train"] = sum(map(counts.__getitem__, in_train)) / n if in_train is not None and n else None
        m["word_dict"] = sum(map(counts.__getitem__, in_dict)) / n if in_dict is not None and n else None
        if (in_train is None and in_dict is None) or not n:
            m["invented"] = None
            return
        known = (in_train or set()) | (in_dict or set())
        invented = [w for w in counts if w not in known]
        m["invented"] = sum(map(counts.__getitem__, invented)) / n
        if not invented:
            return
        where = ("in neither the training text nor the word list" if in_train is not None and in_dict is not None
                 else "not in the training text" if in_train is not None else "not in the word list")
        for w in invented[:MAX_LISTED]:  # in order of first occurrence, as ``counts`` has them
            k = normed.index(w)  # its first occurrence (a scan in C)
            at = int(starts[k])
            res.issues.append(Issue("invented_word", f"{raw[k]!r} is {where}", at, excerpt(sample, at, 30)))
        if len(invented) > MAX_LISTED:
            res.issues.append(Issue("invented_word", f"... and {len(invented) - MAX_LISTED} more invented words"))

    def _pairing(self, sample: str, paras: list[tuple[int, str]], whole: list[int], res: CheckResult) -> None:
        quoted = ok_q = bracketed = ok_b = 0
        for k in whole:
            off, p = paras[k]
            if pt.has_quotes(p):
                quoted += 1
                if pt.quote_balanced(p, paras[k + 1][1]):
                    ok_q += 1
                else:
                    res.issues.append(Issue("unpaired_quote", "a double quote in this paragraph does not pair",
                                            off, excerpt(sample, off + p.find('"') if '"' in p else off)))
            if any(c in p for c in "()[]{}"):
                bracketed += 1
                err = pt.bracket_error(p)
                if err is None:
                    ok_b += 1
                else:
                    res.issues.append(Issue("unpaired_bracket", f"{p[err]!r} does not pair", off + err,
                                            excerpt(sample, off + err)))
        res.metrics["quote_pairing"] = ok_q / quoted if quoted else None
        res.metrics["bracket_pairing"] = ok_b / bracketed if bracketed else None

    def _speakers(self, sample: str, paras: list[tuple[int, str]], whole: list[int],
                  stats: ProseStats | None, res: CheckResult) -> None:
        good = 0
        for k in whole:
            off, p = paras[k]
            who = pt.speaker_of(p)
            lines = [ln for ln in p.split("\n")[1:] if ln.strip()]
            # a known speaker's line inside a block: the blank line before it is missing (real
            # text never has one; "Come:" alone is a verse line, hence "known")
            inner = stats is not None and any(pt.SPEAKER.fullmatch(ln) and ln[:-1] in stats.speakers
                                              for ln in lines)
            if who is not None and lines and not inner:
                good += 1
            else:
                why = ("has no speaker line" if who is None else "has a speaker but no lines" if not lines
                       else "has a second speaker line inside it")
                res.issues.append(Issue("speaker_block", f"block {why}", off, excerpt(sample, off)))
        res.metrics["speaker_blocks"] = good / len(whole) if whole else None
        if stats is None or not stats.speakers:
            return
        # every block's speaker line counts, the last one too when its line is complete
        last_nl = sample.rfind("\n")  # a block from ``off`` has a complete line iff off <= last_nl
        names = [(off, s) for off, p in paras if (s := pt.speaker_of(p)) and off <= last_nl]
        if names:
            unknown = [(off, s) for off, s in names if s not in stats.speakers]
            res.metrics["speaker_known"] = 1 - len(unknown) / len(names)
            for off, s in unknown[:MAX_LISTED]:
                res.issues.append(Issue("unknown_speaker", f"speaker {s!r} does not exist in training", off,
                                        excerpt(sample, off)))

    def summarize(self, samples: list[str], results: list[CheckResult], ctx: EvalContext) -> dict[str, float]:
        """Sentence lengths pooled over the set: one sample holds too few sentences for a
        distribution, a set of them does."""
        stats = ctx.stats
        if stats is None or not samples:
            return {}
        pooled = self._pooled_lengths(samples, stats.play)
        if len(pooled) < 3:
            return {}
        ref = stats.reference_sentence_lengths([len(s) for s in samples])
        ks = pt.ks_distance(pooled, ref)
        return {"sentence_len_ks": ks} if ks is not None else {}

    @staticmethod
    def _pooled_lengths(samples: list[str], play: bool) -> np.ndarray:
        """Every sample's ``sentence_lengths``, in one pass: the samples joined by newlines, each
        a window of that text from a line start (the same figures, see SentenceIndex.windows;
        a quarter of the time). Any string is read (lone surrogates included); a
        failure all the same is the harness's to record as a set issue."""
        size = np.fromiter(map(len, samples), dtype=np.int64, count=len(samples))
        start = np.cumsum(size + 1) - size - 1
        spans = list(zip(start.tolist(), (start + size).tolist(), strict=True))
        return SentenceIndex("\n".join(samples), play).windows(spans)

    def corrupt(self, text: str, rng: random.Random) -> str:
        from gen.core.api import generic_corrupt

        return generic_corrupt(text, rng)

    # ---- guided sampling and interpretation -------------------------------------------------
    def tracker(self, enabled: Iterable[str] | None = None, stats: Any = None) -> ProseTracker:
        return ProseTracker(enabled)

    def features(self, text: str) -> dict[str, np.ndarray]:
        return prose_features(text)


@hookimpl
def register_domains(register):
    register(ProseDomain())

"""Sentence lengths of many windows of one training text, from one pass over the text.

The sentence-length reference of ``--against`` cuts several training windows per sample (see
``ProseStats.reference_sentence_lengths``) and measures each as
:func:`text.sentence_lengths` would: four times the samples' text through the regexes again. A
window starts at a line start, so everything in its complete lines is what the whole text
says there (an end never spans a newline, a speaker line is a whole line): only the window's
last, partial line can differ (it may end mid-word, mid-end or look like a speaker line). So the
ends and word starts of the whole text are found once, and a window costs two binary searches
plus the regexes over its last line: the same figures (tested against sentence_lengths), about
4x less work for the prose summary (evals/BENCHMARKS.md, "Prose and names checks").
"""

from __future__ import annotations

import numpy as np

from .text import blank_speakers, ends_and_starts

BLOCK = 1 << 22  # characters read at a time (cut after a newline): bounds the temporaries


class SentenceIndex:
    """A text's sentence ends and word starts (speaker lines blanked for play text)."""

    def __init__(self, text: str, play: bool) -> None:
        self.text, self.play = text, play
        ends, starts = [], []
        at = 0
        while at < len(text):
            cut = text.find("\n", min(at + BLOCK, len(text)) - 1)
            end = len(text) if cut < 0 else cut + 1  # each block ends after a newline (or the text)
            piece = text[at:end]
            e, s = ends_and_starts(blank_speakers(piece) if play else piece, at)
            ends.append(e)
            starts.append(s)
            at = end
        self.ends = np.concatenate(ends) if ends else np.zeros(0, dtype=np.int64)
        self.starts = np.concatenate(starts) if starts else np.zeros(0, dtype=np.int64)

    def window(self, start: int, stop: int) -> list[int]:
        """``sentence_lengths(text[start:stop], play)`` for a window beginning at a line start."""
        stop = min(stop, len(self.text))
        if start >= stop:
            return []
        last = self.text.rfind("\n", start, stop) + 1 or start  # where the partial last line begins
        tail = self.text[last:stop]
        tail_ends, tail_starts = ends_and_starts(blank_speakers(tail) if self.play else tail, last)
        e0, e1 = np.searchsorted(self.ends, [start, last])
        s0, s1 = np.searchsorted(self.starts, [start, last])
        bounds = np.concatenate([[start], self.ends[e0:e1], tail_ends, [stop]])
        starts = np.concatenate([self.starts[s0:s1], tail_starts])
        counts = np.diff(np.searchsorted(starts, bounds))[1:-1]  # words per piece, the cut ends dropped
        return counts[counts > 0].tolist()

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
        return self.windows([(start, stop)]).tolist()

    def windows(self, spans: list[tuple[int, int]]) -> np.ndarray:
        """:meth:`window` of every (start, stop), concatenated in order, in one pass: the partial
        last lines joined by newlines go through the regexes once (a line is read the same alone
        or between newlines), and every window's pieces are counted by whole-array searches
        (the reference's windows, one per sample: a numpy round each cost more than the work)."""
        text, first, stops, lasts, tails = self.text, [], [], [], []
        for start, stop in spans:
            stop = min(stop, len(text))
            if start < stop:
                last = text.rfind("\n", start, stop) + 1 or start  # where the partial last line begins
                first.append(start)
                stops.append(stop)
                lasts.append(last)
                tails.append(text[last:stop])
        if not first:
            return np.zeros(0, dtype=np.int64)
        start, last = np.array(first, dtype=np.int64), np.array(lasts, dtype=np.int64)
        joined = "\n".join(tails)
        size = np.array([len(t) for t in tails], dtype=np.int64)
        off = np.cumsum(size + 1) - size - 1  # where each tail begins in ``joined``
        t_ends, t_starts = ends_and_starts(blank_speakers(joined) if self.play else joined)
        e0, e1 = np.searchsorted(self.ends, start), np.searchsorted(self.ends, last)
        s0, s1 = np.searchsorted(self.starts, start), np.searchsorted(self.starts, last)
        te0, te1 = np.searchsorted(t_ends, off), np.searchsorted(t_ends, off + size)
        ts0, ts1 = np.searchsorted(t_starts, off), np.searchsorted(t_starts, off + size)
        # per window, the words before each boundary: its start (0), the ends of its whole lines,
        # the ends in its last line, its stop; a piece's words are the differences
        whole, of_whole = _ranges(e0, e1)
        part, of_part = _ranges(te0, te1)
        n_bounds = 2 + (e1 - e0) + (te1 - te0)
        base = np.cumsum(n_bounds) - n_bounds  # where each window's boundaries begin
        words = np.zeros(int(n_bounds.sum()), dtype=np.int64)
        words[base[of_whole] + 1 + _place(e1 - e0)] = np.searchsorted(self.starts, self.ends[whole]) - s0[of_whole]
        inner = s1 - s0  # words in the whole lines
        words[base[of_part] + 1 + (e1 - e0)[of_part] + _place(te1 - te0)] = (inner[of_part] + np.searchsorted(t_starts, t_ends[part])
                                                           - ts0[of_part])
        words[base + n_bounds - 1] = inner + ts1 - ts0
        counts = np.diff(words)
        keep = np.ones(len(counts), dtype=bool)  # the cut ends dropped, and no piece across two windows
        keep[base] = False
        keep[(base + n_bounds - 2)[n_bounds >= 2]] = False
        keep[base[1:] - 1] = False
        counts = counts[keep]
        return counts[counts > 0]


def _ranges(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(indices, owner): every range(lo[k], hi[k]) end to end, and k for each index."""
    size = hi - lo
    owner = np.repeat(np.arange(len(lo)), size)
    return np.repeat(lo, size) + _place(size), owner


def _place(size: np.ndarray) -> np.ndarray:
    """0, 1, ... size[k] - 1 for each k, end to end."""
    return np.arange(int(size.sum())) - np.repeat(np.cumsum(size) - size, size)

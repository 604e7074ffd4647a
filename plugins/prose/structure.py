"""Structure of prose for guided sampling (the quote/bracket tracker) and neuron features.

Policy on quotes: only double quotes (straight ``"`` toggling, typographic “ ” opening and
closing) are tracked. Single quotes are not: in real English text ``'`` is far more often an
apostrophe or elision ('tis, o'er, the soldiers' horses) than a quotation mark, and no
character-level rule tells them apart, so tracking them would flag real text.

Paragraph breaks (a blank line) end an open double quote without complaint: multi-paragraph
speech leaves the quote open and reopens it at the next paragraph. Brackets do not span
paragraphs in real prose (none does in War and Peace), so a blank line inside an open
bracket is banned instead.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from gen.core.api import BRACKETS, FREE, OPENER_OF, Constraint, Tracker

from .text import (
    MAX_SPEAKER_WORDS,
    PARA_BREAK,
    QUOTE_CLOSE,
    QUOTE_OPEN,
    SPEAKER,
)

_CLOSE_OF = {**BRACKETS, '"': '"', QUOTE_OPEN: QUOTE_CLOSE}
_QUOTES = ('"', QUOTE_OPEN)
_SPECIAL = frozenset(BRACKETS) | frozenset(OPENER_OF) | {'"', QUOTE_OPEN, QUOTE_CLOSE, "\n"}


class ProseTracker(Tracker):
    """State: a stack of open brackets and double quotes, and the current run of newlines.

    Bans a closing bracket that does not match the innermost open bracket (or with nothing
    open, or one opened outside a still-open quote), a typographic closing quote with no such
    quote open, a quote mark that would close a quote while a bracket opened inside it is
    still open, and a paragraph break inside an open bracket. ``closing`` closes everything.
    """

    constraints = ("brackets", "quotes")

    def __init__(self, enabled: Iterable[str] | None = None) -> None:
        super().__init__(enabled)
        self.stack: list[str] = []
        self.newlines = 0
        self._bad = 0
        self._brackets = "brackets" in self.enabled
        self._quotes = "quotes" in self.enabled
        # counts of open items by kind keep the constraint key O(1) whatever the depth
        self._open = {"(": 0, "[": 0, "{": 0, '"': 0, QUOTE_OPEN: 0}
        self._cache: dict[tuple, Constraint] = {}

    def _key(self) -> tuple:
        top = self.stack[-1] if self.stack else ""
        o = self._open
        brackets = o["("] + o["["] + o["{"]
        # a quote opened before the innermost bracket would be closed across that bracket
        quote_below = top in BRACKETS and (o['"'] + o[QUOTE_OPEN]) > 0
        return top, self.newlines == 1 and brackets > 0, quote_below, o[QUOTE_OPEN] > 0

    def constraint(self) -> Constraint:
        key = self._key()
        c = self._cache.get(key)
        if c is None:
            c = self._cache[key] = self._build(*key)
        return c

    def _build(self, top: str, no_break: bool, quote_below: bool, typo_open: bool) -> Constraint:
        ban: set[str] = set()
        if self._brackets:
            ban |= set(OPENER_OF) - ({BRACKETS[top]} if top in BRACKETS else set())
            if no_break:
                ban.add("\n")
        if self._quotes:
            if top != QUOTE_OPEN:
                ban.add(QUOTE_CLOSE)  # nothing to close, or it would cross a bracket
            if quote_below:
                ban.add('"')
        return Constraint(ban=frozenset(ban)) if ban else FREE

    def _push(self, item: str) -> None:
        self.stack.append(item)
        self._open[item] += 1

    def _pop_through(self, item: str) -> None:
        """Close ``item`` and everything opened after it (recovery from a crossing)."""
        while self.stack:
            top = self.stack.pop()
            self._open[top] -= 1
            if top == item:
                return

    def feed(self, ch: str) -> None:
        if ch not in _SPECIAL:  # fast path: only special characters are ever banned or change the stack
            if self.newlines and ch not in " \t":
                self.newlines = 0
            return
        if ch in self.constraint().ban:
            self._bad += 1
        if ch == "\n":
            self.newlines += 1
            if self.newlines == 2 and (self._open['"'] or self._open[QUOTE_OPEN]):
                # paragraph break: open quotes end here (multi-paragraph speech reopens them)
                self.stack = [s for s in self.stack if s not in _QUOTES]
                self._open['"'] = self._open[QUOTE_OPEN] = 0
            return
        if ch not in " \t":
            self.newlines = 0
        if self._quotes and ch == '"':
            if self._open['"']:
                self._pop_through('"')
            else:
                self._push('"')
        elif self._quotes and ch == QUOTE_OPEN:
            self._push(ch)
        elif self._quotes and ch == QUOTE_CLOSE:
            if self._open[QUOTE_OPEN]:
                self._pop_through(QUOTE_OPEN)
        elif self._brackets and ch in BRACKETS:
            self._push(ch)
        elif self._brackets and ch in OPENER_OF and self._open[OPENER_OF[ch]]:
            self._pop_through(OPENER_OF[ch])

    def closing(self) -> str:
        return "".join(_CLOSE_OF[s] for s in reversed(self.stack))

    def violations(self) -> int:
        return self._bad


# ---- per-character features (state after reading each character) -----------------------

PUNCT = frozenset(".,;:!?")


def features(text: str) -> dict[str, np.ndarray]:
    """in_quotes, line_position, in_speaker_name, word_position, after_punctuation.

    Each value describes the state after reading that character, as a cell's activation at
    that character does: an opening quote is inside, a closing one is outside.
    """
    n = len(text)
    in_quotes = np.zeros(n, dtype=np.float32)
    line_pos = np.zeros(n, dtype=np.float32)
    speaker = np.zeros(n, dtype=np.float32)
    word_pos = np.zeros(n, dtype=np.float32)
    after_punct = np.zeros(n, dtype=np.float32)
    breaks = {m.end() - 1 for m in PARA_BREAK.finditer(text)}  # last char of each paragraph gap
    quote, col, wpos, punct = False, 0, 0, False
    for i, ch in enumerate(text):
        if ch == "\n":
            col = 0
        else:
            col += 1
        if i in breaks:
            quote = False
        if ch == '"':
            quote = not quote
        elif ch == QUOTE_OPEN:
            quote = True
        elif ch == QUOTE_CLOSE:
            quote = False
        wpos = wpos + 1 if ch.isalpha() or (ch in "'\u2019" and wpos and i + 1 < n and text[i + 1].isalpha()) else 0
        if ch in PUNCT:
            punct = True
        elif not ch.isspace():
            punct = False
        in_quotes[i], line_pos[i], word_pos[i], after_punct[i] = quote, col, wpos, punct
    # speaker lines: the first line of a block ("NAME:"), at the text start or after a blank line
    starts = [0] + sorted(breaks_plus_one for breaks_plus_one in (b + 1 for b in breaks) if breaks_plus_one < n)
    for s in starts:
        e = text.find("\n", s)
        e = n if e < 0 else e
        line = text[s:e]
        if SPEAKER.fullmatch(line) and len(line.split()) <= MAX_SPEAKER_WORDS:
            speaker[s:e] = 1.0
    return {"in_quotes": in_quotes, "line_position": line_pos, "in_speaker_name": speaker,
            "word_position": word_pos, "after_punctuation": after_punct}

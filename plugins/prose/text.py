"""Text analysis for the prose domain: cleaning sources, words, paragraphs, speakers, sentences.

Pure functions over strings, shared by prepare (Gutenberg boilerplate, line ends), the checks
(word validity, quote and bracket pairing, speaker blocks, sentence lengths, repetition) and
the structure features, so all of them agree on what a word, a paragraph or a speaker line is.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np

# ---- cleaning sources -------------------------------------------------------------------

# Project Gutenberg markers across vintages: "*** START OF THE PROJECT GUTENBERG EBOOK X ***",
# "***START OF THIS PROJECT GUTENBERG EBOOK", "*END*THE SMALL PRINT! ... *END*" (1990s header),
# and the footer's "*** END OF ..." often preceded by "End of the Project Gutenberg EBook of X".
_PG_START = re.compile(r"^\*{3}\s*START OF (?:THE|THIS) PROJECT GUTENBERG E-?(?:BOOK|TEXT)\b.*$"
                       r"|^\*END\*THE SMALL PRINT!.*$", re.IGNORECASE | re.MULTILINE)
_PG_END = re.compile(r"^\*{3}\s*END OF (?:THE|THIS) PROJECT GUTENBERG E-?(?:BOOK|TEXT)\b.*$"
                     r"|^End of (?:the )?Project Gutenberg(?:'s)? .*$", re.IGNORECASE | re.MULTILINE)


def normalise_newlines(text: str) -> str:
    """CRLF and lone CR line ends become LF; a leading byte-order mark is dropped."""
    return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def strip_gutenberg(text: str) -> tuple[str, int, int]:
    """Remove a Project Gutenberg header and footer when their markers are present.

    Returns (body, header chars removed, footer chars removed). Text without markers comes back
    unchanged, so a plain file never loses a character; with markers, the blank lines that
    separated the body from the removed blocks go too.
    """
    head = tail = 0
    start = _PG_START.search(text)
    if start:
        head = start.end() + 1
    end = _PG_END.search(text, head)
    if end:
        tail = len(text) - end.start()
    if not head and not tail:
        return text, 0, 0
    body = text[head:len(text) - tail]
    return body.strip("\n") + "\n", head, tail


# ---- words ------------------------------------------------------------------------------

# a word: letters, with inner apostrophes kept (don't, o'er, banish'd, Denisov's)
WORD = re.compile(r"[^\W\d_]+(?:['\u2019][^\W\d_]+)*")
# fragments around an apostrophe that are not words on their own but are real English
CLITICS = frozenset("s d t ll st re ve em er m n th tis twas twere en o".split())
# archaic forms frequent in older English text that the modern word list lacks
ARCHAIC = frozenset("""hast hath doth dost art canst didst hadst wilt shalt wouldst couldst shouldst
mayst mightst tis twas twere thee thou thy thine ye nay ay ere prithee methinks whence thither hither
wherefore anon betwixt oft perchance mine alack alas forsooth""".split())
WORDLIST_PATHS = ("/usr/share/dict/words", "/usr/share/dict/american-english",
                  "/usr/share/dict/british-english")
_wordlists: dict[str, frozenset[str] | None] = {}


def wordlist_path() -> Path | None:
    """The system word list (Debian's wamerican), or $GEN_WORDLIST; None when absent
    ($GEN_WORDLIST set to an empty string disables it)."""
    env = os.environ.get("GEN_WORDLIST")
    if env is not None:
        return Path(env) if env and Path(env).is_file() else None
    return next((Path(p) for p in WORDLIST_PATHS if Path(p).is_file()), None)


def load_wordlist() -> frozenset[str] | None:
    """Lower-cased words of the system word list, read once per process."""
    path = wordlist_path()
    key = str(path)
    if key not in _wordlists:
        if path is None:
            _wordlists[key] = None
        else:
            words = path.read_text(encoding="utf-8", errors="replace").split("\n")
            _wordlists[key] = frozenset(w.strip().lower() for w in words if w.strip())
    return _wordlists[key]


def words(text: str) -> list[re.Match[str]]:
    """Word tokens with their positions."""
    return list(WORD.finditer(text))


def norm(word: str) -> str:
    return word.lower().replace("\u2019", "'")


def in_wordlist(word: str, wordlist: frozenset[str]) -> bool:
    """A lower-cased word is valid if listed, archaic, or a listed word plus clitics
    ("banish'd", "is't", "o'er": every part listed or a known fragment, one part listed)."""
    if word in wordlist or word in ARCHAIC:
        return True
    if "'" in word:
        parts = [p for p in word.split("'") if p]
        return all(p in wordlist or p in CLITICS or p in ARCHAIC for p in parts) and \
            any(p in wordlist or p in ARCHAIC for p in parts)
    return False


# ---- paragraphs, speakers, sentences ----------------------------------------------------

PARA_BREAK = re.compile(r"\n[ \t]*\n\s*")
# a play's speaker line: "MENENIUS:", "First Citizen:", "KING RICHARD III:", "Senators, &C:"
SPEAKER = re.compile(r"[A-Z][A-Za-z'&,.\- ]{0,40}:")
MAX_SPEAKER_WORDS = 5


def paragraphs(text: str) -> list[tuple[int, str]]:
    """(offset, text) of the blank-line separated blocks of ``text``."""
    out, pos = [], 0
    for m in PARA_BREAK.finditer(text):
        if m.start() > pos:
            out.append((pos, text[pos:m.start()]))
        pos = m.end()
    if pos < len(text):
        out.append((pos, text[pos:]))
    return out


def speaker_of(paragraph: str) -> str | None:
    """The speaker name when a paragraph's first line is a speaker line, else None."""
    first, nl, _ = paragraph.partition("\n")
    if SPEAKER.fullmatch(first) and len(first.split()) <= MAX_SPEAKER_WORDS:
        return first[:-1]
    return None


def is_play(paras: list[tuple[int, str]]) -> bool:
    """Play text: most blocks start with a speaker line."""
    return bool(paras) and sum(speaker_of(p) is not None for _, p in paras) >= 0.5 * len(paras)


_SENT_END = re.compile(r"[.!?]+[\"')\]\u201d\u2019]*(?=\s|$)")


def sentence_lengths(text: str, play: bool = False, drop_ends: bool = True) -> list[int]:
    """Words per sentence. Speaker lines are not part of sentences in play text; the first and
    last pieces are dropped when ``drop_ends`` (a window cuts them)."""
    if play:
        text = "\n".join(line for line in text.split("\n")
                         if not (SPEAKER.fullmatch(line) and len(line.split()) <= MAX_SPEAKER_WORDS))
    pieces = _SENT_END.split(text)
    if drop_ends:
        pieces = pieces[1:-1]
    return [n for n in (len(WORD.findall(p)) for p in pieces) if n > 0]


def ks_distance(sample: Iterable[int], reference_sorted: np.ndarray) -> float | None:
    """Kolmogorov-Smirnov distance between a sample of integers and a sorted reference."""
    s = np.sort(np.fromiter(sample, dtype=np.int64))
    if len(s) == 0 or len(reference_sorted) == 0:
        return None
    grid = np.union1d(s, reference_sorted[[0, -1]])
    grid = np.union1d(grid, np.unique(reference_sorted))
    f_s = np.searchsorted(s, grid, side="right") / len(s)
    f_r = np.searchsorted(reference_sorted, grid, side="right") / len(reference_sorted)
    return float(np.abs(f_s - f_r).max())


# ---- pairing ----------------------------------------------------------------------------

OPENERS = {"(": ")", "[": "]", "{": "}"}
CLOSERS = {v: k for k, v in OPENERS.items()}
QUOTE_OPEN, QUOTE_CLOSE = "\u201c", "\u201d"  # typographic; '"' toggles


def quote_balanced(paragraph: str, next_paragraph: str | None) -> bool:
    """Double quotes pair within a paragraph, except the convention of multi-paragraph speech:
    a paragraph may leave a quote open when the next paragraph opens one again."""
    straight = paragraph.count('"')
    typo = paragraph.count(QUOTE_OPEN) - paragraph.count(QUOTE_CLOSE)
    if straight % 2 == 0 and typo == 0:
        return True
    continued = next_paragraph is not None and next_paragraph.lstrip()[:1] in ('"', QUOTE_OPEN)
    return continued and (straight % 2 == 1 or typo == 1)


def bracket_error(paragraph: str) -> int | None:
    """Offset of the first bracket that does not pair (a stray or mismatched closer, or an
    opener left open at the paragraph end); None when all pair."""
    stack: list[tuple[str, int]] = []
    for i, ch in enumerate(paragraph):
        if ch in OPENERS:
            stack.append((ch, i))
        elif ch in CLOSERS:
            if not stack or stack[-1][0] != CLOSERS[ch]:
                return i
            stack.pop()
    return stack[0][1] if stack else None


def has_quotes(text: str) -> bool:
    return '"' in text or QUOTE_OPEN in text or QUOTE_CLOSE in text


def repeated_ngram_share(tokens: list[str], n: int = 4) -> float | None:
    """Share of word n-grams that already occurred earlier in the same text."""
    total = len(tokens) - n + 1
    if total < 2:
        return None
    seen: set[tuple[str, ...]] = set()
    repeated = 0
    for i in range(total):
        g = tuple(tokens[i:i + n])
        if g in seen:
            repeated += 1
        else:
            seen.add(g)
    return repeated / total

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

from gen.core.api import BRACKETS, OPENER_OF, code_points, from_code_points

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
LETTER = re.compile(r"[^\W\d_]")  # what a WORD ends with
APOSTROPHES = ("'", "\u2019")
_letters: np.ndarray | None = None  # code point -> is a letter in WORD's sense (built on first use)
BMP = 0x10000  # the table covers these code points first; all of Unicode once a text needs it


def _letter_table(size: int = BMP) -> np.ndarray:
    """A bool per code point below ``size`` at least: whether ``[^\\W\\d_]`` (WORD's letter)
    matches it. Built from the regex itself, so the two can never disagree: the Basic
    Multilingual Plane first (a small table), all of Unicode (a large one, each prose eval paid it) only
    once a text holds a character beyond it."""
    global _letters
    if _letters is None or len(_letters) < size:
        n = BMP if size <= BMP else 0x110000
        table = np.zeros(n, dtype=bool)
        table[[m.start() for m in LETTER.finditer("".join(map(chr, range(n))))]] = True
        _letters = table
    return _letters


def _word_mask(text: str) -> tuple[np.ndarray, np.ndarray]:
    """(code points, mask of the characters inside WORD matches): letters, and apostrophes with
    a letter on each side. Per character in numpy, not per word in Python."""
    cps = code_points(text)
    letter = _letter_table(int(cps.max()) + 1 if len(cps) else 0)[cps]
    inner = np.zeros_like(letter)
    if len(cps) > 2:
        apos = (cps[1:-1] == ord(APOSTROPHES[0])) | (cps[1:-1] == ord(APOSTROPHES[1]))
        inner[1:-1] = apos & letter[:-2] & letter[2:]
    return cps, letter | inner


def words_at(text: str) -> tuple[list[str], np.ndarray]:
    """``WORD.findall(text)`` (the same list, several times faster) and each word's offset:
    every character outside a word becomes a space (numpy), then ``str.split``. Measured in
    evals/BENCHMARKS.md ("Prose and names checks")."""
    if not text:
        return [], np.zeros(0, dtype=np.int64)
    cps, inside = _word_mask(text)
    starts = _starts(inside)
    spaced = np.where(inside, cps, np.uint32(32))
    return from_code_points(spaced).split(), starts


def distinct_words(text: str, block: int = 1 << 22) -> set[str]:
    """The set of ``WORD.findall(text)``, read in blocks cut at whitespace (no word spans one),
    so a 64 MB training text costs a few blocks' arrays, not 64 MB of them."""
    out: set[str] = set()
    at = 0
    while at < len(text):
        end = len(text) if len(text) - at <= block else max(text.rfind(" ", at, at + block),
                                                             text.rfind("\n", at, at + block))
        end = at + block if end <= at else end  # a block without whitespace: cut anyway
        out.update(words_at(text[at:end])[0])
        at = end
    return out


def _starts(inside: np.ndarray) -> np.ndarray:
    return np.flatnonzero(inside & ~np.concatenate([[False], inside[:-1]]))


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
    ($GEN_WORDLIST set to an empty string disables it). Looked for once per value of
    $GEN_WORDLIST and process (three stat calls per sample cost more than its word checks)."""
    env = os.environ.get("GEN_WORDLIST")
    if env not in _paths:
        if env is not None:
            _paths[env] = Path(env) if env and Path(env).is_file() else None
        else:
            _paths[env] = next((Path(p) for p in WORDLIST_PATHS if Path(p).is_file()), None)
    return _paths[env]


_paths: dict[str | None, Path | None] = {}  # $GEN_WORDLIST (None: unset) -> the word list found


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


_verdicts: dict[frozenset[str], tuple[set[str], set[str]]] = {}  # word list -> (words in it, words not)
MAX_VERDICTS = 1_000_000  # remembered words per list, at most (then forgotten and learned again)


def dictionary_words(words: Iterable[str]) -> set[str] | None:
    """Those of ``words`` that :func:`in_wordlist` accepts against the system word list (None
    without one), each word decided once per process (samples share most of their vocabulary):
    set operations in C over the remembered verdicts, Python only for words never seen."""
    wordlist = load_wordlist()
    if wordlist is None:
        return None
    yes, no = _verdicts.setdefault(wordlist, (set(), set()))
    if len(yes) + len(no) > MAX_VERDICTS:
        yes.clear()
        no.clear()
    seen = words.keys() if isinstance(words, dict) else set(words)  # a Counter's keys: no copy
    for w in seen - yes - no:
        (yes if in_wordlist(w, wordlist) else no).add(w)
    return yes.intersection(seen)


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


SPEAKER_LINE = re.compile(r"^[A-Z][A-Za-z'&,.\- ]{0,40}:$", re.MULTILINE)  # SPEAKER, as a whole line


def _blank(m: re.Match[str]) -> str:
    """A speaker line as spaces of its own length: offsets stay, only whitespace changes."""
    return " " * len(m.group()) if len(m.group().split()) <= MAX_SPEAKER_WORDS else m.group()


def blank_speakers(text: str) -> str:
    """Play text with its speaker lines (``NAME:``, at most MAX_SPEAKER_WORDS words) blanked."""
    return SPEAKER_LINE.sub(_blank, text)


def ends_and_starts(body: str, at: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Offsets (plus ``at``) of the sentence ends and the word starts of ``body``."""
    ends = np.array([m.start() for m in _SENT_END.finditer(body)], dtype=np.int64)
    starts = _starts(_word_mask(body)[1]) if body else np.zeros(0, dtype=np.int64)
    return ends + at, starts + at


def sentence_lengths(text: str, play: bool = False, drop_ends: bool = True) -> list[int]:
    """Words per sentence. Speaker lines are not part of sentences in play text; the first and
    last pieces are dropped when ``drop_ends`` (a window cuts them).

    Word starts are found per character in numpy and counted between the sentence ends by binary
    search: the same figures as splitting at the ends and counting each piece's words (no word
    touches an end: an end starts with . ! or ?, none of them a letter), without a Python step
    per word."""
    body = blank_speakers(text) if play else text
    ends, starts = ends_and_starts(body)
    counts = np.diff(np.searchsorted(starts, np.concatenate([[0], ends, [len(body)]])))  # words per piece
    if drop_ends:
        counts = counts[1:-1]
    return counts[counts > 0].tolist()


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


BRACKET = re.compile(r"[()\[\]{}]")


def bracket_error(paragraph: str) -> int | None:
    """Offset of the first bracket that does not pair (a stray or mismatched closer, or an
    opener left open at the paragraph end); None when all pair. Only the brackets are visited
    (a regex finds them), not every character."""
    stack: list[tuple[str, int]] = []
    for m in BRACKET.finditer(paragraph):
        ch, i = m.group(), m.start()
        if ch in BRACKETS:
            stack.append((ch, i))
        elif not stack or stack[-1][0] != OPENER_OF[ch]:
            return i
        else:
            stack.pop()
    return stack[0][1] if stack else None


def has_quotes(text: str) -> bool:
    return '"' in text or QUOTE_OPEN in text or QUOTE_CLOSE in text


def repeated_ngram_share(tokens: list[str], n: int = 4) -> float | None:
    """Share of word n-grams that already occurred earlier in the same text: every occurrence
    after a gram's first, i.e. all grams less the distinct ones (a set of tuples built in C)."""
    total = len(tokens) - n + 1
    if total < 2:
        return None
    return (total - len(set(zip(*(tokens[i:] for i in range(n)), strict=False)))) / total

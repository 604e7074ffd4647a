"""A fast, regex-driven C lexer for the balance checks of the C domain (and corruption sites).

It knows what a compiler's first phases know and nothing more: comments, string and character
literals, line continuations, preprocessor lines, and the three bracket pairs. That is enough to
answer "are the braces balanced, are the literals terminated" without parsing, at regex speed.

Preprocessor rules (chosen so real kernel code is never flagged; measured on all 669 files of
the shared subset):

* brackets inside a preprocessor line are ignored: ``#define BEGIN {`` is legal and common;
* an ``#if``/``#ifdef``/``#ifndef`` group is treated like the compiler treats one configuration:
  every ``#elif``/``#else`` branch restarts from the bracket stack at the ``#if`` (so the kernel's
  ``#ifdef X`` ``int f(int a) {`` ``#else`` ``int f(void) {`` ``#endif`` idiom is balanced), and
  after ``#endif`` the state is the one at the end of the *first* branch;
* an unterminated character literal inside a preprocessor line (``#error don't``) is not a C
  literal error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

PAIRS = {"(": ")", "[": "]", "{": "}"}
OPENERS = {v: k for k, v in PAIRS.items()}

_STR = r'"(?:[^"\\\n]|\\(?:(?s:.)|\Z))*(?:"|(?=\n)|\Z)'
_CHR = r"'(?:[^'\\\n]|\\(?:(?s:.)|\Z))*(?:'|(?=\n)|\Z)"
_BCOM = r"/\*(?s:.*?)(?:\*/|\Z)"
_LCOM = r"//(?:[^\n\\]|\\(?:(?s:.)|\Z))*"
# the lookahead lets the regex engine skip, in C, the many positions where no token can start
_TOKEN = re.compile(rf"""(?=[/"'\[\](){{}}\\ \t\#])(?:
   (?P<lcom>{_LCOM})                                  # line comment; a backslash-newline continues it
  |(?P<bcom>{_BCOM})                                  # block comment, possibly unterminated
  |(?P<str>{_STR})                                    # string literal; a newline ends a bad one
  |(?P<chr>{_CHR})                                    # character literal
  |(?P<pp>^[ \t]*\#[ \t]*(?P<dir>[a-z]*)            # a whole preprocessor directive, continuations,
     (?:[^\n\\/"']+|\\(?:(?s:.)|\Z)|{_BCOM}|{_LCOM}|{_STR}|{_CHR}|/)*)  # comments and all: its brackets are skipped
  |(?P<br>[][(){{}}]))
""", re.X | re.M)

_COND_OPEN = {"if", "ifdef", "ifndef"}
_COND_ALT = {"elif", "else", "elifdef", "elifndef"}


@dataclass
class Balance:
    """Bracket and literal findings of one text. Offsets are character offsets into it."""

    mismatches: list[tuple[int, str]] = field(default_factory=list)  # (offset, message)
    unclosed: list[tuple[int, str]] = field(default_factory=list)  # openers left open at the end
    unterminated: list[tuple[int, str]] = field(default_factory=list)  # strings, chars, comments
    closers: dict[str, list[int]] = field(default_factory=dict)  # offsets of code closers, by kind
    quotes: list[int] = field(default_factory=list)  # offsets of string literals' closing quotes
    closing: str = ""  # text that closes what is open at the end (literal, comment, #if, brackets)


def balance(text: str, want_closers: bool = False) -> Balance:
    """Scan ``text`` once; see the module docstring for the preprocessor rules. With
    ``want_closers`` also list where closers and string quotes are (corruption sites)."""
    out = Balance()
    if want_closers:
        out.closers = {")": [], "]": [], "}": []}
    stack: list[tuple[str, int]] = []
    conds: list[list] = []  # per open #if: [stack at #if, stack at end of first branch or None]
    m = None
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup
        if kind == "br":
            ch = m.group()
            if want_closers and ch in out.closers:
                out.closers[ch].append(m.start())
            if ch in PAIRS:
                stack.append((ch, m.start()))
            elif not stack:
                out.mismatches.append((m.start(), f"'{ch}' with nothing open"))
            elif stack[-1][0] != OPENERS[ch]:
                opener, at = stack[-1]
                out.mismatches.append((m.start(), f"'{ch}' closes '{opener}' opened at {at}"))
                # recover like a compiler would guess: drop the opener if the closer matches below it
                if any(o == OPENERS[ch] for o, _ in stack):
                    while stack and stack[-1][0] != OPENERS[ch]:
                        stack.pop()
                    stack.pop()
            else:
                stack.pop()
        elif kind == "pp":
            d = m.group("dir")
            if d in _COND_OPEN:
                conds.append([list(stack), None])
            elif d in _COND_ALT and conds:
                if conds[-1][1] is None:
                    conds[-1][1] = list(stack)
                stack = list(conds[-1][0])
            elif d == "endif" and conds:
                at_if, first = conds.pop()
                if first is not None:
                    stack = first
        elif kind == "str":
            tok = m.group()
            if len(tok) < 2 or not tok.endswith('"') or _escaped_end(tok):
                out.unterminated.append((m.start(), "string literal not closed on its line"))
            elif want_closers:
                out.quotes.append(m.end() - 1)
        elif kind == "chr":
            tok = m.group()
            if (len(tok) < 2 or not tok.endswith("'") or _escaped_end(tok)):
                out.unterminated.append((m.start(), "character literal not closed on its line"))
        elif kind == "bcom":
            tok = m.group()
            if len(tok) < 4 or not tok.endswith("*/"):
                out.unterminated.append((m.start(), "comment /* never closed"))
    out.unclosed = [(at, f"'{ch}' never closed") for ch, at in stack]
    out.closing = _closing(text, m, stack, conds)
    return out


def _closing(text: str, last: re.Match | None, stack: list[tuple[str, int]], conds: list[list]) -> str:
    """What closes the open structure, like the tracker's closing(): a literal or comment the
    text ends in, the directive line, open #if groups, then brackets innermost first."""
    tail = ""
    if last is not None and last.end() == len(text):
        kind, tok = last.lastgroup, last.group()
        if kind == "bcom" and not (len(tok) >= 4 and tok.endswith("*/")):
            tail = "/" if len(tok) >= 3 and tok.endswith("*") else "*/"
        elif kind in ("str", "chr"):
            quote = '"' if kind == "str" else "'"
            if len(tok) < 2 or not tok.endswith(quote) or _escaped_end(tok):
                odd = (len(tok) - len(tok.rstrip("\\"))) % 2 == 1
                tail = ("\\" if odd else "") + quote
        elif kind in ("lcom", "pp"):
            tail = "\n\n" if tok.endswith("\\") else "\n"
    if conds:
        tail += "" if tail.endswith("\n") or not text or text.endswith("\n") else "\n"
        for _at_if, first in reversed(conds):
            tail += "#endif\n"
            if first is not None:
                stack = first
    for ch, _at in reversed(stack):
        tail += "\n}" if ch == "{" else PAIRS[ch]
    return tail


def _escaped_end(tok: str) -> bool:
    """True when the closing quote of a literal token is really an escaped quote (``"ab\\"``)."""
    n = 0
    i = len(tok) - 2
    while i >= 1 and tok[i] == "\\":
        n += 1
        i -= 1
    return n % 2 == 1


def code_mask_spans(text: str) -> list[tuple[int, int]]:
    """Spans of comments and literals (for callers that edit code but not prose)."""
    return [m.span() for m in _TOKEN.finditer(text) if m.lastgroup in ("lcom", "bcom", "str", "chr")]

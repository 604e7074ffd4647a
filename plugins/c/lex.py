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
* every configuration must balance: a branch that ends with other brackets open than the first
  branch did (a brace dropped inside ``#else``) is a mismatch, reported at its ``#else``/``#endif``;
* an ``#if 0`` branch is never compiled: its brackets are ignored (its state is dropped);
* an unterminated character literal inside a preprocessor line (``#error don't``) is not a C
  literal error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from gen.core.api import BRACKETS, OPENER_OF

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
_NEVER = re.compile(r"^[ \t]*#[ \t]*if[ \t]+(?:0+|false)\b[ \t]*(?:/[/*]|$)")
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
    depth: int = 0  # deepest bracket nesting seen
    # how many of each finding there were; the lists above keep the first LIST_LIMIT only, so a
    # text of 10 million stray brackets costs counts, not 10 million messages
    n_mismatches: int = 0
    n_unclosed: int = 0
    n_unterminated: int = 0


LIST_LIMIT = 1000  # findings of one kind kept with their offsets and messages (all are counted)


def _add(found: list, item: tuple[int, str]) -> None:
    if len(found) < LIST_LIMIT:
        found.append(item)


STACK_LIMIT = 200_000  # open brackets tracked with kind and offset; deeper ones are only counted
_KIND = {"(": 4, "[": 5, "{": 6}  # the field of a stack node that counts open brackets of this kind


def _push(top: tuple | None, ch: str, at: int) -> tuple:
    """A persistent stack node: (kind, offset, parent, depth, open '(', open '[', open '{').
    Sharing parents makes an #if's snapshot O(1), and the counts make "is a '(' open anywhere
    below?" O(1): a text of unmatched closers over deep nesting stays linear."""
    if top is None:
        top = (None, -1, None, 0, 0, 0, 0)
    counts = [top[4], top[5], top[6]]
    counts[_KIND[ch] - 4] += 1
    return (ch, at, top if top[0] is not None else None, top[3] + 1, *counts)


def _as_list(top: tuple | None) -> list[tuple[str, int]]:
    """The open brackets, outermost first."""
    out = []
    while top is not None:
        out.append((top[0], top[1]))
        top = top[2]
    return out[::-1]


def balance(text: str, want_closers: bool = False) -> Balance:
    """Scan ``text`` once (linear in its length, memory bounded by STACK_LIMIT and LIST_LIMIT);
    see the module docstring for the preprocessor rules. With ``want_closers`` also list where
    closers and string quotes are (corruption sites)."""
    out = Balance()
    if want_closers:
        out.closers = {")": [], "]": [], "}": []}
    top: tuple | None = None  # the innermost open bracket (see _push)
    extra = 0  # open brackets deeper than STACK_LIMIT: counted only
    # per open #if: [(top, extra) at #if, (top, extra) at the end of its first branch or None,
    # the first branch is `#if 0` (never compiled)]
    conds: list[list] = []
    m = None
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup
        if kind == "br":
            ch = m.group()
            if want_closers and ch in out.closers:
                out.closers[ch].append(m.start())
            if ch in BRACKETS:
                if top is not None and top[3] >= STACK_LIMIT:
                    extra += 1
                else:
                    top = _push(top, ch, m.start())
                out.depth = max(out.depth, top[3] + extra)
                continue
            want = OPENER_OF[ch]
            if extra:
                extra -= 1  # closes one of the untracked, deepest brackets
            elif top is None:
                out.n_mismatches += 1
                _add(out.mismatches, (m.start(), f"'{ch}' with nothing open"))
            elif top[0] != want:
                out.n_mismatches += 1
                _add(out.mismatches, (m.start(), f"'{ch}' closes '{top[0]}' opened at {top[1]}"))
                # recover like a compiler would guess: drop the opener if the closer matches below it
                if top[_KIND[want]]:
                    while top[0] != want:
                        top = top[2]
                    top = top[2]
            else:
                top = top[2]
        elif kind == "pp":
            top, extra = _directive(m, conds, top, extra, out)
        elif kind == "str":
            tok = m.group()
            if len(tok) < 2 or not tok.endswith('"') or _escaped_end(tok):
                out.n_unterminated += 1
                _add(out.unterminated, (m.start(), "string literal not closed on its line"))
            elif want_closers:
                out.quotes.append(m.end() - 1)
        elif kind == "chr":
            tok = m.group()
            if (len(tok) < 2 or not tok.endswith("'") or _escaped_end(tok)):
                out.n_unterminated += 1
                _add(out.unterminated, (m.start(), "character literal not closed on its line"))
        elif kind == "bcom":
            tok = m.group()
            if len(tok) < 4 or not tok.endswith("*/"):
                out.n_unterminated += 1
                _add(out.unterminated, (m.start(), "comment /* never closed"))
    stack = _as_list(top)
    out.n_unclosed = len(stack) + extra
    out.unclosed = [(at, f"'{ch}' never closed") for ch, at in stack[:LIST_LIMIT]]
    out.closing = _closing(text, m, [ch for ch, _ in stack], conds)
    return out


def _directive(m: re.Match, conds: list[list], top: tuple | None, extra: int, out: Balance) -> tuple:
    """The bracket state after a preprocessor line (the module docstring's #if rules): an
    ``#if`` remembers the state, each ``#elif``/``#else`` restarts from it, ``#endif`` goes
    on from the first compiled branch's end; a branch that ends differently is a mismatch."""
    d = m.group("dir")
    if d in _COND_OPEN:
        conds.append([(top, extra), None, d == "if" and _NEVER.match(m.group()) is not None])
    elif (d in _COND_ALT or d == "endif") and conds:
        cond = conds.pop() if d == "endif" else conds[-1]
        if cond[2]:  # the `#if 0` branch ends: what it did never happened
            cond[2] = False
        elif cond[1] is None:
            cond[1] = (top, extra)
        elif not _same((top, extra), cond[1]):
            out.n_mismatches += 1
            _add(out.mismatches, (m.start(), f"'#{d}' ends a branch that leaves {_describe(top, extra)} "
                                             f"open where the first branch left {_describe(*cond[1])}"))
        return cond[0] if d != "endif" else (cond[1] or cond[0])
    return top, extra


def _same(a: tuple, b: tuple) -> bool:
    """Two (top, extra) bracket states with the same open brackets (persistent stacks: walk up
    until they share a node; each walk is bounded by what one branch pushed)."""
    (x, ex), (y, ey) = a, b
    if ex != ey:
        return False
    while x is not y:
        if x is None or y is None or x[0] != y[0] or x[3] != y[3]:
            return False
        x, y = x[2], y[2]
    return True


def _describe(top: tuple | None, extra: int) -> str:
    n = (top[3] if top is not None else 0) + extra
    return "nothing" if n == 0 else f"{n} bracket(s) ('{top[0]}' innermost)"


def _closers(kinds: list[str]) -> str:
    return "".join("\n}" if ch == "{" else BRACKETS[ch] for ch in reversed(kinds))


def _closing(text: str, last: re.Match | None, kinds: list[str], conds: list[list]) -> str:
    """What closes the open structure, like the tracker's closing(): a literal or comment the
    text ends in, the directive line, an ``#endif`` per open group (a text cut inside an
    ``#else`` branch first closes what that branch opened beyond the first branch, so every
    configuration balances), then the brackets still open, innermost first."""
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
    for _at_if, first, never in reversed(conds):
        if never:  # still in `#if 0`: after #endif the state is the one at the #if
            kinds = [ch for ch, _ in _as_list(_at_if[0])]
        elif first is not None:
            want = [ch for ch, _ in _as_list(first[0])]
            if len(kinds) > len(want) and kinds[:len(want)] == want:
                tail += _closers(kinds[len(want):]) + "\n"
            kinds = want
        tail += "#endif\n"
    return tail + _closers(kinds)


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

"""Character-at-a-time C state machine: the structure tracker for guided sampling and the
per-character features for neuron search.

The state is what the first phases of a C compiler know: inside code, a ``//`` or ``/* */``
comment, a string or a character literal; a pending backslash; whether the line is a
preprocessor directive; and the stack of open brackets. Preprocessor rules match
:mod:`.lex` (the regex lexer of the checks), so the tracker and the checks agree:
brackets inside directives are ignored, and each ``#elif``/``#else`` branch restarts from the
bracket stack at its ``#if``, the state after ``#endif`` being the end of the first branch.
Real kernel code therefore never counts a violation (tested on the shared subset).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from gen.core.api import Constraint, Tracker

FILE_SEP = "\u241c"  # the corpus file separator's marker character (see plugins/c/__init__.py)

CODE, LCOM, BCOM, STR, CHR = range(5)
_CLOSE_OF = {"(": ")", "I": ")", "[": "]", "{": "}"}  # "I": the parenthesis of an if condition
_COND_OPEN = {"if", "ifdef", "ifndef"}
_COND_ALT = {"elif", "else", "elifdef", "elifndef"}
_IDENT = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_SPACE = frozenset(" \t\r\f\v")


def _ban(chars: str) -> Constraint:
    return Constraint(ban=frozenset(chars))


# every constraint the tracker can return, built once: the sampler caches masks by equality
_NOTHING_OPEN = _ban(")]}")
_IN_PARENS = _ban("]}" + FILE_SEP)
_TOP_BAN = {"(": _IN_PARENS, "I": _IN_PARENS, "[": _ban(")}" + FILE_SEP), "{": _ban(")]" + FILE_SEP)}
_IN_LITERAL = _ban("\n" + FILE_SEP)
_NO_SEP = _ban(FILE_SEP)
_FREE = Constraint()


class CScanner:
    """The state machine. ``feed`` is O(1) except at a directive or a file separator."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.mode = CODE
        self.esc = False  # a backslash is pending (escape in a literal, continuation elsewhere)
        self.slash = False  # code: the previous character was '/'
        self.star = False  # block comment: the previous character was '*'
        self.line_start = True  # only blanks since the newline (a '#' here starts a directive)
        self.in_pp = False
        self.pp_dir: str | None = None  # directive name being read; None once complete
        self.stack: list[str] = []
        self.conds: list[list] = []  # per open #if: [stack at #if, stack at end of first branch]
        self.word = ""  # identifier being read
        self.last_word = ""  # previous identifier, if nothing but blanks followed it
        self.col = 0
        self.braces = self.parens = self.ifs = 0
        self.violations = 0

    # ---- transitions -----------------------------------------------------------------------
    def feed(self, ch: str) -> None:
        if ch == FILE_SEP:  # a new file starts: nothing carries over
            v = self.violations
            self.reset()
            self.violations = v
            return
        self.col = 0 if ch == "\n" else self.col + 1
        mode = self.mode
        if mode == CODE:
            self._code(ch)
        elif mode == STR or mode == CHR:
            if self.esc:
                self.esc = False
            elif ch == "\\":
                self.esc = True
            elif ch == ('"' if mode == STR else "'"):
                self.mode = CODE
            elif ch == "\n":
                if not self.in_pp:
                    self.violations += 1
                self.mode = CODE
                self._newline()
        elif mode == LCOM:
            if self.esc:
                self.esc = False
            elif ch == "\\":
                self.esc = True
            elif ch == "\n":
                self.mode = CODE
                self._newline()
        else:  # BCOM
            if self.star and ch == "/":
                self.mode = CODE
                self.star = False
            else:
                self.star = ch == "*"

    def _newline(self) -> None:
        if self.pp_dir is not None:
            self._directive()
        self.in_pp = False
        self.line_start = True
        self.last_word = self.word or self.last_word
        self.word = ""

    def _code(self, ch: str) -> None:
        if self.slash:
            self.slash = False
            if ch == "/" or ch == "*":
                self.mode = LCOM if ch == "/" else BCOM
                self.star = False
                self._end_word()
                return
        if self.esc:  # backslash-newline continues a line (directives); anything else is stray
            self.esc = False
            if ch == "\n":
                return
        if ch in _IDENT:
            if self.pp_dir is not None:
                self.pp_dir += ch
            else:
                self.word += ch
            self.line_start = False
            return
        if self.pp_dir is not None and (self.pp_dir or ch not in _SPACE):
            self._directive()
        if self.word:
            self.last_word, self.word = self.word, ""
        if ch == "\n":
            self._newline()
            return
        if ch in _SPACE:
            return
        if ch == "#" and self.line_start:
            self.in_pp, self.pp_dir = True, ""
            self.line_start = False
            return
        self.line_start = False
        prev, self.last_word = self.last_word, ""
        if ch == '"':
            self.mode = STR
        elif ch == "'":
            self.mode = CHR
        elif ch == "/":
            self.slash = True
        elif ch == "\\":
            self.esc = True
        elif self.in_pp:
            return
        elif ch in "([{":
            op = "I" if ch == "(" and prev == "if" else ch
            self.stack.append(op)
            self._count(op, 1)
        elif ch in ")]}":
            stack = self.stack
            if not stack or _CLOSE_OF[stack[-1]] != ch:
                self.violations += 1
                want = {")": "(I", "]": "[", "}": "{"}[ch]
                if any(o in want for o in stack):  # resynchronise like the checks' lexer
                    while stack[-1] not in want:
                        self._count(stack.pop(), -1)
                    self._count(stack.pop(), -1)
            else:
                self._count(stack.pop(), -1)

    def _end_word(self) -> None:
        if self.word:
            self.last_word, self.word = self.word, ""

    def _count(self, op: str, d: int) -> None:
        if op == "{":
            self.braces += d
        elif op == "(":
            self.parens += d
        elif op == "I":
            self.parens += d
            self.ifs += d

    def _directive(self) -> None:
        d, self.pp_dir = self.pp_dir, None
        if d in _COND_OPEN:
            self.conds.append([list(self.stack), None])
        elif d in _COND_ALT and self.conds:
            if self.conds[-1][1] is None:
                self.conds[-1][1] = list(self.stack)
            self._restore(self.conds[-1][0])
        elif d == "endif" and self.conds:
            _at_if, first = self.conds.pop()
            if first is not None:
                self._restore(first)

    def _restore(self, stack: list[str]) -> None:
        self.stack = list(stack)
        self.braces = stack.count("{")
        self.ifs = stack.count("I")
        self.parens = stack.count("(") + self.ifs

    # ---- what may come next, and what closes -------------------------------------------------
    def constraint(self) -> Constraint:
        mode = self.mode
        if mode == CODE and not self.in_pp:
            if self.esc:
                return _NO_SEP
            return _TOP_BAN[self.stack[-1]] if self.stack else _NOTHING_OPEN
        if (mode == STR or mode == CHR) and not self.in_pp and not self.esc:
            return _IN_LITERAL
        return _NO_SEP if (self.stack or mode != CODE or self.in_pp) else _FREE

    def closing(self) -> str:
        out = []
        if self.mode in (STR, CHR):
            quote = '"' if self.mode == STR else "'"
            out.append(("\\" if self.esc else "") + quote)
        elif self.mode == LCOM:
            out.append("\n\n" if self.esc else "\n")  # a pending backslash splices the first
        elif self.mode == BCOM:
            out.append("/" if self.star else "*/")
        elif self.esc:
            out.append("\n")  # after a backslash a newline is a continuation; the next one ends
        sim = CScanner()  # replay on a copy to close what the directives leave open
        sim.__dict__.update({k: (list(v) if isinstance(v, list) else v) for k, v in self.__dict__.items()})
        sim.conds = [[list(a), None if b is None else list(b)] for a, b in self.conds]
        sim.feed_text("".join(out))
        if sim.in_pp or sim.conds:
            out.append("\n")
            sim.feed("\n")
        for _ in range(len(sim.conds)):
            first = sim.conds[-1][1]  # cut inside an #else: first close what it opened beyond the #if branch
            if first is not None and len(sim.stack) > len(first) and sim.stack[:len(first)] == first:
                extra = "".join("\n}" if op == "{" else _CLOSE_OF[op] for op in reversed(sim.stack[len(first):]))
                out.append(extra + "\n")
                sim.feed_text(extra + "\n")
            out.append("#endif\n")
            sim.feed_text("#endif\n")
        for op in reversed(sim.stack):
            out.append("\n}" if op == "{" else _CLOSE_OF[op])
        return "".join(out)

    def feed_text(self, text: str) -> None:
        for ch in text:
            self.feed(ch)


class CTracker(Tracker):
    """Guided-sampling tracker: bans closers of the wrong kind or with nothing open, a newline
    inside a string or character literal, and the file separator while anything is open."""

    constraints = ("brackets", "literals", "files")

    def __init__(self, enabled: Iterable[str] | None = None) -> None:
        super().__init__(enabled)
        self.scan = CScanner()
        self._all = self.enabled >= set(self.constraints)

    def feed(self, ch: str) -> None:
        self.scan.feed(ch)

    def feed_text(self, text: str) -> None:
        self.scan.feed_text(text)

    def constraint(self) -> Constraint:
        c = self.scan.constraint()
        if self._all or c is _FREE:
            return c
        return _filtered(c, frozenset(self.enabled))

    def closing(self) -> str:
        return self.scan.closing()

    def violations(self) -> int:
        return self.scan.violations


_FAMILY = {"brackets": frozenset(")]}"), "literals": frozenset("\n"), "files": frozenset(FILE_SEP)}
_FILTERED: dict[tuple[Constraint, frozenset], Constraint] = {}


def _filtered(c: Constraint, enabled: frozenset) -> Constraint:
    """The part of ``c`` that belongs to the enabled families (cached: identical objects)."""
    key = (c, enabled)
    out = _FILTERED.get(key)
    if out is None:
        keep = frozenset().union(*(_FAMILY[f] for f in enabled if f in _FAMILY))
        out = _FILTERED[key] = Constraint(ban=c.ban & keep)
    return out


FEATURES = ("in_string", "in_comment", "brace_depth", "paren_depth", "in_if_condition",
            "line_position", "in_preprocessor")


def features(text: str) -> dict[str, np.ndarray]:
    """Per-character structural features; a literal's quotes and a comment's delimiters count
    as inside it, so a cell that fires on the whole construct correlates fully."""
    n = len(text)
    out = {name: np.zeros(n, dtype=np.float32) for name in FEATURES}
    s_str, s_com, s_brace, s_paren, s_if, s_col, s_pp = (out[k] for k in FEATURES)
    sc = CScanner()
    for i, ch in enumerate(text):
        before_mode, before_pp, before_if = sc.mode, sc.in_pp, sc.ifs
        was_slash = sc.slash
        sc.feed(ch)
        mode = sc.mode
        if before_mode in (STR, CHR) or mode in (STR, CHR):
            s_str[i] = 1.0
        if before_mode in (LCOM, BCOM) or mode in (LCOM, BCOM):
            s_com[i] = 1.0
            if was_slash and before_mode == CODE and i:
                s_com[i - 1] = 1.0  # the '/' that opened the comment
        s_brace[i] = sc.braces
        s_paren[i] = sc.parens
        s_if[i] = 1.0 if (before_if or sc.ifs) else 0.0
        s_col[i] = sc.col
        s_pp[i] = 1.0 if (before_pp or sc.in_pp) else 0.0
    return out

"""Incremental LaTeX structure, one character at a time: guided sampling and neuron features.

:class:`LatexTracker` keeps the open environments, braces, math and ``\\left`` frames on one
stack (the same semantics as :mod:`.scan`, which judges finished text) and says which next
characters would break them:

* ``env``: after ``\\end{`` only the name of the innermost open environment may follow (then
  ``}``); ``\\end`` may not close an environment while a brace or math opened inside it is open;
* ``brace``: ``}`` only when the innermost open frame is a brace (never with nothing open);
* ``math``: ``$`` only where it opens or closes math correctly, the second ``$`` of a closing
  ``$$``, no blank line inside math, no ``\\[``/``\\(`` inside math, ``\\]``/``\\)`` only closing
  their opener, and inside math ``\\begin{`` only names of environments valid in math;
* ``leftright``: ``\\right`` only with a ``\\left`` open, ``\\left`` only in math.

Comments, ``\\verb`` and verbatim-like environments are skipped. A character that a constraint
bans counts as a violation when it is fed anyway (priming text, unguided samples), so
``violations()`` and ``constraint()`` always agree. ``closing()`` closes what is open,
innermost first, by feeding a copy of the tracker.
"""

from __future__ import annotations

from collections.abc import Iterable

from gen.core.api import FREE, Constraint, Tracker

from . import states as S
from .closing import closing_text
from .constraints import TrackerConstraints
from .scan import MATH_ENVS, PARAGRAPH_ENVS, VERBATIM_ENVS


class LatexTracker(TrackerConstraints, Tracker):
    constraints = ("env", "brace", "math", "leftright")

    def __init__(self, enabled: Iterable[str] | None = None) -> None:
        super().__init__(enabled)
        self.stack: list[tuple[str, str | None, bool]] = []  # (kind, name, math before)
        self.math = False
        self.mode = S.NORMAL
        self.cmd = ""  # command name read so far (mode S.CMD)
        self.name = ""  # environment name read so far (mode S.ENVNAME)
        self.begin = True  # S.ENVNAME/S.AWAIT_BRACE: \begin (True) or \end (False)
        self.dollar = False  # a $ is waiting: the next character tells $ from $$
        self.nl = False  # the current line is blank so far (a newline was the last non-space)
        self.delim = ""  # \verb delimiter
        self.verbatim_end = ""  # the \end{...} that ends the verbatim body
        self.tail = ""  # last characters of a verbatim body
        self._violations = 0
        self._cache: dict[tuple, Constraint] = {}

    def violations(self) -> int:
        return self._violations

    # ---- feeding -------------------------------------------------------------------------
    def feed(self, ch: str) -> None:
        mode = self.mode
        # check only where a ban is possible (the same cases constraint() tests), for speed
        if mode == S.NORMAL and not self.dollar:
            check = (ch == "}" and not (self.stack and self.stack[-1][0] in S.BRACES)) or \
                    ((ch == "$" or ch == "\n") and self.math)
        elif mode == S.CMD:
            check = ch not in S.LETTERS
        else:
            check = mode != S.COMMENT and mode != S.VERBATIM and mode != S.VERB
        if check:
            c = self.constraint()
            if c is not FREE and ((c.allow is not None and ch not in c.allow) or ch in c.ban):
                self._violations += 1
        self._feed(ch)

    def feed_text(self, text: str) -> None:
        """Same as feeding every character, faster: plain text, inline formulas without
        structure, command names, comments and verbatim bodies are skipped at C speed (no
        constraint bans a character there); every other character goes through :meth:`feed`,
        so the grammar's rules are written once, in ``_feed``."""
        i, n = 0, len(text)
        plain, letters = S.PLAIN_RUN.match, S.LETTER_RUN.match
        while i < n:
            mode = self.mode
            if not self.dollar:
                if mode == S.NORMAL:
                    m = plain(text, i)
                    if m is not None:
                        if m.group().strip(" \t"):
                            self.nl = False
                        i = m.end()
                        if i >= n:
                            break
                    if text[i] == "$" and not self.math and (m := S.FORMULA(text, i)) is not None and m.end() < n:
                        i = m.end()  # a whole $...$ without structure inside: nothing to check or keep
                        self.nl = False
                        continue
                elif mode == S.CMD:
                    m = letters(text, i)
                    if m is not None:
                        self.cmd += m.group()
                        self.nl = False
                        i = m.end()
                        if i < n and self.cmd not in S.CMD_SPECIAL:
                            self.mode = S.NORMAL  # an ordinary command ends: its end reads as text
                            continue
                elif mode == S.ENVNAME and (m := S.NAME(text, i)) is not None and self._name_ok(m.group(1)):
                    self.name += m.group(1)  # a whole name that breaks nothing: only its } is fed
                    self.nl = False
                    i = m.end() - 1
                elif mode == S.COMMENT:
                    j = text.find("\n", i)
                    i = n if j < 0 else j
                elif mode == S.VERBATIM:
                    end = self.verbatim_end
                    body = self.tail + text[i:]
                    k = body.find(end)
                    if k < 0:
                        self.tail = body[-len(end):]
                        i = n
                    else:
                        i += k + len(end) - len(self.tail)
                        self.mode, self.tail = S.NORMAL, ""
                        self._pop()
                        continue
                if i >= n:
                    break
            self.feed(text[i])
            i += 1

    def _name_ok(self, rest: str) -> bool:
        """Would feeding ``rest`` (then }) to the environment name break nothing?"""
        name = self.name + rest
        if self.begin:
            return not (self.math and "math" in self.enabled) or name in S.MATH_INNER_ENVS
        env = self._innermost_env() if "env" in self.enabled else None
        return env is None or env == name

    def _pop(self) -> None:
        self.math = self.stack.pop()[2]

    def _unwind(self, i: int) -> None:
        del self.stack[i + 1:]

    def _feed(self, ch: str) -> None:
        mode = self.mode
        if mode == S.COMMENT:
            if ch == "\n":
                self.mode = S.NORMAL
                self.nl = True
            return
        if mode == S.VERBATIM:
            self.tail = (self.tail + ch)[-len(self.verbatim_end):]
            if self.tail == self.verbatim_end:
                self.mode = S.NORMAL
                self._pop()
            return
        if mode == S.VERB:
            if self.delim == "":  # \verb*: this character is the delimiter
                self.delim = ch
            elif ch == self.delim or ch == "\n":
                self.mode = S.NORMAL
            return
        if self.dollar:
            self.dollar = False
            if ch == "$":
                self._dollars()
                return
            self._dollar()
        if ch == "\n":
            if self.nl and self.math and mode in (S.NORMAL, S.CMD):
                self._paragraph()
            self.nl = True
        elif ch != " " and ch != "\t":
            self.nl = False
        if mode == S.CMD:
            if ch in S.LETTERS:
                self.cmd += ch
                return
            self.mode = S.NORMAL
            if self.cmd == "":
                self._escape(ch)
                return
            if self._command(self.cmd, ch):
                return
            mode = self.mode
        if mode == S.AWAIT_BRACE:
            if ch in " \t":
                return
            self.mode = S.NORMAL
            if ch == "{":
                self.mode, self.name = S.ENVNAME, ""
                return
        elif mode == S.TEXT_AWAIT:
            if ch in " \t":
                return
            self.mode = S.NORMAL
            if ch == "{":
                self.stack.append(("T{" if self.math else "{", None, self.math))
                self.math = False
                return
        elif mode == S.ENVNAME:
            if ch == "}":
                self.mode = S.NORMAL
                self._env(self.name.strip())
                return
            if ch not in S.NAME_BAN:
                self.name += ch
                return
            self.mode = S.NORMAL  # a malformed name: read the character as text
        # S.NORMAL
        if ch == "\\":
            self.mode, self.cmd = S.CMD, ""
        elif ch == "{":
            self.stack.append(("{", None, self.math))
        elif ch == "}":
            for i in range(len(self.stack) - 1, -1, -1):
                if self.stack[i][0] in ("{", "T{"):
                    self._unwind(i)
                    self._pop()
                    break
        elif ch == "$":
            self.dollar = True
        elif ch == "%":
            self.mode = S.COMMENT

    def _paragraph(self) -> None:
        j = self._math_frame()
        if j >= 0 and self.stack[j][0] != "T{":
            self._unwind(j)
            if self.stack[j][0] in S.MATH_KINDS:
                self._pop()

    def _dollar(self) -> None:
        top = self.stack[-1][0] if self.stack else None
        if top == "$":
            self._pop()
        elif not self.math:
            self.stack.append(("$", None, False))
            self.math = True
        else:
            j = self._math_frame()
            if j >= 0 and self.stack[j][0] == "$":
                self._unwind(j)
                self._pop()

    def _dollars(self) -> None:
        top = self.stack[-1][0] if self.stack else None
        if top == "$$":
            self._pop()
        elif not self.math:
            self.stack.append(("$$", None, False))
            self.math = True
        else:
            j = self._math_frame()
            jk = self.stack[j][0] if j >= 0 else None
            if jk in ("$", "$$"):
                self._unwind(j)
                self._pop()
                if jk == "$":
                    self.stack.append(("$", None, self.math))
                    self.math = True

    def _escape(self, ch: str) -> None:
        if ch == "[" or ch == "(":
            if not self.math:
                self.stack.append(("\\" + ch, None, self.math))
                self.math = True
        elif ch == "]" or ch == ")":
            want = "\\[" if ch == "]" else "\\("
            j = self._math_frame()
            if j >= 0 and self.stack[j][0] == want:
                self._unwind(j)
                self._pop()

    def _command(self, cmd: str, ch: str) -> bool:
        """A command name ended at ``ch``; True when ``ch`` was consumed."""
        if cmd == "begin" or cmd == "end":
            self.mode, self.begin = S.AWAIT_BRACE, cmd == "begin"
        elif cmd in S.TEXT_CMDS:
            self.mode = S.TEXT_AWAIT
        elif cmd == "verb":
            if ch == "*":
                self.mode = S.VERB  # \verb*: the delimiter is the next character
                self.delim = ""
                return True
            self.mode, self.delim = S.VERB, ch
            return True
        elif cmd == "left":
            if self.math:
                self.stack.append(("left", None, self.math))
        elif cmd == "right":
            for i in range(len(self.stack) - 1, self._math_frame(), -1):
                if self.stack[i][0] == "left":
                    self._unwind(i)
                    self._pop()
                    break
        return False

    def _env(self, name: str) -> None:
        if self.begin:
            if self.math and name in PARAGRAPH_ENVS:
                j = self._math_frame()
                if j >= 0 and self.stack[j][0] in S.MATH_KINDS:
                    self._unwind(j)
                    self._pop()
            self.stack.append(("env", name, self.math))
            if name in VERBATIM_ENVS:
                self.mode, self.verbatim_end, self.tail = S.VERBATIM, f"\\end{{{name}}}", ""
            elif name in MATH_ENVS:
                self.math = True
            return
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == "env":
                deeper = [k for k in range(i + 1) if self.stack[k][0] == "env" and self.stack[k][1] == name]
                self._unwind(deeper[-1] if deeper else i)
                self._pop()
                return
        self.stack.clear()  # an \end of something opened before the text: everything inside it ends
        self.math = False

    # ---- closing -------------------------------------------------------------------------
    def closing(self) -> str:
        return closing_text(self)

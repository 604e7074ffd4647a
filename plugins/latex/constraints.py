"""Which next characters a LaTeX tracker's state bans: the constraint side of :class:`LatexTracker`
(kept apart from the feeding side in tracker.py; both read the same state attributes)."""

from __future__ import annotations

from collections.abc import Iterable

from gen.core.api import FREE, Constraint

from . import states as S
from .scan import MATH_ENVS


class TrackerConstraints:
    """Mixin: ``constraint()`` from the state a :class:`LatexTracker` keeps (stack, mode, math ...)."""

    stack: list[tuple[str, str | None, bool]]
    enabled: set[str]

    # ---- state queries -------------------------------------------------------------------
    def _math_frame(self) -> int:
        for i in range(len(self.stack) - 1, -1, -1):
            k, n, _ = self.stack[i]
            if k in S.MATH_KINDS or k == "T{" or (k == "env" and n in MATH_ENVS):
                return i
        return -1

    def _innermost_env(self) -> str | None:
        for k, n, _ in reversed(self.stack):
            if k == "env":
                return n
        return None

    def _cached(self, key: tuple, allow: Iterable[str] | None = None, ban: Iterable[str] = ()) -> Constraint:
        c = self._cache.get(key)
        if c is None:
            c = Constraint(None if allow is None else frozenset(allow), frozenset(ban))
            self._cache[key] = c
        return c

    def _normal_ban(self) -> tuple[str, ...]:
        """What S.NORMAL mode bans in the current state (the next character read as text)."""
        en, top = self.enabled, (self.stack[-1][0] if self.stack else None)
        ban: tuple[str, ...] = ()
        if "brace" in en and top not in S.BRACES:
            ban += ("}",)
        if "math" in en and self.math:
            if top != "$" and top != "$$":
                ban += ("$",)
            if self.nl:
                j = self._math_frame()
                if j >= 0 and self.stack[j][0] != "T{":
                    ban += ("\n",)
        return ban

    def _after(self, change) -> tuple[str, ...]:
        """S.NORMAL bans in the state ``change`` leads to (the state itself is left as it was)."""
        saved, math = list(self.stack), self.math
        change()
        ban = self._normal_ban()
        self.stack, self.math = saved, math
        return ban

    def _ban(self, tag: str, ban: tuple[str, ...]) -> Constraint:
        return self._cached((tag, *ban), ban=ban) if ban else FREE

    def constraint(self) -> Constraint:
        en = self.enabled
        mode = self.mode
        top = self.stack[-1][0] if self.stack else None
        if self.dollar:  # the character after a $ decides $ or $$
            if top == "$$" and self.math and "math" in en:
                return self._cached(("$$",), allow="$")  # the second $ of a closing $$
            ban = tuple(c for c in self._after(self._dollar) if c != "$")  # a second $ makes $$: fine
            return self._ban("dollar", ban)
        if mode == S.NORMAL:
            return self._ban("normal", self._normal_ban())
        if mode == S.CMD:
            cmd = self.cmd
            if cmd == "":  # the escaped character: only the math delimiters \[ \] \( \) matter
                ban: tuple[str, ...] = ()
                if "math" in en:
                    if self.math:
                        ban += ("[", "(")
                    if top != "\\[":
                        ban += ("]",)
                    if top != "\\(":
                        ban += (")",)
                return self._ban("escape", ban)
            letters = self._cached(("letters",), allow=S.LETTERS)
            if cmd == "end" and "env" in en and top is not None and top != "env":
                return letters  # \end may not close over braces or math
            if cmd == "right":
                if "leftright" in en and top != "left":
                    return letters  # only \rightarrow and friends
                return self._ban("normal", self._after(self._pop) if top == "left" else self._normal_ban())
            if cmd == "left":
                if "leftright" in en and not self.math:
                    return letters  # only \leftarrow and friends
                if self.math:
                    return self._ban("normal", self._after(lambda: self.stack.append(("left", None, True))))
            if cmd == "verb":
                return FREE  # the next character is the delimiter
            # the command ends at the next non-letter, which is then read as text
            return self._ban("normal", self._normal_ban())
        if mode == S.AWAIT_BRACE or mode == S.TEXT_AWAIT:  # anything but { and spaces is read as text
            return self._ban("normal", self._normal_ban())
        if mode == S.ENVNAME:
            if self.begin:
                if self.math and "math" in en:
                    nxt = S.MATH_BEGIN.get(self.name)
                    if nxt is not None:
                        return self._cached(("mb", self.name), allow=nxt)
                return self._cached(("name",), ban=S.NAME_BAN)
            env = self._innermost_env() if "env" in en else None
            if env is not None and env.startswith(self.name):
                p = len(self.name)
                return self._cached(("end", env, p), allow=env[p] if p < len(env) else "}")
            return self._cached(("name",), ban=S.NAME_BAN)
        return FREE


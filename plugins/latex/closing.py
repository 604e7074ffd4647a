"""The text that closes a LaTeX sample: what the tracker's open frames need, innermost first."""

from __future__ import annotations

import copy

from gen.core.api import Tracker

from .scan import MATH_ENVS, PARAGRAPH_ENVS
from .states import (
    AWAIT_BRACE,
    CLOSER,
    CMD,
    COMMENT,
    ENVNAME,
    MATH_INNER_ENVS,
    TEXT_AWAIT,
    VERB,
    VERBATIM,
)


def closing_text(tracker: Tracker) -> str:
    """Text that finishes the token being read, then closes the open frames innermost first.
    It is found by feeding a copy of the tracker, so it never breaks a constraint itself."""
    t = copy.deepcopy(tracker)
    out: list[str] = []

    def emit(s: str) -> None:
        for ch in s:
            out.append(ch)
            t.feed(ch)

    for _ in range(10_000):  # finish the token being read, then close frames innermost first
        mode = t.mode
        if mode == COMMENT:
            emit("\n")
        elif mode == VERB:
            emit(t.delim or "|")
        elif mode == VERBATIM:
            end = t.verbatim_end
            emit(next((end[k:] for k in range(len(end), 0, -1) if t.tail.endswith(end[:k])), end))
        elif mode == CMD:
            top = t.stack[-1][0] if t.stack else None
            if t.cmd == "end" and (top != "env" or t._innermost_env() is None):
                emit("graf ")  # \end may not close over open braces or math: read it as \endgraf
            elif t.cmd in ("begin", "end"):
                emit("{")
            elif (t.cmd == "left" and not t.math) or (t.cmd == "right" and top != "left"):
                emit("arrow ")  # a \left or \right that cannot pair: read it as an arrow
            elif t.cmd in ("left", "right"):
                emit(".")  # the null delimiter
            else:
                emit(" ")
        elif mode in (AWAIT_BRACE, TEXT_AWAIT):
            emit("{")
        elif mode == ENVNAME:
            if t.begin:
                pool = MATH_INNER_ENVS if t.math else sorted(PARAGRAPH_ENVS - MATH_ENVS - {"document"})
                default = "matrix" if t.math else "quote"
                done = next((e for e in pool if e.startswith(t.name)), "") if t.name else default
                emit(done[len(t.name):] + "}")
            else:
                env = t._innermost_env()
                emit((env[len(t.name):] if env and env.startswith(t.name) else "") + "}")
        elif t.dollar:
            emit("$" if t.stack and t.stack[-1][0] == "$$" else " ")
        elif t.stack:
            kind, name, _ = t.stack[-1]
            emit(("" if t.nl else "\n") + f"\\end{{{name}}}" if kind == "env" else CLOSER[kind])
        else:
            break
    return "".join(out)

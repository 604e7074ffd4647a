"""What a LaTeX tracker's state gives besides constraints: the text that closes a sample,
and per-character structure features for neuron interpretation (``gen neurons``)."""

from __future__ import annotations

import copy

import numpy as np

from gen.plugins.latex_scan import MATH_ENVS, PARAGRAPH_ENVS
from gen.plugins.latex_tracker import (
    AWAIT_BRACE,
    CLOSER,
    CMD,
    COMMENT,
    ENVNAME,
    MATH_INNER_ENVS,
    TEXT_AWAIT,
    VERB,
    VERBATIM,
    LatexTracker,
)


def closing_text(tracker: LatexTracker) -> str:
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


FEATURES = ("in_math", "env_depth", "brace_depth", "in_comment", "in_command_name", "line_position")


def latex_features(text: str) -> dict[str, np.ndarray]:
    """Per-character structure after reading each character (a $ that opens math counts in)."""
    n = len(text)
    out = {name: np.zeros(n, dtype=np.float32) for name in FEATURES}
    in_math, env_d, brace_d = out["in_math"], out["env_depth"], out["brace_depth"]
    comment, command, linepos = out["in_comment"], out["in_command_name"], out["line_position"]
    t = LatexTracker(enabled=())
    col = 0
    for i, ch in enumerate(text):
        t.feed(ch)
        st = t.stack
        in_math[i] = t.math or (t.dollar and not t.math) or (t.dollar and bool(st) and st[-1][0] == "$$")
        env_d[i] = sum(1 for f in st if f[0] == "env")
        brace_d[i] = sum(1 for f in st if f[0] in ("{", "T{"))
        comment[i] = t.mode == COMMENT
        command[i] = t.mode == CMD
        linepos[i] = col
        col = 0 if ch == "\n" else col + 1
    return out

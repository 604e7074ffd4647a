"""Per-character LaTeX structure features for neuron interpretation (``gen neurons``), read off
the tracker's state as it is fed the text."""

from __future__ import annotations

import numpy as np

from .states import CMD, COMMENT
from .tracker import LatexTracker

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

"""Generic corruption of real text, for calibrating checks (damaged text must score worse).

Per character work is numpy over the text's code points (a calibration set is up to a megabyte:
the Python loops this replaced cost 0.12 s per 0.16 MB of War and Peace, a third of an eval);
the random choices come from the caller's ``random.Random``, so a seed still fixes the result.
"""

from __future__ import annotations

import random
import string
from collections.abc import Iterable

import numpy as np

from gen.core.vocab import code_points, from_code_points

_LOWER = code_points(string.ascii_lowercase)


def _where(cps: np.ndarray, chars: set[str] | str) -> np.ndarray:
    """Offsets of the characters in ``chars``."""
    wanted = np.array(sorted({ord(c) for c in chars}), dtype=np.uint32)
    return np.flatnonzero(np.isin(cps, wanted)) if len(wanted) else np.zeros(0, dtype=np.int64)


def change_letters(text: str, rng: random.Random, rate: float = 0.05) -> str:
    """Each letter replaced by a random lowercase one with probability ``rate``."""
    cps = code_points(text).copy()
    letters = _where(cps, {c for c in set(text) if c.isalpha()})
    gen = np.random.default_rng(rng.getrandbits(64))
    hit = letters[gen.random(len(letters)) < rate]
    cps[hit] = _LOWER[gen.integers(0, len(_LOWER), len(hit))]
    return from_code_points(cps)


def cut_spans(text: str, spans: Iterable[tuple[int, int]]) -> str:
    """``text`` without the given ``(start, end)`` spans (non-overlapping, in any order): the
    deletion every "drop a random match" corruption ends in, in one pass."""
    out, pos = [], 0
    for start, end in sorted(spans):
        out.append(text[pos:start])
        pos = max(pos, end)
    out.append(text[pos:])
    return "".join(out)


def drop_chars(text: str, rng: random.Random, targets: str, n: int = 2) -> str:
    """Delete ``n`` randomly chosen occurrences of characters in ``targets``."""
    cps = code_points(text)
    where = _where(cps, targets).tolist()
    return from_code_points(np.delete(cps, rng.sample(where, min(n, len(where)))))


def shuffle_lines(text: str, rng: random.Random) -> str:
    lines = text.split("\n")
    rng.shuffle(lines)
    return "\n".join(lines)


def generic_corrupt(text: str, rng: random.Random) -> str:
    """Letters changed, a few brackets dropped, lines shuffled."""
    return shuffle_lines(drop_chars(change_letters(text, rng), rng, "()[]{}\"", 2), rng)

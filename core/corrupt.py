"""Generic corruption of real text, for calibrating checks (damaged text must score worse)."""

from __future__ import annotations

import random
import string


def change_letters(text: str, rng: random.Random, rate: float = 0.05) -> str:
    chars = list(text)
    for i, c in enumerate(chars):
        if c.isalpha() and rng.random() < rate:
            chars[i] = rng.choice(string.ascii_lowercase)
    return "".join(chars)


def drop_chars(text: str, rng: random.Random, targets: str, n: int = 2) -> str:
    """Delete ``n`` randomly chosen occurrences of characters in ``targets``."""
    where = [i for i, c in enumerate(text) if c in targets]
    drop = set(rng.sample(where, min(n, len(where))))
    return "".join(c for i, c in enumerate(text) if i not in drop)


def shuffle_lines(text: str, rng: random.Random) -> str:
    lines = text.split("\n")
    rng.shuffle(lines)
    return "\n".join(lines)


def generic_corrupt(text: str, rng: random.Random) -> str:
    """Letters changed, a few brackets dropped, lines shuffled."""
    return shuffle_lines(drop_chars(change_letters(text, rng), rng, "()[]{}\"", 2), rng)

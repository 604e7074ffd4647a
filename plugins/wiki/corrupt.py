"""Damaged copies of real wiki text, for calibrating the checks (they must score clearly worse).

Each damage targets one check, and each applies where the text gives it something to damage:
a ``]]`` or ``}}`` dropped, two XML close tags swapped, an emphasis run dropped, a heading's
closing ``=`` removed, a ``</ref>`` or ``|}`` dropped, and for the invention checks link
targets misspelt, URL hosts broken, timestamps given a thirteenth month, ids given a letter.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

from gen.core.api import cut_spans

_CLOSE_TAG = re.compile(r"</([A-Za-z_][\w.:-]*)>")
_EMPH = re.compile(r"(?<!')'{2,3}(?!')")
_HEADING_END = re.compile(r"^(=+[^=\n]+?)(=+)[ \t]*$", re.M)
_REF_CLOSE = re.compile(r"(?:<|&lt;)/ref(?:>|&gt;)", re.I)
_TABLE_CLOSE = re.compile(r"^\|\}(?!\})", re.M)
_LINK_TARGET = re.compile(r"(?<=\[\[)([A-Za-z][^\[\]|:\n#]{3,})(?=[|\]])")
_URL_HOST = re.compile(r"(?<=://)([A-Za-z0-9-]+)\.")
_TIMESTAMP = re.compile(r"(<timestamp>\d{4}-)(\d{2})")
_ID = re.compile(r"(<id>\d)(\d*</id>)")


def _drop(text: str, pattern: re.Pattern[str] | str, rng: random.Random, n: int) -> str:
    """Delete ``n`` random matches of ``pattern``."""
    spans = [m.span() for m in re.finditer(pattern, text)]
    return cut_spans(text, rng.sample(spans, min(n, len(spans))))


def _each(text: str, pattern: re.Pattern[str], rng: random.Random, p: float,
          change: Callable[[re.Match[str]], str]) -> str:
    """Replace each match of ``pattern`` by ``change(match)`` with probability ``p``."""
    return pattern.sub(lambda m: change(m) if rng.random() < p else m.group(0), text)


def _swap_tags(text: str, rng: random.Random) -> str:
    """Swap the names of two close tags that differ (</title> ... </id> -> </id> ... </title>)."""
    tags = list(_CLOSE_TAG.finditer(text))
    pairs = [(a, b) for i, a in enumerate(tags) for b in tags[i + 1:i + 4] if a.group(1) != b.group(1)]
    if not pairs:
        return text
    a, b = rng.choice(pairs)
    return (text[:a.start(1)] + b.group(1) + text[a.end(1):b.start(1)] + a.group(1) + text[b.end(1):])


def _misspell(word: str, rng: random.Random) -> str:
    i = rng.randrange(1, len(word))
    return word[:i] + rng.choice("qxzjkv") + word[i:]


def corrupt_wiki(text: str, rng: random.Random) -> str:
    """Every applicable damage once or twice (see the module docstring)."""
    text = _drop(text, r"\]\]", rng, 2)
    text = _drop(text, r"\}\}", rng, 2)
    text = _swap_tags(text, rng)
    text = _drop(text, _EMPH, rng, 2)
    heads = list(_HEADING_END.finditer(text))
    if heads:
        m = rng.choice(heads)
        text = text[:m.start(2)] + text[m.end(2):]
    text = _drop(text, _REF_CLOSE, rng, 1)
    text = _drop(text, _TABLE_CLOSE, rng, 1)
    text = _each(text, _LINK_TARGET, rng, 0.7, lambda m: _misspell(m.group(1), rng))
    text = _each(text, _URL_HOST, rng, 0.7, lambda m: m.group(1) + "..")
    text = _each(text, _TIMESTAMP, rng, 1.0, lambda m: m.group(1) + str(rng.randint(13, 19)))
    text = _each(text, _ID, rng, 0.7, lambda m: m.group(1) + "x" + m.group(2))
    return text

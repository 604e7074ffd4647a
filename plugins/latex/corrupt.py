"""Damage real LaTeX the way a char-rnn does, for calibrating the checks.

Each function makes one kind of mistake at a random place (and returns the text unchanged when
it has no place for it): an ``\\end`` renamed (begin proof, end lemma), an ``\\end`` dropped, a
brace or a ``$`` dropped, a ``\\right`` dropped, a command misspelt, an environment renamed
throughout, a reference to a label that does not exist. :func:`corrupt` makes one of each kind,
so corrupted text scores worse on every check than the real text it came from.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

from gen.core.api import cut_spans

ENV_NAMES = ("proof", "lemma", "enumerate", "definition", "theorem", "remark", "itemize", "equation")
_END = re.compile(r"\\end\{([^{}\n]*)\}")
_ENV = re.compile(r"\\(begin|end)\{([^{}\n]+)\}")
_BRACE = re.compile(r"(?<!\\)[{}]")
_DOLLAR = re.compile(r"(?<!\\)\$")
_RIGHT = re.compile(r"\\right(?![a-zA-Z])")
_COMMAND = re.compile(r"\\([a-zA-Z]{3,})")
_REF = re.compile(r"\\(?:eq)?ref\{([^{}\n]+)\}")


def _pick(pattern: re.Pattern, text: str, rng: random.Random) -> re.Match | None:
    found = list(pattern.finditer(text))
    return rng.choice(found) if found else None


def _drop_one(pattern: re.Pattern, text: str, rng: random.Random) -> str:
    """One random match of ``pattern`` deleted."""
    m = _pick(pattern, text, rng)
    return text if m is None else cut_spans(text, [m.span()])


def rename_end(text: str, rng: random.Random) -> str:
    """\\end{lemma} -> \\end{proof}: the blog's mismatched environment."""
    m = _pick(_END, text, rng)
    if m is None or m.group(1) == "document":
        return text
    other = rng.choice([e for e in ENV_NAMES if e != m.group(1)])
    return text[:m.start(1)] + other + text[m.end(1):]


def drop_end(text: str, rng: random.Random) -> str:
    """An environment never closed (its \\end line removed)."""
    return _drop_one(_END, text, rng)


def drop_brace(text: str, rng: random.Random) -> str:
    return _drop_one(_BRACE, text, rng)


def drop_dollar(text: str, rng: random.Random) -> str:
    return _drop_one(_DOLLAR, text, rng)


def drop_right(text: str, rng: random.Random) -> str:
    return _drop_one(_RIGHT, text, rng)


def misspell_command(text: str, rng: random.Random) -> str:
    """\\mathcal -> \\mathcla: a command the corpus never uses."""
    m = _pick(_COMMAND, text, rng)
    if m is None:
        return text
    name = m.group(1)
    i = rng.randrange(len(name) - 1)
    bad = name[:i] + name[i + 1] + name[i] + name[i + 2:] if name[i] != name[i + 1] else name + "q"
    return text[:m.start(1)] + bad + text[m.end(1):]


def invent_reference(text: str, rng: random.Random) -> str:
    """\\ref{lemma-flat} -> \\ref{lemma-flatq}: a label nobody defines."""
    m = _pick(_REF, text, rng)
    return text if m is None else text[:m.end(1)] + "q" + text[m.end(1):]


def invent_environment(text: str, rng: random.Random) -> str:
    """Every \\begin/\\end of one environment renamed alike (lemma -> lemmaq): still balanced,
    but an environment the corpus never uses."""
    m = _pick(_ENV, text, rng)
    if m is None or m.group(2) == "document":
        return text
    name = re.escape(m.group(2))
    return re.sub(r"(\\(?:begin|end)\{)" + name + r"\}", lambda k: k.group(1) + m.group(2) + "q}", text)


DAMAGES: tuple[Callable[[str, random.Random], str], ...] = (
    invent_environment, rename_end, drop_end, drop_brace, drop_brace, drop_dollar, drop_dollar, drop_right,
    misspell_command, invent_reference)


def corrupt(text: str, rng: random.Random) -> str:
    """One of each damage (two braces and two dollars: a single one often still balances)."""
    for damage in DAMAGES:
        text = damage(text, rng)
    return text

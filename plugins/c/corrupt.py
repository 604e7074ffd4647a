"""Damage real C the way a char-level model does, for calibrating the C checks.

``corrupt_c`` applies four small damages to a window of real code, each aimed at the kind of
slip the blog reports and each caught by a different check:

1. a local variable's declaration renamed (its uses become undeclared, the new name unused);
2. the right operand of a comparison replaced by the left one (``tty == tty``);
3. a closing brace, a closing parenthesis and a string's quote dropped (balance, literals, syntax);
4. a few consecutive lines shuffled (syntax, and a function's final ``return`` may move).

Every step is best effort: text without a declaration or a comparison just skips that step.
"""

from __future__ import annotations

import random
import re
import string

import tree_sitter as ts

from gen.core.api import cut_spans

from . import grammar as G
from . import lex as c_lex
from . import sem as c_sem

_Q = ts.Query(G.LANG, """
(function_definition body: (compound_statement (declaration declarator: (_) @decl)))
(binary_expression left: (identifier) @l operator: ["==" "!=" "<" ">" "<=" ">="] right: (identifier) @r)
(binary_expression left: (field_expression) @l operator: ["==" "!="] right: (field_expression) @r)
""")
SHUFFLE_LINES = 6


def corrupt_c(text: str, rng: random.Random) -> str:
    try:
        text = _rename_and_copy(text, rng)
    except Exception:  # noqa: BLE001 - a parse problem only skips these two damages
        pass
    text = _drop_closers(text, rng)
    return _shuffle_lines(text, rng)


def _rename_and_copy(text: str, rng: random.Random) -> str:
    src = text.encode("utf-8", "surrogatepass")  # edits replace whole identifiers: UTF-8 stays valid
    root = G.PARSER.parse(src).root_node
    caps = ts.QueryCursor(_Q).matches(root)
    decls, cmps = [], []
    for _pattern, c in caps:
        if "decl" in c:
            name = c_sem.name_of(c["decl"][0])
            if name is not None and name.end_byte > name.start_byte:
                decls.append(name)
        elif "l" in c and "r" in c:
            left, right = c["l"][0], c["r"][0]
            if left.text != right.text:
                cmps.append((left, right))
    edits: list[tuple[int, int, bytes]] = []
    if decls:
        name = rng.choice(decls)
        old = name.text.decode()
        edits.append((name.start_byte, name.end_byte, fresh_name(old, text, rng).encode()))
    if cmps:
        left, right = rng.choice(cmps)
        if not any(s < right.end_byte and right.start_byte < e for s, e, _ in edits):
            edits.append((right.start_byte, right.end_byte, left.text))
    for s, e, new in sorted(edits, reverse=True):
        src = src[:s] + new + src[e:]
    return src.decode("utf-8", "surrogatepass")


def fresh_name(old: str, text: str, rng: random.Random) -> str:
    """A plausible identifier that does not occur in ``text`` (one letter changed or added)."""
    for _ in range(20):
        letter = rng.choice(string.ascii_lowercase)
        new = old[:-1] + letter if len(old) > 2 else old + letter
        if new != old and not re.search(rf"\b{re.escape(new)}\b", text):
            return new
    return old + "_x"


def _drop_closers(text: str, rng: random.Random) -> str:
    """Delete one code ``}``, one code ``)`` and one string quote (each if there is one)."""
    bal = c_lex.balance(text, want_closers=True)
    drop = [rng.choice(group) for group in (bal.closers["}"], bal.closers[")"], bal.quotes) if group]
    return cut_spans(text, ((i, i + 1) for i in drop))


def _shuffle_lines(text: str, rng: random.Random) -> str:
    lines = text.split("\n")
    if len(lines) < 3:
        return text
    k = min(SHUFFLE_LINES, len(lines))
    start = rng.randrange(0, len(lines) - k + 1)
    block = lines[start:start + k]
    if len(set(block)) < 2:
        return text
    shuffled = block[:]
    while shuffled == block:
        rng.shuffle(shuffled)
    return "\n".join(lines[:start] + shuffled + lines[start + k:])

"""Which names a C text declares, and what its macros and headers add: the name check's rules.

Used by :mod:`.sem` (the tree-sitter checks) and :mod:`.headers` (what includes declare):
macros whose body returns (they end a function like ``return``), C++ guards and block macros
spelled out before parsing, where clang looks at a comparison at all, and the sorting of a function's free names into known, *unknown* (a header that was
not found could declare it) and *undeclared* (see :mod:`.sem`'s docstring for the scope model).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import grammar as G

# `#define NAME ... return ...` with no `if` before the return on its line: a statement made of
# NAME (``RETURN_ZERO;`` or ``FAIL(x);``) leaves the function, as the compiler sees after expansion
_RETURN_MACRO = re.compile(rb"^[ \t]*#[ \t]*define[ \t]+(\w+)(?:\([^)\n]*\))?(?:(?!\bif\b)[^\n])*?\breturn\b", re.M)
_DEFINE_RETURN_LINE = re.compile(rb"^[ \t]*#[ \t]*define\b[^\n]*\breturn\b[^\n]*", re.M)


def returning_macros(src: bytes) -> frozenset[bytes]:
    """Names of the macros ``src`` defines whose body returns (see ``_RETURN_MACRO``)."""
    if b"define" not in src or b"return" not in src:
        return frozenset()
    # the pattern runs on candidate lines only: on 0.7 MB of preprocessed headers the whole-text
    # search took 0.3 s, the line filter 0.01 s
    lines = b"\n".join(m.group(0) for m in _DEFINE_RETURN_LINE.finditer(src))
    return frozenset(m.group(1) for m in _RETURN_MACRO.finditer(lines))


DEFINED = re.compile(r"^[ \t]*#[ \t]*define[ \t]+(\w+)", re.M)  # a macro is declared where it is defined
_EXTERN_C = re.compile(r'^[ \t]*extern[ \t]+"C"[ \t]*\{[^\n]*', re.M)
_EXTERN_C_END = re.compile(r"(^[ \t]*#[ \t]*if[^\n]*__cplusplus[^\n]*\n)([ \t]*\}[^\n]*)", re.M)


def cxx_guards_blanked(text: str) -> str:
    """The text with C++ guards (``extern "C" {`` and its ``}`` under ``#ifdef __cplusplus``)
    turned into spaces of the same length: tree-sitter-c reads them as one ERROR around the
    whole file, and offsets must not move."""
    if "__cplusplus" not in text:
        return text
    text = _EXTERN_C.sub(lambda m: " " * len(m.group()), text)
    return _EXTERN_C_END.sub(lambda m: m.group(1) + " " * len(m.group(2)), text)


def braces_spelled_out(text: str, braces: frozenset[tuple[bytes, int]]) -> str:
    """``text`` with each use of a block macro (``Py_BEGIN_ALLOW_THREADS``) replaced by the brace
    it stands for, padded with spaces to the same length (offsets must not move)."""
    if not braces:
        return text
    net = {n.decode("utf-8", "replace"): d for n, d in braces}
    names = [n for n in net if n in text]
    if not names:
        return text
    pat = re.compile(r"^[ \t]*#[^\n]*|\b(" + "|".join(map(re.escape, names)) + r")\b", re.M)
    return pat.sub(lambda m: m.group() if m.group(1) is None else
                   ("{" if net[m.group(1)] > 0 else "}").ljust(len(m.group())), text)


@dataclass(frozen=True)
class Headers:
    """What a text's includes tell the name check (see :mod:`.headers`)."""

    names: frozenset[bytes] = frozenset()  # declared by the found headers
    returning: frozenset[bytes] = frozenset()  # their macros whose body returns
    mode: str = "none"  # "none": no include; "complete": every include found; "partial": some missing
    braces: frozenset[tuple[bytes, int]] = frozenset()  # block-opening/closing macros (headers.brace_macros)
    # complete mode: which still-undeclared (name, function) pairs the preprocessed file declares
    expand: Callable[[list[tuple[bytes, bytes]]], set[tuple[bytes, bytes]]] | None = None


def resolve(tally: Any, known: frozenset[str] | None, headers: Headers) -> None:
    """Sort names free in a function into declared somewhere, unknown or undeclared (module docstring)."""
    strict = []
    for nm, at, callee, fn in tally.pending:
        if nm in tally.globals or nm in headers.names or nm in G.C_KEYWORDS:
            continue
        name = nm.decode("utf-8", "replace")
        if name in G.KNOWN or name.startswith("__builtin") or (known is not None and name in known):
            continue
        if headers.mode == "partial" or (headers.mode == "none" and (callee or name.upper() == name)):
            tally.unknown += 1
            if headers.mode == "partial":
                tally.issues.append(("unknown", at, f"'{name}' is declared nowhere the check can see: "
                                                    "maybe in a header that was not found"))
            continue
        strict.append((nm, at, fn))
    expanded = headers.expand(sorted({(nm, fn) for nm, _, fn in strict})) if strict and headers.expand else set()
    for nm, at, fn in strict:
        if (nm, fn) not in expanded:
            tally.undeclared += 1
            tally.issues.append(("undeclared", at, f"'{nm.decode('utf-8', 'replace')}' is used but never declared"))


def compiled_here(node: Any) -> bool:
    """False where clang says nothing of a self-comparison: in a preprocessor condition
    (``#if X == X``), in an ``#if 0`` branch, or in an assertion's argument (a macro)."""
    child, parent = node, node.parent
    for _ in range(G.MAX_START_DEPTH):
        if parent is None:
            return True
        t = parent.type
        if t in ("preproc_if", "preproc_elif"):
            cond = parent.child_by_field_name("condition")
            if cond is not None and (cond == child or cond.text.strip() in (b"0", b"false")) and \
                    child != parent.child_by_field_name("alternative"):
                return False
        elif t == "call_expression":
            fn = parent.child_by_field_name("function")
            if fn is not None and fn.text in G.ASSERTS:
                return False
        child, parent = parent, parent.parent
    return True

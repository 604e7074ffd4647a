"""Names a C text's headers declare: its ``#include`` lines resolved as a compiler resolves them.

A name the sample never declares may still be declared by a header it includes (``optind`` by
``<unistd.h>``, ``Py_None`` by ``"Python.h"``). Each include is looked for, in order:

1. in the user's include directories (``gen eval c --include-dir DIR``, repeatable; a found file
   whose real path leaves its directory through a symlink is not used);
2. for ``<...>`` and ``"..."`` alike, in the local compiler's system search path (``cc -E -v``),
   when a compiler is installed;
3. among the training corpus's own headers (paths collected at ``gen prepare``, matched by path
   suffix), whose names the cached corpus statistics already hold (``--against``).

Found headers of 1-2 are preprocessed by the compiler (``-E -dD``: every declaration and macro,
nested includes and the sample's own ``#define`` lines before them applied) and their file-scope
names read with the same tree-sitter pass as corpus statistics; with no compiler, or a header
that does not preprocess alone, its files are read directly (nested includes followed, bounded). A header found nowhere is
*missing*: names that could come from it are reported as ``unknown``, never ``undeclared``.
Results are cached per process and header (with the ``#define`` lines before the first include,
which can change what a header declares), so a samples file preprocesses each header once (about
0.02 s for ``<stdio.h>``, 0.4 s for ``Python.h``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*([<"])([^>"\n]+)[>"]', re.M)
_ANY_INCLUDE = re.compile(r"^[ \t]*#[ \t]*(?:include|include_next|import)\b[^\n]*", re.M)
_DIRECTIVE = re.compile(r'^[ \t]*#[ \t]*(include|if|ifdef|ifndef|endif|define)\b[ \t]*([<"][^>"\n]+[>"]|\w*)', re.M)
_DEFINE = re.compile(r"^[ \t]*#[ \t]*(?:define|undef)\b[^\n]*(?:\\\n[^\n]*)*", re.M)
MAX_INCLUDES = 256  # include lines looked at per text (real files have tens)
MAX_OUTPUT = 32 << 20  # preprocessed header text kept at most (Python.h: 0.7 MB)
MAX_READ_FILES = 400  # headers read directly (no compiler) per include set
TIMEOUT = 30.0
MAX_EXPAND_CHARS = 1_000_000  # longer texts skip the whole-file preprocessing (bounded time per sample)


def run_cc(compiler: str, flags: list[str], text: str, dirs: tuple[str, ...],
           timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    """``compiler FLAGS -x c - -I...`` on ``text`` (stdin), messages in plain ASCII whatever the
    user's locale; raises OSError or TimeoutExpired like subprocess.run."""
    return subprocess.run([compiler, *flags, "-x", "c", "-", *(f"-I{d}" for d in dirs)],
                          input=text.encode("utf-8", "replace"), capture_output=True, timeout=timeout,
                          check=False, env={**os.environ, "LC_ALL": "C"})


def find_compiler() -> str | None:
    """The C compiler used for headers and ``--gcc``: gcc, else clang, else cc."""
    for name in ("gcc", "clang", "cc"):
        path = shutil.which(name)
        if path:
            return path
    return None


@lru_cache(maxsize=8)
def system_dirs(compiler: str | None) -> tuple[str, ...]:
    """The compiler's ``#include <...>`` search path, read from ``cc -E -v`` (empty without one)."""
    if compiler is None:
        return ()
    try:
        proc = subprocess.run([compiler, "-E", "-v", "-x", "c", os.devnull], capture_output=True,
                              timeout=TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ()
    dirs, inside = [], False
    for line in proc.stderr.decode("utf-8", "replace").splitlines():
        if line.startswith("#include <...> search starts here"):
            inside = True
        elif line.startswith("End of search list"):
            break
        elif inside and line.startswith(" "):
            dirs.append(line.strip().removesuffix(" (framework directory)"))
    return tuple(dirs)


@dataclass(frozen=True)
class Includes:
    """How one text's includes resolved: the found files, the corpus's, and the missing ones."""

    found: tuple[tuple[str, str], ...]  # (include line as written, file path)
    corpus: tuple[str, ...]  # includes matched by a header of the training corpus
    missing: tuple[str, ...]  # includes found nowhere
    conditional: tuple[str, ...] = ()  # includes found nowhere inside an #if (another configuration's)

    @property
    def complete(self) -> bool:
        return not self.missing


def _inside(path: Path, root: Path) -> bool:
    try:
        return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(root))
    except OSError:
        return False


@lru_cache(maxsize=1 << 16)
def locate(name: str, dirs: tuple[str, ...], system: tuple[str, ...]) -> str | None:
    """The file ``#include`` NAME means: the first of ``dirs``, then ``system``. A file found
    through ``dirs`` must really lie inside one of them (``"../common/x.h"`` from ``src/dec``
    is used when ``src`` is an include directory too; no symlink leads out of them). Cached per
    process: an eval looks the same few hundred names up thousands of times. A sample is
    untrusted text: an absolute name, or one climbing out of the system path with ``..``
    (``<../../etc/shadow>``), is found nowhere."""
    if name.startswith("/") or "\0" in name:
        return None
    for d in dirs:
        cand = Path(os.path.normpath(Path(d) / name))
        if cand.is_file() and any(_inside(cand, Path(root)) for root in dirs):
            return str(cand)
    if ".." in Path(name).parts:
        return None
    for d in system:
        cand = Path(d) / name
        if cand.is_file():
            return str(cand)
    return None


def found_includes_only(text: str, inc: Includes) -> str:
    """``text`` with every ``#include`` line that :func:`resolve` did not locate blanked (the
    line stays, so line numbers hold): the compiler then reads no file the checks did not
    choose (a sample's ``#include "/etc/shadow"``, missing or conditional headers)."""
    located = {line for line, _ in inc.found}
    if "include" not in text and "import" not in text:
        return text

    def keep(m: re.Match) -> str:
        ours = INCLUDE.match(m.group(0))
        return m.group(0) if ours is not None and ours.group(0).strip() in located else ""

    # every form that reads a file: computed (`#include NAME`), #include_next, gcc's #import
    return _ANY_INCLUDE.sub(keep, text)


def corpus_suffixes(headers: frozenset[str] | tuple[str, ...]) -> frozenset[str]:
    """Every path suffix of the corpus's header paths (``a/b/c.h`` -> ``c.h``, ``b/c.h``, ``a/b/c.h``)."""
    out: set[str] = set()
    for h in headers:
        parts = h.replace("\\", "/").split("/")
        out.update("/".join(parts[i:]) for i in range(len(parts)))
    return frozenset(out)


def resolve(text: str, dirs: tuple[str, ...], system: tuple[str, ...],
            corpus: frozenset[str] = frozenset()) -> Includes:
    """Where each ``#include`` of ``text`` is (``corpus``: path suffixes of the corpus's headers).
    A missing include inside an ``#if`` group (``<arm_neon.h>`` under ``#ifdef __ARM_NEON__``) is
    another configuration's: listed as conditional, it does not make the names unknown. An
    include guard (``#ifndef X_H`` then ``#define X_H``) is no such group."""
    found, in_corpus, missing, conditional = [], [], [], []
    if "include" not in text:
        return Includes((), (), ())
    depth, guard, groups, prev, seen = 0, False, 0, None, 0
    for m in _DIRECTIVE.finditer(text):
        d, arg = m.group(1), m.group(2)
        if d in ("if", "ifdef", "ifndef"):
            depth += 1
            groups += depth == 1
        elif d == "endif":
            depth = max(depth - 1, 0)
            guard = guard and depth > 0  # the guard's group ends
        elif d == "define" and prev == ("ifndef", arg) and depth == 1 and groups == 1:
            guard = True  # `#ifndef X_H` `#define X_H` opening the file: its include guard
        elif d == "include" and arg[:1] in "<\"" and arg:
            seen += 1
            if seen > MAX_INCLUDES:
                break
            name = arg[1:-1].strip()
            path = locate(name, dirs, system)
            if path is not None:
                found.append((m.group(0).strip(), path))
            elif name in corpus:
                in_corpus.append(name)
            elif depth - guard > 0:
                conditional.append(name)
            else:
                missing.append(name)
        prev = (d, arg)
    return Includes(tuple(found), tuple(in_corpus), tuple(missing), tuple(conditional))


def feature_defines(text: str) -> str:
    """The ``#define``/``#undef`` lines before the text's first include (``_GNU_SOURCE``,
    ``PY_SSIZE_T_CLEAN``): they change what the headers declare, so they key the cache."""
    first = INCLUDE.search(text)
    return "\n".join(m.group(0) for m in _DEFINE.finditer(text, 0, first.start() if first else 0))


@dataclass(frozen=True)
class HeaderNames:
    names: frozenset[bytes]  # file-scope names and macros the found headers declare
    returning: frozenset[bytes]  # their macros whose body returns
    # object-like macros whose body opens or closes a block (``Py_BEGIN_ALLOW_THREADS``: +1)
    braces: frozenset[tuple[bytes, int]] = frozenset()


_OBJECT_MACRO = re.compile(r"^[ \t]*#[ \t]*define[ \t]+(\w+)[ \t]([^\n]*[{}][^\n]*)$", re.M)


def brace_macros(text: str) -> frozenset[tuple[bytes, int]]:
    """(name, net braces) of the object-like macros of ``text`` whose body leaves one block open
    (+1) or closes one (-1): a parser that does not expand them reads the code between a pair
    as outside the function."""
    out = set()
    for m in _OBJECT_MACRO.finditer(text):
        body = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', "", m.group(2))
        net = body.count("{") - body.count("}")
        if net in (1, -1):
            out.add((m.group(1).encode(), net))
    return frozenset(out)


@lru_cache(maxsize=4096)
def header_names(line: str, path: str, defines: str, dirs: tuple[str, ...], compiler: str | None) -> HeaderNames:
    """Names declared by one found header (``line`` as written, ``path`` where it is), after
    ``defines``; cached per header, so a samples file pays once for each header it includes."""
    from .names import returning_macros
    from .sem import free_names

    if compiler is not None:
        try:
            proc = run_cc(compiler, ["-E", "-dD", "-P", "-w"], f"{defines}\n{line}\n", dirs)
        except (OSError, subprocess.TimeoutExpired):
            proc = None
        if proc is not None and proc.returncode == 0:
            out = proc.stdout[:MAX_OUTPUT].decode("utf-8", "replace")
            return HeaderNames(frozenset(free_names(out)), returning_macros(out.encode()), brace_macros(out))
    # no compiler, or the header does not preprocess alone: its files are read as they are
    names: set[bytes] = set()
    returning: set[bytes] = set()
    braces: set[tuple[bytes, int]] = set()
    for src in _read_closure(path, dirs):
        names |= free_names(src)
        returning |= returning_macros(src.encode("utf-8", "replace"))
        braces |= brace_macros(src)
    return HeaderNames(frozenset(names), frozenset(returning), frozenset(braces))


def names_of(text: str, inc: Includes, dirs: tuple[str, ...], compiler: str | None) -> HeaderNames:
    """The union of what every found include of ``text`` declares."""
    defines = feature_defines(text)
    parts = [header_names(line, path, defines, dirs, compiler) for line, path in inc.found]
    if len(parts) == 1:
        return parts[0]
    return HeaderNames(frozenset().union(*(p.names for p in parts)), frozenset().union(*(p.returning for p in parts)),
                       frozenset().union(*(p.braces for p in parts)))


_WORD = re.compile(r"[A-Za-z_]\w*")


def expanded_declares(text: str, names: list[tuple[bytes, bytes]], inc: Includes, dirs: tuple[str, ...],
                      compiler: str | None) -> set[tuple[bytes, bytes]]:
    """Which of ``names`` (undeclared by the sample's own text and its headers one by one) are
    fine once the compiler preprocesses the whole text: declared outside any function by an
    expansion (``FN(Literal)`` with ``#define FN(X) X##Literal``, X-macro enumerators, a template
    header included after the file's own ``#define``), declared in the same function once its
    attribute macros are expanded (``size_t* BROTLI_RESTRICT ix`` reads as a parameter named
    ``BROTLI_RESTRICT`` before), or gone altogether (used only in inactive ``#if`` branches or
    ``#if defined(X)``, which the compiler never checks). ``names`` are (name, function name)
    pairs; ``inc`` is how the text's includes resolved. A name used inside a macro's argument stays what it was (``BROTLI_FREE(m, sd->buf)``
    with ``sd`` a typo). Empty without a compiler or when the text does not preprocess; about
    0.05-0.3 s a text."""
    if compiler is None or not names or len(text) > MAX_EXPAND_CHARS:
        return set()
    try:
        proc = run_cc(compiler, ["-E", "-P", "-w"], found_includes_only(text, inc), dirs)
    except (OSError, subprocess.TimeoutExpired):
        return set()
    if proc.returncode != 0:
        return set()
    out = proc.stdout[:MAX_OUTPUT].decode("utf-8", "replace")
    present = set(_WORD.findall(out))
    from .sem import free_pass

    by_fn: dict[bytes, set[bytes]] = {}
    declared = free_pass(out, by_fn).globals
    return {(n, fn) for n, fn in names
            if n in declared or n in by_fn.get(fn, ()) or n.decode("utf-8", "replace") not in present}


def _read_closure(path: str, dirs: tuple[str, ...]) -> Iterator[str]:
    """The text of ``path`` and of the headers it includes from ``dirs`` or its own folder,
    each read once, at most MAX_READ_FILES (no compiler)."""
    seen = {path}
    todo = [path]
    while todo:
        current = todo.pop(0)
        try:
            text = Path(current).read_text("utf-8", "replace")
        except OSError:
            continue
        yield text
        for m in INCLUDE.finditer(text):
            found = locate(m.group(2).strip(), (str(Path(current).parent), *dirs), ())
            if found is not None and found not in seen and len(seen) < MAX_READ_FILES:
                seen.add(found)
                todo.append(found)

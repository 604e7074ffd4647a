"""Fast structural scan of LaTeX: environments, braces, math and \\left/\\right on one stack.

This is the LaTeX domain's own matcher (pylatexenc is a second opinion, 100-200 times slower).
Each regex match eats everything that cannot change the structure (text, commands, escapes,
plain ``{...}`` groups and, in text mode, plain ``$...$`` formulas) and returns the next token
that can (a brace, ``$``, ``\\begin``/``\\end``, a math delimiter, ``\\left``/``\\right``, a
comment, a blank line), so the Python loop sees about one token per 100 characters of real
LaTeX, which is what makes the scan fast (evals/BENCHMARKS.md, "Design measurements").

Two modes:

* **document** (the text starts with ``\\documentclass``, or the caller asks): every closer must
  match an opener in the text and everything must be closed at the end (stray/unclosed).
* **window** (default for samples and held-out windows, which start and stop mid-document):
  the text is judged as a piece of a valid document. A closer when nothing opened *in the
  text* is open closes something opened before the window ("outer" close, legal), and what is
  still open at the end is cut by the length limit (counted, not an error). Only what no
  surrounding text could repair is an error: ``\\end{lemma}`` while ``proof`` is open, a brace
  closing across an environment, a paragraph break inside math... A window may also start
  inside inline or display math; when the plain reading finds errors the scan is redone
  assuming the text starts inside ``$`` or ``$$``, and the reading with fewest errors wins
  (readings that can no longer win stop early, so a clean window costs one pass).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# environments whose body is not LaTeX to parse (the Stacks preamble defines reference, slogan
# and history as \comment ... \endcomment, which skips its body like the comment package)
VERBATIM_ENVS = frozenset({"verbatim", "verbatim*", "Verbatim", "lstlisting", "minted", "comment",
                           "filecontents", "filecontents*", "reference", "slogan", "history"})
# environments that put their body in (display) math mode
MATH_ENVS = frozenset({"equation", "equation*", "align", "align*", "alignat", "alignat*", "eqnarray",
                       "eqnarray*", "gather", "gather*", "multline", "multline*", "flalign", "flalign*",
                       "displaymath", "math", "xalignat", "xxalignat"})
# environments that may only start in paragraph (text) mode: beginning one inside math is an error
PARAGRAPH_ENVS = MATH_ENVS | frozenset({
    "document", "proof", "lemma", "theorem", "proposition", "corollary", "definition", "example",
    "exercise", "remark", "remarks", "situation", "conjecture", "enumerate", "itemize", "description",
    "quote", "quotation", "center", "flushleft", "flushright", "abstract", "verbatim", "multicols"})
MATH_OPENERS = {"$": "$", "$$": "$$", "\\[": "\\]", "\\(": "\\)"}  # opener -> closer

# The scanner matches "skip, then one token" from the current position. The skip part eats, in
# one call of the regex engine, everything that cannot change the structure: text, commands,
# escapes, single newlines, groups {...} without structure inside (nested three deep) and, in
# text mode, whole formulas $...$ without structure inside. About one token per 130 characters
# of real LaTeX reaches the Python loop.
_STRUCT_CMDS = r"(?:left|right|begin|end|verb)(?![a-zA-Z@])"
_TEXT_CMDS = r"(?:text(?:rm|it|bf|tt|sf|sc|up|md|sl|normal)?|mbox|hbox|fbox|intertext|tag)(?![a-zA-Z@])"
_CMD_OK = r"\\(?!" + _STRUCT_CMDS + r")[a-zA-Z@]+"
_CMD_OK_MATH = r"\\(?!" + _STRUCT_CMDS + "|" + _TEXT_CMDS + r")[a-zA-Z@]+"
_ESC_OK = r"\\[^a-zA-Z@\n\[\]()]"  # \\ \{ \} \$ \% \, ...: everything but the math delimiters
_ATOM = r"[^{}\\$%\n]+|" + _CMD_OK + "|" + _ESC_OK + r"|\n(?![ \t]*\n)"
_G1 = r"\{(?>" + _ATOM + r")*\}"
_G2 = r"\{(?>" + _ATOM + "|" + _G1 + r")*\}"
PLAIN_GROUP = r"\{(?>" + _ATOM + "|" + _G2 + r")*\}"
PLAIN_FORMULA = r"\$(?!\$)(?>" + _ATOM + "|" + PLAIN_GROUP + r")*\$(?!\$)"
_TOKEN = (
    r"([{}]"
    r"|\$\$?"
    r"|\\(?:begin|end)[ \t]*\{[^{}\\\n%]*\}?"
    r"|\\(?:left|right)(?![a-zA-Z@])"
    r"|\\" + _TEXT_CMDS + r"[ \t]*\{"
    r"|\\verb\*?"
    r"|\\[\[\]()]"
    r"|%"  # a comment: the scanner jumps to the end of the line
    r"|\n[ \t]*\n"  # a blank line: a paragraph break
    r"|[\s\S])"  # anything else the skip part stopped at (\begin without {, a lone \ ...): ignored
)
_SKIP_TEXT = r"(?>[^{}\\$%\n]+|" + _CMD_OK + "|" + _ESC_OK + r"|\n(?![ \t]*\n)|" + PLAIN_GROUP + "|" + PLAIN_FORMULA + ")*+"
_SKIP_MATH = (r"(?>[^{}\\$%\n]+|" + _CMD_OK_MATH + r"|\\" + _TEXT_CMDS + r"[ \t]*" + PLAIN_GROUP + "|"
              + _ESC_OK + r"|\n(?![ \t]*\n)|" + PLAIN_GROUP + ")*+")
TOKEN_TEXT = re.compile(_SKIP_TEXT + _TOKEN)
TOKEN_MATH = re.compile(_SKIP_MATH + _TOKEN)

# error counters (lower is better); the *_open_at_end ones are truncation, not errors
ERROR_KEYS = ("env_mismatched", "env_unclosed", "env_stray", "env_malformed",
              "brace_errors", "math_errors", "leftright_errors")
FRAME_ERROR = {"env": ("env_unclosed", "env_unclosed"), "{": ("brace_unclosed", "brace_errors"),
               "T{": ("brace_unclosed", "brace_errors"), "left": ("left_unclosed", "leftright_errors"),
               "$": ("math_unclosed", "math_errors"), "$$": ("math_unclosed", "math_errors"),
               "\\[": ("math_unclosed", "math_errors"), "\\(": ("math_unclosed", "math_errors")}
BRACES = ("{", "T{")
MATH_KINDS = ("$", "$$", "\\[", "\\(")


def frame_opener(kind: str, name: str | None) -> str:
    """The source text that opens a frame (for completing a window before compiling it)."""
    if kind == "env":
        return f"\\begin{{{name}}}"
    return {"{": "{", "T{": "\\text{", "left": "\\left."}.get(kind, kind)


def frame_closer(kind: str, name: str | None) -> str:
    """The source text that closes a frame."""
    if kind == "env":
        return f"\\end{{{name}}}"
    if kind in BRACES:
        return "}"
    if kind == "left":
        return "\\right."
    return MATH_OPENERS[kind]


@dataclass
class ScanResult:
    """What one scan found. ``issues`` are (kind, message, offset) triples."""

    counts: dict[str, int]
    issues: list[tuple[str, str, int]]
    open_frames: list[tuple[str, str | None, int, bool]]  # (kind, name, offset, math before) at the end
    outer: list[tuple[str, str | None]]  # frames the window closes that opened before it, in order
    document: bool
    start: str  # how the window was assumed to start: "text", "$" or "$$"
    skipped: list[tuple[int, int]] = field(default_factory=list)  # comment and verbatim spans
    cut: int = -1  # where a token cut by the end of the text starts (-1: none)

    errors: int = 0  # the sum of the ERROR_KEYS counts

    def complete(self, text: str) -> tuple[str, str]:
        """(completed text, prefix) where completed = prefix + text + closers: the window made a
        closed piece of LaTeX, with openers of what it closes from before and closers of what it
        leaves open (innermost first). A token cut by the end of the text is dropped."""
        body = text[:self.cut] if self.cut >= 0 else text
        tail = len(body) - len(body.rstrip("\\"))
        if tail % 2:  # a lone backslash at the end would escape the first closer
            body += " "
        prefix = "".join(frame_opener(k, n) + ("\n" if k == "env" else " ") for k, n in reversed(self.outer))
        out = [prefix, body]
        if self.open_frames and not body.endswith("\n"):
            out.append("\n")  # ends a comment on the last line; one newline is only a space
        for k, n, _, _ in reversed(self.open_frames):
            out.append(frame_closer(k, n) + ("\n" if k == "env" else " "))
        return "".join(out), prefix


class _Abort(Exception):
    """More errors than the caller cares about: this reading already lost."""


def _scan(text: str, document: bool, start: str, limit: int | None = None) -> ScanResult | None:
    """One reading of ``text`` assuming it starts in ``start`` mode; None once it has more
    than ``limit`` errors (a reading that cannot win any more)."""
    try:
        return _read(text, document, start, limit)
    except _Abort:
        return None


def _read(text: str, document: bool, start: str, limit: int | None) -> ScanResult:
    counts = dict.fromkeys(ERROR_KEYS, 0)
    budget = [limit if limit is not None else -1]
    issues: list[tuple[str, str, int]] = []
    outer: list[tuple[str, str | None]] = []
    skipped: list[tuple[int, int]] = []
    # frames: (kind, name, offset, math-mode before it); offset -1 marks the assumed outer frame
    stack: list[tuple[str, str | None, int, bool]] = []
    math = False
    if start != "text":
        stack.append((start, None, -1, False))
        math = True
    n = len(text)
    cut = -1

    def err(kind: str, key: str, msg: str, off: int) -> None:
        counts[key] += 1
        if budget[0] == 0:
            raise _Abort
        budget[0] -= 1
        issues.append((kind, msg, off))

    def unwind(i: int, off: int) -> None:
        """Drop the frames above index i, each reported as left open (closed over at off)."""
        while len(stack) > i + 1:
            kind, name, where, _ = stack.pop()
            if where < 0:
                outer.append((kind, name))
            ik, key = FRAME_ERROR[kind]
            err(ik, key, f"{frame_opener(kind, name)} opened at {max(where, 0)} is still open here", off)

    def pop() -> bool:
        kind, name, where, before = stack.pop()
        if where < 0:
            outer.append((kind, name))
        return before

    def only_outer() -> bool:  # nothing opened inside the text is open
        return not stack or (len(stack) == 1 and stack[0][2] < 0)

    def innermost(kinds: tuple[str, ...]) -> int:
        for i in range(len(stack) - 1, -1, -1):
            if stack[i][0] in kinds:
                return i
        return -1

    def math_frame() -> int:  # the frame that set the current mode
        for i in range(len(stack) - 1, -1, -1):
            k = stack[i][0]
            if k in MATH_KINDS or k == "T{" or (k == "env" and stack[i][1] in MATH_ENVS):
                return i
        return -1

    pos = 0
    text_match, math_match = TOKEN_TEXT.match, TOKEN_MATH.match
    while pos < n:
        m = (math_match if math else text_match)(text, pos)
        if m is None:  # the skip part reached the end of the text
            break
        off = m.start(1)
        pos = m.end()
        tok = m.group(1)
        c = tok[0]
        if c == "{":
            stack.append(("{", None, off, math))
        elif c == "}":
            if stack and stack[-1][0] in BRACES and stack[-1][2] >= 0:
                math = stack.pop()[3]
            else:
                i = innermost(BRACES)
                if i >= 0:
                    unwind(i, off)
                    math = pop()
                elif not document and only_outer():
                    outer.append(("{", None))
                else:
                    err("brace_unmatched", "brace_errors", "} closes nothing opened here", off)
        elif c == "$":
            top = stack[-1][0] if stack else None
            if len(tok) == 1:
                if top == "$":
                    math = pop()
                elif not math:
                    stack.append(("$", None, off, math))
                    math = True
                else:
                    j = math_frame()
                    if j >= 0 and stack[j][0] == "$":
                        unwind(j, off)
                        math = pop()
                    else:
                        err("math_dollar_in_display", "math_errors", "$ inside display math", off)
            elif top == "$$":
                math = pop()
            elif not math:
                stack.append(("$$", None, off, math))
                math = True
            else:
                j = math_frame()
                jk = stack[j][0] if j >= 0 else None
                if jk in ("$", "$$"):
                    unwind(j, off)
                    math = pop()
                    if jk == "$":  # $a$$b$: closes one inline formula and opens the next
                        stack.append(("$", None, off + 1, math))
                        math = True
                else:
                    err("math_dollar_in_display", "math_errors", "$$ inside display math", off)
        elif c == "%":
            eol = text.find("\n", off)
            pos = n if eol < 0 else eol
            skipped.append((off, pos))
        elif c == "\n":
            if len(tok) > 1 and math:  # a blank line ends a paragraph: math may not span it
                j = math_frame()
                if j >= 0 and stack[j][0] != "T{":
                    err("math_paragraph", "math_errors", "paragraph break (blank line) inside math", off)
                    unwind(j, off)
                    if stack[j][0] in MATH_KINDS:
                        math = pop()
        elif c != "\\" or len(tok) == 1:
            continue  # a character the skip part stopped at without meaning (e.g. a lone \)
        elif tok[1] == "b" or tok[1] == "e":
            if tok[-1] != "}":
                if pos >= n:
                    cut = off
                else:
                    err("env_malformed", "env_malformed", f"unterminated environment name {tok!r}", off)
                continue
            name = tok[tok.index("{") + 1:-1].strip()
            if tok[1] == "b":
                if name in VERBATIM_ENVS:  # jump over the body to its \end
                    end = text.find(f"\\end{{{name}}}", pos)
                    stop = n if end < 0 else end + len(name) + 6
                    skipped.append((pos, stop))
                    if end < 0:
                        stack.append(("env", name, off, math))
                    pos = stop
                    continue
                if math and name in PARAGRAPH_ENVS:
                    j = math_frame()
                    err("env_in_math", "math_errors", f"\\begin{{{name}}} inside math", off)
                    if j >= 0 and stack[j][0] in MATH_KINDS:
                        unwind(j, off)
                        math = pop()
                stack.append(("env", name, off, math))
                if name in MATH_ENVS:
                    math = True
                continue
            k = innermost(("env",))
            if k < 0:
                if not document and all(f[2] < 0 for f in stack):
                    if stack and name in MATH_ENVS:  # the assumed outer display math was this one
                        stack.clear()
                        math = False
                    elif stack and name in PARAGRAPH_ENVS:  # the assumed outer math must close first
                        unwind(-1, off)
                        math = False
                    outer.append(("env", name))
                else:
                    unwind(-1, off)
                    math = False
                    err("env_stray", "env_stray", f"\\end{{{name}}} closes nothing opened here", off)
                continue
            if stack[k][1] != name:
                deeper = [i for i in range(k) if stack[i][0] == "env" and stack[i][1] == name]
                if deeper:
                    k = deeper[-1]
                elif stack[k][1] == "document":  # inside the document nothing else is open
                    err("env_stray", "env_stray", f"\\end{{{name}}} closes nothing opened here", off)
                    continue
                else:
                    err("env_mismatch", "env_mismatched", f"\\begin{{{stack[k][1]}}} ended by \\end{{{name}}}", off)
            unwind(k, off)
            math = pop()
        elif tok == "\\left":
            if math:
                stack.append(("left", None, off, math))
            else:
                err("left_outside_math", "leftright_errors", "\\left outside math", off)
        elif tok == "\\right":
            if stack and stack[-1][0] == "left":
                math = pop()
            else:
                j, i = math_frame(), innermost(("left",))
                if i > j and i >= 0:
                    unwind(i, off)
                    math = pop()
                elif not document and only_outer() and math:
                    outer.append(("left", None))
                else:
                    err("right_unmatched", "leftright_errors", "\\right without \\left", off)
        elif tok[-1] == "{":  # \text{ and friends: text mode inside math
            stack.append(("T{" if math else "{", None, off, math))
            math = False
        elif tok[1] == "v":  # \verb: jump over the delimited argument (to the end of the line at most)
            if pos < n:
                delim = text[pos]
                end = text.find(delim, pos + 1)
                eol = text.find("\n", pos + 1)
                stop = end + 1 if end >= 0 and (eol < 0 or end < eol) else (n if eol < 0 else eol)
                skipped.append((pos, stop))
                pos = stop
        elif tok[1] == "[" or tok[1] == "(":
            if math:
                err("math_nested", "math_errors", f"{tok} inside math", off)
            else:
                stack.append((tok, None, off, math))
                math = True
        else:  # \] or \)
            want = "\\[" if tok[1] == "]" else "\\("
            j = math_frame()
            if j >= 0 and stack[j][0] == want:
                unwind(j, off)
                math = pop()
            elif not document and only_outer() and not math:
                outer.append((want, None))
            else:
                err("math_unmatched", "math_errors", f"{tok} without {want}", off)
    for kind, name, where, _ in stack:
        if where < 0:
            outer.append((kind, name))
    if document:
        unwind(-1, n)
        stack.clear()
    counts["env_open_at_end"] = sum(1 for f in stack if f[0] == "env")
    counts["open_at_end"] = len(stack)
    return ScanResult(counts, issues, list(stack), outer, document, start, skipped, cut, len(issues))


_DOCUMENT_START = re.compile(r"\s*\\(?:documentclass|input\{preamble\})")


def is_document(text: str) -> bool:
    """A text that starts a document is judged strictly; anything else as a window of one."""
    return _DOCUMENT_START.match(text) is not None


def scan(text: str, document: bool | None = None, start: str | None = None) -> ScanResult:
    """Scan ``text``; ``document`` None decides by how it starts (see :func:`is_document`);
    ``start`` None tries the text, inline-math and display-math starts of a window."""
    doc = is_document(text) if document is None else document
    if doc or start is not None:
        return _scan(text, doc, start or "text")
    # a window may start inside inline or display math: quick tries first (each stops at its
    # first error), then the full readings, each cut short once it cannot beat the best so far
    starts = ("text", "$", "$$")
    for start in starts:
        r = _scan(text, False, start, limit=0)
        if r is not None:
            return r
    best = _scan(text, False, "text")
    for start in starts[1:]:
        alt = _scan(text, False, start, limit=best.errors - 1)
        if alt is not None:
            best = alt
    return best

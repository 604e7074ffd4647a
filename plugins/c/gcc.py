"""``gen eval c --gcc``: does gcc accept the sample's syntax, with or without its headers?

With every ``#include`` found (``--include-dir`` folders and gcc's own search path), the answer
is plain ``gcc -fsyntax-only``. A generated kernel file includes ``<linux/...>`` headers that no
user has at hand, and without them gcc stops on every kernel type, attribute and macro: the
real kernel's own text "failed" 100% of the time, which told a user nothing. So when includes
are missing, the missing lines are left out and gcc runs in rounds, each round turning the
errors that a missing declaration explains into stub declarations (the way pycparser's fake
headers do, but learnt from the text itself):

* ``expected ... before 'NAME'`` where the word before NAME is an identifier the text never
  declares (``static int __init f(void)``): that word becomes an empty macro; after ``(TYPE)``
  (``(u16) x``) or before ``*`` in a parameter list, a ``typedef``;
* NAME itself followed by ``(`` (``__acquires(RCU)``, ``__aligned(8)``, ``BTF_ID(struct, x)``):
  NAME becomes an empty function-like macro;
* an error inside the arguments of a call of an undeclared NAME, on its line or up to seven
  before (``container_of(p, struct x, m)`` over two lines): NAME becomes a macro of ``0``, or at file scope
  empty, or, when a ``{`` follows its line (``SYSCALL_DEFINE1(acct, ...)``), a function head;
* ``expected ';'`` after a line that is just ``NAME(...)`` or before its ``{``
  (``list_for_each(p, h) {``, ``for_each_vma(v, m)`` over one statement): a loop-header macro;
* unknown types, undeclared or implicitly declared names, incomplete structs: ignored (they are
  what a header would declare, not syntax).

What is left after at most STUB_ROUNDS rounds is a syntax error (0.0); a text whose only errors
were explained passes the syntax check (1.0) with a "missing header" note: its syntax is fine as
far as gcc can tell without the headers, and it is never reported as failing. Measured on the
shared kernel subset in evals/BENCHMARKS.md (real files, and the same files corrupted:
``python -m gen.evals.agreement gcc``).
"""

from __future__ import annotations

import re
import shutil
import subprocess

from . import headers as c_headers

STUB_ROUNDS = 8
_CAT = "#define GEN_CAT2(a, b) a##b\n#define GEN_CAT(a, b) GEN_CAT2(a, b)\n"  # unique names for stub functions
_ERROR = re.compile(r"^<stdin>:(\d+):(\d+): (?:fatal )?error: (.*)$", re.M)
# errors a missing declaration causes: what a header would have declared
_DECL = re.compile(r"unknown type name|undeclared|implicit declaration|incomplete type|has no member|"
                   r"storage size|invalid use of undefined|request for member|conflicting types|"
                   r"too (?:many|few) arguments|invalid application of|not a structure|"
                   r"initializer element is not constant|variably modified|invalid type argument|"
                   r"subscripted value|called object|invalid operands|incompatible type|lvalue required|"
                   r"is not a function|size of array|void value|invalid storage class|"
                   r"requested alignment|bit-field|case label does not reduce|section attribute|extra brace group|"
                   r"field name not in record|array type has incomplete|follows non-static|"
                   r"specifier-qualifier-list before '[A-Za-z_]|redefinition of|not computable at load time|"
                   r"array index in initializer not of integer|flexible array member")
_BEFORE_NAME = re.compile(r"^expected .* before '([A-Za-z_]\w*|\*)'(?: token)?$")
_LOOP_HEAD = re.compile(r"^\s*([A-Za-z_]\w*)\s*\(")
_LONE_CALL = re.compile(r"^\s+([A-Za-z_]\w*)\s*\([^;{}]*\)\s*$")  # an indented call line with no `;`
_CAST_BEFORE = re.compile(r"\(\s*([A-Za-z_]\w*)[\s*]*\)\s*$")
_WORD_BEFORE = re.compile(r"([A-Za-z_]\w*)[\s*]*$")
C_WORDS = frozenset("""auto break case char const continue default do double else enum extern float for goto if
inline int long register restrict return short signed sizeof static struct switch typedef union unsigned void
volatile while _Bool _Complex _Atomic _Noreturn _Thread_local __attribute__ asm __asm__ typeof""".split())


def _run(gcc: str, text: str, dirs: tuple[str, ...], timeout: float) -> tuple[int, list[tuple[int, int, str]], str]:
    proc = c_headers.run_cc(gcc, ["-fsyntax-only", "-w"], text, dirs, timeout)
    err = proc.stderr.decode("utf-8", "replace")
    return proc.returncode, [(int(a), int(b), c) for a, b, c in _ERROR.findall(err)], err


def _stubs(errors: list[tuple[int, int, str]], lines: list[str], known: set[str]) -> tuple[list[str], list]:
    """New stub lines for the errors a missing declaration explains; the errors it does not."""
    new, left = [], []
    for line, col, msg in errors:
        if _DECL.search(msg):
            continue
        stub = _stub_for(lines, line, col, msg, known)
        if stub is None:
            left.append((line, col, msg))
        else:
            new.append(stub)
    return new, left


def _stub_for(lines: list[str], line: int, col: int, msg: str, known: set[str]) -> str | None:
    """The stub declaration that explains one gcc error, or None (a syntax error)."""
    src = lines[line - 1] if 0 < line <= len(lines) else ""
    taken = C_WORDS | known  # never stubbed: C's own words and names already stubbed
    m = _BEFORE_NAME.match(msg)
    word = _WORD_BEFORE.search(src[:max(col - 1, 0)]) if m else None
    if word and word.group(1) not in taken:
        # `char __user *p`, `int __init f`: an attribute macro; `(u64 *p` after '(' or ',': a type
        head = src[:word.start()].rstrip()
        typ = m.group(1) == "*" and (not head or head[-1] in "(,;{")
        return f"typedef int {word.group(1)};" if typ else f"#define {word.group(1)}"
    cast = _CAST_BEFORE.search(src[:max(col - 1, 0)]) if m else None
    if cast and cast.group(1) not in taken:
        return f"typedef int {cast.group(1)};"  # `(u16) etime`: a cast to a type a header declares
    if m and m.group(1) != "*" and m.group(1) not in taken:
        at = src.find(m.group(1), max(col - 1, 0))
        if at >= 0 and src[at + len(m.group(1)):].lstrip().startswith("("):
            return f"#define {m.group(1)}(...)"  # `__acquires(RCU)`, `__aligned(8)`, `BTF_ID(struct, x)`
    # the call still open where the error is, on this line or the ones before (`container_of(p,\n struct x, m)`)
    context = "\n".join(lines[max(line - 8, 0):line - 1] + [src[:max(col - 1, 0)]])
    call = _open_call(context, len(context) + 1)
    if call and call not in taken:
        start = context.rfind(call + "(")
        before = context[context.rfind("\n", 0, start) + 1:start]
        if not before and _next_code(lines, line).startswith("{"):  # `SYSCALL_DEFINE1(acct, ...)` then `{`
            return f"#define {call}(...) int GEN_CAT(gen_stub_, __COUNTER__)(void)"
        # an expression wherever a statement may stand (`0;` is one); empty only at file scope
        return f"#define {call}(...)" + ("" if not before else " 0")
    loop = _LOOP_HEAD.match(src)
    if msg.startswith("expected ';' before '{'") and loop and loop.group(1) not in taken:
        return f"#define {loop.group(1)}(...) for (;;)"
    prev = next((ln for ln in reversed(lines[max(line - 4, 0):line - 1]) if ln.strip()), "")
    lone = _LONE_CALL.match(prev)
    if msg.startswith("expected ';' before") and lone and lone.group(1) not in taken:
        return f"#define {lone.group(1)}(...) for (;;)"  # `for_each_vma(vmi, vma)` over one statement
    head = _LOOP_HEAD.match(prev)
    if "before '{'" in msg and head and not prev[:1].isspace() and head.group(1) not in taken:
        # `SYSCALL_DEFINE1(acct, ...)` then `{`: a macro that writes a function's head
        return f"#define {head.group(1)}(...) int GEN_CAT(gen_stub_, __COUNTER__)(void)"
    return None


def _next_code(lines: list[str], line: int) -> str:
    """The first non-blank line after line ``line`` (1-based), stripped."""
    return next((ln.strip() for ln in lines[line:line + 4] if ln.strip()), "")


def _open_call(src: str, col: int) -> str | None:
    """The name of the innermost call still open at column ``col`` of a line, if any."""
    depth, i = 0, min(col - 1, len(src))
    while i > 0:
        i -= 1
        if src[i] == ")":
            depth += 1
        elif src[i] == "(":
            if depth == 0:
                m = re.search(r"([A-Za-z_]\w*)\s*$", src[:i])
                return m.group(1) if m else None
            depth -= 1
    return None


def gcc_syntax(text: str, include_dirs: tuple[str, ...] = (), timeout: float = 10.0) -> tuple[float | None, str]:
    """(1.0, "") when gcc accepts the text; (1.0, why) when its only errors are what missing headers
    would declare; (0.0, first syntax error); (None, why) when gcc is missing (module docstring)."""
    gcc = shutil.which("gcc")
    if gcc is None:
        return None, "gcc not installed"
    inc = c_headers.resolve(text, include_dirs, c_headers.system_dirs(gcc))
    # includes the checks did not locate are left out (their lines stay blank, so gcc's line
    # numbers still match): gcc reads no file a sample names on its own (`#include "/etc/shadow"`)
    text = c_headers.found_includes_only(text, inc)
    # no include at all: a window of a file whose head (and headers) the text does not show
    stub = bool(inc.missing) or not inc.found
    lines = text.split("\n")
    stubs: list[str] = []
    known: set[str] = set()
    left: list = []
    try:
        for _ in range(STUB_ROUNDS if stub else 1):
            prefix = _CAT + "\n".join(stubs) + "\n#line 1\n" if stubs else ""
            code, errors, err = _run(gcc, prefix + text, include_dirs, timeout)
            if code == 0:
                return 1.0, ""
            if not stub:
                first = errors[0] if errors else (0, 0, (err.strip().splitlines() or ["gcc failed"])[0])
                return 0.0, f"line {first[0]}: {first[2]}"[:200]
            new, left = _stubs(errors, lines, known)
            new = [s for s in dict.fromkeys(new) if s not in stubs]
            if not new:
                break
            stubs += new
            known.update(re.findall(r"^(?:#define|typedef int) (\w+)", "\n".join(new), re.M))
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"gcc did not run: {exc}"
    if left:
        return 0.0, f"line {left[0][0]}: {left[0][2]}"[:200]
    what = f"missing header(s) {', '.join(inc.missing[:3])}" if inc.missing else "no #include in the text"
    return 1.0, f"{what}: gcc's only errors are what a header would declare (pass --include-dir DIR)"

"""Tree-sitter checks of the C domain: syntax damage and the semantic slips the blog names.

A sample is parsed in pieces of a few KB cut at top-level boundaries (a blank line followed by
a line starting in column 0): tree-sitter's error recovery collapses a long broken text into
one ERROR node, and pieces keep each error local. All node walking happens in tree-sitter
queries (C code); Python only sorts captures into functions (speed: evals/BENCHMARKS.md, "Design measurements").

Scope model (deliberately simple, and lenient where real code would be flagged):
* a function's names are its parameters and every declaration anywhere in its body;
* the sample's globals are every identifier mentioned outside function bodies (declarations,
  initialisers, macro invocations such as ``DEFINE_MUTEX(lock);``, ``#define`` names);
* with corpus statistics (``--against``) a name is known if the training corpus uses it as a
  global (outside a function, or free in a function that does not declare it): kernel APIs,
  macros and globals are known, a stray local such as ``rw`` is not;
* names the text's headers declare are known (:mod:`.headers`: include directories, the
  compiler's system headers, the corpus's own headers). A name known nowhere is *undeclared*
  when every include was found (what clang says), and *unknown* when an include was found
  nowhere (it could come from there). A text with no include at all is a window of a file:
  its callees and ALL_CAPS names are unknown (the file's missing head may declare them), its
  other names undeclared (the blog's ``rw``).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field

import tree_sitter as ts

from . import grammar as G
from . import names as N


def pieces(text: str, target: int = G.PIECE_CHARS) -> Iterator[tuple[int, str]]:
    """(offset, piece) cuts of ``text`` of about ``target`` characters at top-level boundaries."""
    start = 0
    for m in G.BOUNDARY.finditer(text, target):
        if m.start() - start >= target:
            yield start, text[start:m.start() + 1]
            start = m.start() + 1
    if start < len(text):
        yield start, text[start:]


@dataclass
class Tally:
    """Counts over a whole sample, summed across pieces; metrics are ratios of these."""

    bytes: int = 0
    error_bytes: int = 0
    missing: int = 0
    defs: int = 0
    clean_defs: int = 0
    names_used: int = 0  # distinct (function, name) uses
    undeclared: int = 0
    unknown: int = 0  # free names that may come from a header that is not available
    locals: int = 0
    unused: int = 0
    void_fns: int = 0
    void_returns: int = 0
    value_fns: int = 0
    falls_off: int = 0
    self_cmp: int = 0
    globals: set[bytes] = field(default_factory=set)  # names mentioned outside function bodies
    # free names: name, offset, callee, the function's name
    pending: list[tuple[bytes, int, bool, bytes]] = field(default_factory=list)
    issues: list[tuple[str, int, str]] = field(default_factory=list)  # (kind, char offset, message)
    returning: frozenset[bytes] = frozenset()  # macros of the text whose body returns


def name_of(node: ts.Node | None) -> ts.Node | None:
    """The identifier a declarator declares (through pointers, arrays, initialisers, parens)."""
    for _ in range(16):
        if node is None or node.type == "identifier":
            return node
        nxt = node.child_by_field_name("declarator")
        node = nxt if nxt is not None else (node.named_children[0] if node.named_child_count else None)
    return None


def _is_function(decl: ts.Node) -> bool:
    """A declarator of a function (a local prototype or a misparsed macro call), not a variable."""
    node: ts.Node | None = decl
    for _ in range(16):
        if node is None or node.type == "identifier":
            return False
        if node.type == "function_declarator":
            return True
        node = node.child_by_field_name("declarator")
    return False


def _ends_flow(node: ts.Node | None, returning: frozenset[bytes] = frozenset()) -> bool:
    """True when control cannot run past ``node`` (return, goto, noreturn call, endless loop,
    a macro of ``returning``)."""
    if node is None:
        return True  # unknown: never flag
    t = node.type
    if t in ("return_statement", "goto_statement", "ERROR"):
        return True
    if t == "compound_statement":
        stmts = [c for c in node.named_children if c.type != "comment" and not _empty(c)]
        return _ends_flow(stmts[-1], returning) if stmts else False
    if t == "if_statement":
        alt = node.child_by_field_name("alternative")
        return alt is not None and _ends_flow(node.child_by_field_name("consequence"), returning) and _ends_flow(
            alt.named_children[-1] if alt.named_child_count else None, returning)
    if t == "expression_statement":
        call = node.named_children[0] if node.named_child_count else None
        if call is not None and call.type == "identifier":
            return call.text in returning
        if call is not None and call.type == "call_expression":
            fn = call.child_by_field_name("function")
            return fn is not None and (fn.text.decode("utf-8", "replace") in G.NORETURN or fn.text in returning)
        return False
    if t in ("while_statement", "do_statement"):
        cond = node.child_by_field_name("condition")
        return cond is not None and cond.text.strip(b"() \t\n") in (b"1", b"true")
    if t == "for_statement":
        return node.child_by_field_name("condition") is None
    if t == "switch_statement":
        return b"default" in node.text
    if t == "labeled_statement":
        return _ends_flow(node.named_children[-1] if node.named_child_count else None, returning)
    if t in G.CONDITIONALS:  # any branch ending is enough: one configuration may return
        return any(_ends_flow(c, returning) for c in node.named_children[-2:])
    return False


class _Fn:
    __slots__ = ("node", "body", "start", "body_start", "end", "names", "uses", "locals", "complete", "pseudo",
                 "name")

    def __init__(self, node: ts.Node, body: ts.Node, cut: int) -> None:
        self.node, self.body = node, body
        self.pseudo = node is body  # a bare top-level block: no head to check
        ident = None if self.pseudo else name_of(node.child_by_field_name("declarator"))
        self.name = ident.text if ident is not None else b""
        self.start, self.body_start, self.end = node.start_byte, body.start_byte, body.end_byte
        self.names: set[bytes] = set()  # params and locals
        self.locals: dict[bytes, int] = {}  # local name -> byte offset of its declaration
        self.uses: dict[bytes, int] = {}  # name -> first use offset (callees included)
        last = body.child(body.child_count - 1) if body.child_count else None
        # cut by the sample's end (closed only by the repair text): its later lines are not there
        self.complete = last is not None and last.type == "}" and not last.is_missing and self.end <= cut


def analyze_piece(src: bytes, tally: Tally, base: int, text: str, free_out: bool = False,
                  cut: int | None = None, scopes_out: dict[bytes, set[bytes]] | None = None) -> None:
    """Add one piece's counts to ``tally``. ``base``/``text`` map byte offsets to the sample's
    characters for issues. ``free_out``: only collect names (corpus statistics). ``cut``: bytes
    from here on are repair text that closes what the sample's cut left open, not sample text."""
    root = G.PARSER.parse(src).root_node
    cursor = ts.QueryCursor(G.Q_FREE if free_out else G.Q_MAIN)
    # matches start no deeper than this: a long operator chain (`a<a>a<...`, 10,000 deep) made
    # the query quadratic (74 s for 30 KB); real code's captures sit far above this depth
    cursor.set_max_start_depth(G.MAX_START_DEPTH)
    caps = cursor.captures(root)
    ascii_ = text.isascii()

    def at(byte: int) -> int:
        return base + (byte if ascii_ else len(src[:byte].decode("utf-8", "ignore")))

    cut = len(src) if cut is None else cut
    tally.bytes += cut
    top = _toplevel(root)
    if not free_out:
        _syntax(top, caps, tally, at, cut)
    for d in caps.get("tdef", []):  # a typedef name is declared (``sizeof(u8)`` uses it as a name)
        for _ in range(16):
            if d is None or d.type in ("type_identifier", "primitive_type"):
                break
            d = d.child_by_field_name("declarator")
        if d is not None:
            tally.globals.add(src[d.start_byte:d.end_byte])
    # an enum constant is declared where its enum is, a function's own included (`enum { A, B } x;`)
    tally.globals.update(src[e.start_byte:e.end_byte] for e in caps.get("enum", []))
    fns = _functions(caps, top, cut)
    param_at = _declarations(caps, src, fns)
    _uses(caps, src, fns, param_at, tally, at if not free_out else None)
    if scopes_out is not None:
        for f in fns:
            scopes_out.setdefault(f.name, set()).update(f.names)
    if free_out:
        return
    starts = [f.start for f in fns]
    retvals: dict[int, int] = {}  # function start -> first value-return offset
    for r in caps.get("retval", []):
        i = bisect_right(starts, r.start_byte) - 1
        if i >= 0 and r.start_byte < fns[i].end:
            retvals.setdefault(fns[i].start, r.start_byte)
    for f in fns:
        _function(f, src, tally, at, retvals.get(f.start))
    for cmp in caps.get("cmp", []):
        left, right = cmp.child_by_field_name("left"), cmp.child_by_field_name("right")
        if left is None or right is None or left.end_byte - left.start_byte != right.end_byte - right.start_byte:
            continue  # spacing inside an operand is rare enough: equal texts have equal lengths
        lt = src[left.start_byte:left.end_byte]
        if lt == src[right.start_byte:right.end_byte] and b"(" not in lt and N.compiled_here(cmp):
            tally.self_cmp += 1
            tally.issues.append(("self_comparison", at(cmp.start_byte),
                                 f"compares '{lt.decode('utf-8', 'replace')}' with itself"))


def _functions(caps: dict, top: list[ts.Node], cut: int) -> list[_Fn]:
    """Function definitions in source order; a top-level block is a function whose head
    tree-sitter could not parse (``BPF_CALL_3(...) {``)."""
    found = [(n, n.child_by_field_name("body")) for n in caps.get("fn", [])]
    found += [(b, b) for b in top if b.type == "compound_statement"]
    fns: list[_Fn] = []
    for n, body in sorted(found, key=lambda nb: nb[0].start_byte):
        # a macro loop (``for_each_cpu(cpu) {``) can parse as a function inside a function:
        # it belongs to the outer one
        if not fns or n.start_byte >= fns[-1].end:
            fns.append(_Fn(n, body, cut))
    return fns


def _declarations(caps: dict, src: bytes, fns: list[_Fn]) -> set[int]:
    """Record each function's parameters and locals; return where parameter names are."""
    starts = [f.start for f in fns]
    param_at: set[int] = set()
    for key in ("decl", "param"):
        for d in caps.get(key, []):
            name = name_of(d)
            if name is None:
                continue
            pos = name.start_byte
            if key == "param":
                param_at.add(pos)
            i = bisect_right(starts, pos) - 1
            if i < 0 or pos >= fns[i].end:
                continue
            f, nm = fns[i], src[pos:name.end_byte]
            if not nm or nm in G.C_KEYWORDS:  # a MISSING identifier, or a misparse
                continue
            f.names.add(nm)
            if key == "decl" and pos >= f.body_start and not _is_function(d):
                parent = d.parent
                if parent is None or not any(a in parent.text for a in G.UNUSED_ATTRS):
                    f.locals.setdefault(nm, pos)
    return param_at


def _uses(caps: dict, src: bytes, fns: list[_Fn], param_at: set[int], tally: Tally, at) -> None:
    """Sort every identifier into a function's uses (free ones to ``tally.pending``) or the
    sample's globals. ``at`` None: corpus statistics, no offsets needed."""
    errors = _merged(caps.get("error", []))
    err_starts = [a for a, _ in errors]
    callees = {n.start_byte for n in caps.get("callee", [])}
    globals_, pending = tally.globals, tally.pending
    fi, nf = 0, len(fns)
    ids = caps.get("id", [])
    ids.sort(key=G.START)  # captures of a multi-pattern query are not in source order
    for node in ids:  # in source order: sweep through the functions
        s = node.start_byte
        nm = src[s:node.end_byte]
        while fi < nf and fns[fi].end <= s:
            fi += 1
        f = fns[fi] if fi < nf and fns[fi].start <= s else None
        if f is None or s < f.body_start:
            # mentioned outside a body (or the function's own name); a parameter is no global, and
            # an ERROR outside functions is mostly a mis-parsed function body: its names are not
            if s in param_at:
                continue
            i = bisect_right(err_starts, s) - 1
            if i < 0 or s >= errors[i][1]:
                globals_.add(nm)
            continue
        if f.locals.get(nm) == s:
            continue
        if nm not in f.uses:
            f.uses[nm] = s
            tally.names_used += 1
            if nm not in f.names:
                pending.append((nm, at(s) if at else 0, s in callees, f.name))


def _merged(nodes: list[ts.Node]) -> list[tuple[int, int]]:
    """Byte spans of ERROR nodes, nested and overlapping ones merged."""
    out: list[tuple[int, int]] = []
    for s, e in sorted((n.start_byte, n.end_byte) for n in nodes):
        if out and s <= out[-1][1]:
            if e > out[-1][1]:
                out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return out


def _toplevel(root: ts.Node) -> list[ts.Node]:
    """The top-level nodes, looking inside #if/#ifdef/#else groups."""
    out = []
    todo = list(root.named_children)
    while todo:
        n = todo.pop()
        if n.type in G.CONDITIONALS:
            head = n.child_by_field_name("condition") or n.child_by_field_name("name")
            todo.extend(c for c in n.named_children if c != head)
        else:
            out.append(n)
    return out


def _syntax(top: list[ts.Node], caps: dict, tally: Tally, at, cut: int) -> None:
    for s, e in _merged(caps.get("error", [])):
        if s < cut:
            tally.error_bytes += min(e, cut) - s
            tally.issues.append(("syntax", at(s), "tree-sitter could not parse this"))
    for n in caps.get("missing", []):
        if n.start_byte < cut:
            tally.missing += 1
            tally.issues.append(("missing", at(n.start_byte), f"missing '{n.type}'"))
    for n in top:  # a definition the cut runs through is neither clean nor broken: unknown
        if n.type not in G.DIRECTIVES and n.end_byte <= cut:
            tally.defs += 1
            tally.clean_defs += not n.has_error


def _function(f: _Fn, src: bytes, tally: Tally, at, retval: int | None) -> None:
    if f.pseudo:
        _unused(f, tally, at, src)
        return
    node = f.node
    typ = node.child_by_field_name("type")
    decl = node.child_by_field_name("declarator")
    # the specifiers' text, not the type node: attribute macros (__init, notrace) push the real
    # type into an ERROR child; a pointer declarator means the function returns a pointer
    head = src[f.start:decl.start_byte] if decl is not None else b""
    is_void = decl is not None and decl.type == "function_declarator" and G.VOID.search(head) is not None
    if is_void:
        tally.void_fns += 1
        if retval is not None:
            tally.void_returns += 1
            tally.issues.append(("void_return", at(retval), "a void function returns a value"))
    if not f.complete:
        return  # cut by the sample's end: its later lines (uses, return) are not there
    if not is_void and (typ is None or typ.type != "ERROR") and decl is not None:
        name = name_of(decl)
        if name is None or name.text != b"main":
            tally.value_fns += 1
            stmts = [c for c in f.body.named_children if c.type != "comment" and not _empty(c)]
            if not stmts or not _ends_flow(stmts[-1], tally.returning):
                tally.falls_off += 1
                tally.issues.append(("falls_off_end", at(f.end - 1),
                                     "a non-void function can reach its end without returning"))
    _unused(f, tally, at, src)


_DEFINE_LINES = re.compile(rb"^[ \t]*#[ \t]*define\b(?:[^\n\\]|\\.|\\\n)*", re.M)
_WORDS = re.compile(rb"[A-Za-z_]\w*")


def _empty(node: ts.Node) -> bool:
    """An empty statement (the second ``;`` of ``return x;;``)."""
    return node.type == "expression_statement" and node.named_child_count == 0


def _unused(f: _Fn, tally: Tally, at, src: bytes) -> None:
    if not f.complete:
        return
    body = src[f.body_start:f.end]
    # a macro defined inside the function may use a local (``#define STEP h += *p++``): the
    # compiler sees that use wherever the macro expands, so it counts
    in_macros = {w for m in _DEFINE_LINES.finditer(body) for w in _WORDS.findall(m.group())} \
        if b"define" in body else set()
    for nm, pos in f.locals.items():
        tally.locals += 1
        if nm not in f.uses and nm not in in_macros:
            tally.unused += 1
            tally.issues.append(("unused_local", at(pos),
                                 f"local '{nm.decode('utf-8', 'replace')}' is declared but never used"))


def analyze(text: str, known: frozenset[str] | None = None, closing: str = "",
            headers: N.Headers = N.Headers()) -> Tally:
    """Counts and issues of one C text (one file of a sample); raises only on internal bugs.
    ``closing`` (the tracker's closing() of a sample cut at its length limit) is appended for
    parsing only, so an unfinished last function is judged on what was written, not on the cut."""
    tally = Tally(returning=N.returning_macros(text.encode("utf-8", "surrogatepass")) | headers.returning)
    if "define" in text:  # a macro is declared wherever it is defined, in any #if branch
        tally.globals.update(m.encode("utf-8", "surrogatepass") for m in N.DEFINED.findall(text))
    text = N.braces_spelled_out(N.cxx_guards_blanked(text), headers.braces)
    parts = list(pieces(text))
    for i, (base, piece) in enumerate(parts):
        src = piece.encode("utf-8", "surrogatepass")
        if i == len(parts) - 1 and closing:
            cut = len(piece.rstrip().encode("utf-8", "surrogatepass"))
            analyze_piece(src + closing.encode("utf-8"), tally, base, piece, cut=cut)
            tally.bytes += len(src) - cut  # trailing blanks are sample text too
        else:
            analyze_piece(src, tally, base, piece)
        if len(tally.issues) > 4 * ISSUES_KEPT:
            tally.issues = _first_per_kind(tally.issues)
    N.resolve(tally, known, headers)
    return tally


ISSUES_KEPT = 64  # per kind: the sample's record shows the first few; the counts hold the rest


def _first_per_kind(issues: list[tuple[str, int, str]]) -> list[tuple[str, int, str]]:
    """The ISSUES_KEPT earliest issues of each kind (memory stays bounded on a broken 10 MB text)."""
    by_kind: dict[str, list] = {}
    for item in sorted(issues, key=lambda x: x[1]):
        kept = by_kind.setdefault(item[0], [])
        if len(kept) < ISSUES_KEPT:
            kept.append(item)
    return [i for kept in by_kind.values() for i in kept]


def free_pass(text: str, scopes_out: dict[bytes, set[bytes]] | None = None) -> Tally:
    """The names-only pass over a whole text (corpus statistics, headers): its globals and free
    names in the tally, and with ``scopes_out`` each function's parameters and locals by name."""
    tally = Tally()
    for base, piece in pieces(text, 1 << 16):
        analyze_piece(piece.encode("utf-8", "surrogatepass"), tally, base, piece, free_out=True,
                      scopes_out=scopes_out)
    return tally


def free_names(text: str) -> set[bytes]:
    """Names a C text uses as globals: mentioned outside functions, or free inside one."""
    tally = free_pass(text)
    return tally.globals | {p[0] for p in tally.pending}

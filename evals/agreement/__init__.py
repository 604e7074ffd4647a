"""Do gen's C checks agree with the compiler? Recall, false alarms and agreement on real code.

    python -m gen.evals.agreement c SRC [--include-dir DIR ...] [--compiler clang] [--max-files N]
    python -m gen.evals.agreement c SRC --no-compiler      # code no local compiler can build (the kernel)
    python -m gen.evals.agreement latex SRC [--max-units N]  # LaTeX blocks vs pdflatex (latex.py beside this file)
    python -m gen.evals.agreement gcc SRC                  # --gcc on real files and their corrupted copies

For each ``.c`` file under SRC (no symlink followed out of it) that the compiler accepts with
``-Wall -Wextra`` (``-I`` its own folder and every ``--include-dir``), every function the compiler
says nothing about is a *clean unit*. Each unit is copied once per fault family with one fault
injected (below); the compiler judges every copy (a diagnostic of the family in the function, or
an error for the syntax families) and so do gen's checks (an issue of the family inside the
function, or for file-level families more of them in the file than in the clean file). Printed
per family: units, gen's recall on the faulted copies (and on those the compiler reports: a
fault injected into code the compiler does not check, such as a macro's unused argument, is
none), gen's false-alarm rate on the clean units, the compiler's recall (did the injection make
a real fault), and agreement (gen's verdict equals the compiler's, over faulted and clean units).
A function the compiler never sees (an inactive ``#if`` branch: its injected unused local draws
no warning) is not a unit. ``--no-compiler`` keeps every function (the code
is assumed clean: real code from a build that works) and leaves the compiler columns empty.

Fault families (each skipped where a unit offers no place for it):
* ``undeclared``: one use of a local or parameter renamed to a name the file never uses;
* ``unused_local``: ``int NAME;`` declared first in the body and never used;
* ``void_return``: ``return 0;`` before the end of a void function;
* ``falls_off_end``: a value function's final ``return ...;`` deleted;
* ``self_comparison``: a comparison's right operand replaced by its left (``a < b`` -> ``a < a``);
* ``dropped_brace``: an inner block's ``}`` deleted (file level);
* ``unterminated_string``: a string literal's closing quote deleted (file level);
* ``else_brace``: a ``}`` inside an ``#else`` branch deleted (file level; rare in real code).

This is a development tool: it reads the folders you name and writes only temporary files.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import click
import tree_sitter as ts

from gen.core.domain import EvalContext
from gen.core.sources import PrepareReport, walk_files
from gen.core.table import fmt_share as pct
from gen.core.table import render
from gen.plugins.c import CDomain, analyze_sample
from gen.plugins.c import grammar as G
from gen.plugins.c.corrupt import fresh_name
from gen.plugins.c.sem import name_of

# family -> gen issue kinds that report it
KINDS = {
    "unused_local": ("unused_local",), "undeclared": ("undeclared",), "void_return": ("void_return",),
    "falls_off_end": ("falls_off_end",), "self_comparison": ("self_comparison",),
    "dropped_brace": ("bracket", "unclosed"), "unterminated_string": ("unterminated",),
    "else_brace": ("bracket", "unclosed"), "unknown": ("unknown",),
}
FAMILIES = [f for f in KINDS if f != "unknown"]
FILE_LEVEL = {"dropped_brace", "unterminated_string", "else_brace"}
# family -> what the compiler says of it (clang and gcc wordings); None: any error
COMPILER = {
    "undeclared": re.compile(r"undeclared"),
    "unused_local": re.compile(r"unused variable"),
    "void_return": re.compile(r"should not return a value|'return' with a value, in function returning void"),
    "falls_off_end": re.compile(r"does not return a value|control reaches end of non-void"),
    "self_comparison": re.compile(r"self-comparison"),
    "dropped_brace": None, "unterminated_string": None, "else_brace": None,
}
_DIAG = re.compile(r"^(?P<file>[^:\n]+):(?P<line>\d+):(?P<col>\d+): (?P<sev>warning|error|fatal error): (?P<msg>.*)$",
                   re.M)
_Q = ts.Query(G.LANG, """
(function_definition) @fn
""")
_Q_CMP = ts.Query(G.LANG, """
(binary_expression left: [(identifier) (field_expression)] @l operator: ["==" "!=" "<" ">" "<=" ">="]
  right: [(identifier) (field_expression) (number_literal)] @r)
""")
_Q_BODY = ts.Query(G.LANG, """
(identifier) @id
(declaration declarator: (_) @decl)
(parameter_declaration declarator: (_) @param)
(string_literal) @str
(return_statement) @ret
""")


@dataclass
class Unit:
    path: Path
    text: str
    start: int  # byte offsets of the function in the file (ASCII files only: bytes == chars)
    end: int
    line0: int  # 1-based first and last line
    line1: int
    void: bool
    node: ts.Node = field(repr=False)


@dataclass
class Tally:
    units: int = 0
    gen_hits: int = 0
    cc_hits: int = 0
    both: int = 0  # faults the compiler reports and gen finds
    unknown: int = 0  # undeclared faults gen reports as "unknown" (an include was found nowhere)
    agree: int = 0
    clean: int = 0
    false_alarms: int = 0
    clean_agree: int = 0


def compile_diags(compiler: str | None, text: str, where: Path, dirs: tuple[str, ...]) -> tuple[bool, list]:
    """(compiles, [(line, message)]) of ``text`` compiled as a file of folder ``where``."""
    if compiler is None:
        return True, []
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "unit.c"
        f.write_text(text, encoding="utf-8")
        args = [compiler, "-fsyntax-only", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-sign-compare",
                "-Wno-missing-field-initializers", f"-I{where}", *(f"-I{d}" for d in dirs), str(f)]
        proc = subprocess.run(args, capture_output=True, timeout=60, check=False,
                              env={**os.environ, "LC_ALL": "C"})
    err = proc.stderr.decode("utf-8", "replace")
    diags = [(int(m["line"]), m["msg"]) for m in _DIAG.finditer(err) if m["file"].endswith("unit.c")]
    return proc.returncode == 0, diags


def units_of(path: Path, text: str) -> list[Unit]:
    src = text.encode("utf-8")
    root = G.PARSER.parse(src).root_node
    out = []
    for fn in ts.QueryCursor(_Q).captures(root).get("fn", []):
        body = fn.child_by_field_name("body")
        decl = fn.child_by_field_name("declarator")
        if body is None or decl is None or fn.has_error or _nested(fn):
            continue
        head = src[fn.start_byte:decl.start_byte]
        void = decl.type == "function_declarator" and G.VOID.search(head) is not None
        out.append(Unit(path, text, fn.start_byte, fn.end_byte, fn.start_point[0] + 1, fn.end_point[0] + 1, void, fn))
    return out


def _nested(fn: ts.Node) -> bool:
    """A function definition inside another one (a misparsed macro loop), not a unit."""
    node = fn.parent
    while node is not None:
        if node.type == "function_definition":
            return True
        node = node.parent
    return False


def inject(u: Unit, family: str, rng: random.Random) -> str | None:
    """The file text with one ``family`` fault in unit ``u``, or None where it has no place."""
    t, fn = u.text, u.node
    body = fn.child_by_field_name("body")
    caps = ts.QueryCursor(_Q_BODY).captures(body)
    if family == "undeclared":
        return _rename_use(fn, caps, t, rng)
    if family == "unused_local":
        at = body.start_byte + 1
        new = fresh_name("gen_unused", t, rng)
        return t[:at] + f"\n\tint {new};" + t[at:]
    if family == "void_return":
        if not u.void:
            return None
        at = body.end_byte - 1
        return t[:at] + "\treturn 0;\n" + t[at:]
    if family == "falls_off_end":
        stmts = [c for c in body.named_children if c.type != "comment"]
        if u.void or not stmts or stmts[-1].type != "return_statement":
            return None
        last = stmts[-1]
        return t[:last.start_byte] + t[last.end_byte:]
    if family == "self_comparison":
        pairs = [(m["l"][0], m["r"][0]) for _, m in ts.QueryCursor(_Q_CMP).matches(body)
                 if m["l"][0].text != m["r"][0].text]
        if not pairs:
            return None
        lft, r = rng.choice(pairs)
        return t[:r.start_byte] + lft.text.decode() + t[r.end_byte:]
    if family == "dropped_brace":
        inner = [i for i in range(body.start_byte + 1, body.end_byte - 1) if t[i] == "}" and _in_code(t, i)]
        if not inner:
            return None
        i = rng.choice(inner)
        return t[:i] + t[i + 1:]
    if family == "unterminated_string":
        strs = [s for s in caps.get("str", []) if s.text.endswith(b'"') and len(s.text) >= 2 and b"\n" not in s.text]
        if not strs:
            return None
        s = rng.choice(strs)
        return t[:s.end_byte - 1] + t[s.end_byte:]
    if family == "else_brace":
        seg = t[body.start_byte:body.end_byte]
        m = re.search(r"^[ \t]*#[ \t]*else\b.*?^[ \t]*#[ \t]*endif\b", seg, re.M | re.S)
        if not m:
            return None
        inner = [body.start_byte + m.start() + j for j, ch in enumerate(m.group()) if ch == "}"]
        if not inner:
            return None
        i = rng.choice(inner)
        return t[:i] + t[i + 1:]
    raise ValueError(family)


def _rename_use(fn: ts.Node, caps: dict, t: str, rng: random.Random) -> str | None:
    """One use of a local or parameter of ``fn`` renamed to a name the file never uses."""
    names = {name_of(d).text for d in caps.get("decl", []) if name_of(d) is not None}
    params = ts.QueryCursor(_Q_BODY).captures(fn.child_by_field_name("declarator")).get("param", [])
    names |= {name_of(p).text for p in params if name_of(p) is not None}
    decl_at = {name_of(d).start_byte for d in caps.get("decl", []) if name_of(d) is not None}
    uses = [n for n in caps.get("id", []) if n.text in names and n.start_byte not in decl_at]
    if not uses:
        return None
    n = rng.choice(uses)
    return t[:n.start_byte] + fresh_name(n.text.decode(), t, rng) + t[n.end_byte:]


def _in_code(t: str, i: int) -> bool:
    line = t[t.rfind("\n", 0, i) + 1:i]
    return "//" not in line and '"' not in line and "'" not in line and "/*" not in line


def gen_flags(text: str, ctx: EvalContext, family: str, span: tuple[int, int] | None) -> int:
    """How many issues of ``family`` gen reports (inside ``span`` when given)."""
    kinds = KINDS[family]
    found = analyze_sample(text, ctx)
    return sum(1 for k, o, _ in found.issues if k in kinds and (span is None or span[0] <= o < span[1]))


def cc_flags(diags: list, ok: bool, family: str, lines: tuple[int, int]) -> bool:
    pat = COMPILER[family]
    if pat is None:
        return not ok
    return any(pat.search(msg) and lines[0] <= ln <= lines[1] for ln, msg in diags)


def _score(u: Unit, text: str, results: dict, base_found, ctx: EvalContext, tallies: dict) -> None:
    """gen's verdict on each faulted copy of unit ``u`` beside the compiler's (in ``results``)."""
    for family, result in results.items():
        span = None if family in FILE_LEVEL else (u.start, u.end)
        base = sum(1 for k, o, _ in base_found.issues
                   if k in KINDS[family] and (span is None or span[0] <= o < span[1]))
        tl = tallies[family]
        if span is not None:  # clean unit: a false alarm is any issue of the family inside it
            tl.clean += 1
            tl.false_alarms += base > 0
            tl.clean_agree += base == 0
        if result is None:
            continue
        bad, cc_hit = result
        fspan = None if span is None else (u.start, u.end + len(bad) - len(text))
        gen_hit = gen_flags(bad, ctx, family, fspan) > base
        if family == "undeclared" and not gen_hit:
            was = sum(1 for k, o, _ in base_found.issues if k == "unknown" and u.start <= o < u.end)
            tl.unknown += gen_flags(bad, ctx, "unknown", fspan) > was
        tl.units += 1
        tl.gen_hits += gen_hit
        tl.cc_hits += cc_hit
        tl.both += gen_hit and cc_hit
        tl.agree += gen_hit == cc_hit


def run(src: Path, dirs: tuple[str, ...], compiler: str | None, max_files: int, max_units: int, seed: int,
        log=print) -> dict:
    rng = random.Random(seed)
    files = [p for p in walk_files(src, ["*.c"], PrepareReport())][:max_files]
    tallies: dict[str, Tally] = defaultdict(Tally)
    kept_files = kept_units = 0
    for path in files:
        raw = path.read_bytes()
        if not raw.isascii():
            continue  # offsets below are bytes = characters
        text = raw.decode()
        where = path.parent
        ok, diags = compile_diags(compiler, text, where, dirs)
        if not ok:
            continue
        kept_files += 1
        ctx = EvalContext(domain=CDomain(), options={"include_dir": (str(where), *dirs, str(src))})
        base_found = analyze_sample(text, ctx)
        units = [u for u in units_of(path, text) if not any(u.line0 <= ln <= u.line1 for ln, _ in diags)]
        for u in units[:max_units]:
            results = {}
            for family in FAMILIES:  # unused_local first: it tells whether the compiler sees the unit
                bad = inject(u, family, rng)
                if bad is None:
                    results[family] = None
                    continue
                bok, bdiags = compile_diags(compiler, bad, where, dirs)
                moved = bad.count("\n") - text.count("\n")
                results[family] = (bad, cc_flags(bdiags, bok, family, (u.line0, u.line1 + moved)))
                if family == "unused_local" and compiler is not None and not results[family][1]:
                    break  # in an inactive #if branch: the compiler never sees this function
            else:
                kept_units += 1
                _score(u, text, results, base_found, ctx, tallies)
        for family in FILE_LEVEL:  # a compiling file with a bracket/literal issue: a false alarm
            n = sum(1 for k, _, _ in base_found.issues if k in KINDS[family])
            tallies[family].clean += 1
            tallies[family].false_alarms += n > 0
            tallies[family].clean_agree += n == 0
        log(f"{path.relative_to(src)}: {len(units)} clean functions")
    return {"src": str(src), "compiler": compiler, "files": len(files), "kept_files": kept_files,
            "units": kept_units, "families": {f: vars(t) for f, t in tallies.items()}}


def table(res: dict, markdown: bool = False) -> str:
    """The per-family figures of :func:`run` (one or several sources' summed ``families``)."""
    cc = res["compiler"] is not None
    rows = []
    for fam in [f for f in FAMILIES if f in res["families"]]:
        t = res["families"][fam]
        rows.append([fam, t["units"], pct(t["gen_hits"], t["units"]),
                     pct(t["both"], t["cc_hits"]) if cc else "-", pct(t["false_alarms"], t["clean"]),
                     pct(t["cc_hits"], t["units"]) if cc else "-",
                     pct(t["agree"] + t["clean_agree"], t["units"] + t["clean"]) if cc else "-"])
    head = [["fault family", "faulted", "gen recall", "gen recall (faults the compiler reports)",
             "gen false alarms (clean)", "compiler recall", "agreement with compiler"]]
    out = render(rows, head, "<>>>>>>", markdown=markdown)
    und = res["families"].get("undeclared")
    if und and und["unknown"]:
        out += (f"\nundeclared faults reported as unknown instead (a header the check could not find): "
                f"{und['unknown']} of {und['units']}")
    return out


def gcc_baseline(src: Path, dirs: tuple[str, ...], max_files: int, seed: int) -> dict:
    """``--gcc``'s verdict on whole real files under SRC and on the same files damaged by the C
    domain's corruption (a dropped brace, parenthesis and quote, shuffled lines, a renamed local):
    the real and corrupted reference columns a report shows beside samples."""
    from gen.plugins.c import gcc_syntax
    from gen.plugins.c.corrupt import corrupt_c

    rng = random.Random(seed)
    counts: dict[str, dict[str, int]] = {k: defaultdict(int) for k in ("real", "corrupted")}
    for path in list(walk_files(src, ["*.c"], PrepareReport()))[:max_files]:
        text = path.read_text(encoding="utf-8", errors="replace")
        for kind, t in (("real", text), ("corrupted", corrupt_c(text, rng))):
            ok, why = gcc_syntax(t, (str(path.parent), *dirs, str(src)))
            c = counts[kind]
            c["n"] += 1
            c["ok"] += ok == 1.0
            c["missing_header"] += ok == 1.0 and "missing header" in why
    return {k: dict(v) for k, v in counts.items()}


@click.command()
@click.argument("domain", type=click.Choice(["c", "latex", "gcc"]))
@click.argument("src", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--include-dir", multiple=True, type=click.Path(exists=True, file_okay=False), help="-I folder")
@click.option("--compiler", default="clang", show_default=True, help="the judge (clang or gcc)")
@click.option("--no-compiler", is_flag=True, help="keep every function; no compiler columns")
@click.option("--max-files", default=400, show_default=True)
@click.option("--max-units", default=20, show_default=True, help="functions per file")
@click.option("--seed", default=0, show_default=True)
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="also write the figures here")
@click.option("--markdown", is_flag=True, help="print a Markdown table")
def main(domain: str, src: Path, include_dir: tuple[str, ...], compiler: str, no_compiler: bool, max_files: int,
         max_units: int, seed: int, json_out: str | None, markdown: bool) -> None:
    """Per-check recall, false alarms and agreement with a compiler on real C (or LaTeX) under SRC."""
    if domain == "gcc":
        res = gcc_baseline(src, tuple(str(Path(d).resolve()) for d in include_dir), max_files, seed)
        rows = [[k, v["n"], f"{v['ok'] / max(v['n'], 1):.0%}", f"{v['missing_header'] / max(v['n'], 1):.0%}"]
                for k, v in res.items()]
        click.echo(render(rows, [["text", "files", "gcc_syntax_ok", "of which with missing headers"]], "<>>>",
                          markdown=markdown))
        return
    if domain == "latex":
        from gen.evals.agreement import latex as agreement_latex

        try:
            res = agreement_latex.run(src, max_files, max_units, seed, log=lambda m: click.echo(m, err=True))
        except RuntimeError as exc:
            raise click.UsageError(str(exc)) from None
        click.echo(f"{res['src']}: {res['units']} blocks of {res['files']} files compile alone with pdflatex")
        click.echo(agreement_latex.table(res, markdown))
        if json_out:
            Path(json_out).write_text(json.dumps(res, indent=2), encoding="utf-8")
        return
    cc = None if no_compiler else shutil.which(compiler)
    if cc is None and not no_compiler:
        raise click.UsageError(f"{compiler} is not installed: install it or pass --no-compiler")
    res = run(src, tuple(str(Path(d).resolve()) for d in include_dir), cc, max_files, max_units, seed,
              log=lambda m: click.echo(m, err=True))
    click.echo(f"{res['src']}: {res['kept_files']} of {res['files']} files compile"
               f"{' with ' + compiler if cc else ' (no compiler: all kept)'}, {res['units']} clean functions")
    click.echo(table(res, markdown))
    if json_out:
        Path(json_out).write_text(json.dumps(res, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1:])

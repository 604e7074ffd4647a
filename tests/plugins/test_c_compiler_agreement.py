"""The C checks where they meet a compiler: names from real headers (system, --include-dir,
the corpus's own), per-branch bracket balance, self-comparisons clang ignores, --gcc with
include directories, and the agreement harness (evals/agreement/). Fixtures are tiny files
written here; system headers come from the local compiler, so those tests skip without one."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from gen.core.cli import cli
from gen.core.data import prepare
from gen.core.domain import EvalContext
from gen.core.registry import get_domain, resolve_corpus
from gen.plugins.c import CDomain, CStats, gcc_syntax
from gen.plugins.c import headers as c_headers
from gen.plugins.c import lex as c_lex
from gen.plugins.c import sem as c_sem

HAS_CC = c_headers.find_compiler() is not None
needs_cc = pytest.mark.skipif(not HAS_CC, reason="no C compiler (gcc/clang) installed")


def _check(text: str, stats: CStats | None = None, **options):
    ctx = EvalContext(domain=CDomain(), options=options)
    if stats is not None:
        ctx._stats, ctx._stats_built = stats, True
    return CDomain().check(text, ctx)


def _kinds(result, kind: str) -> list[str]:
    return [i.message for i in result.issues if i.kind == kind]


@pytest.fixture
def mylib(tmp_path: Path) -> Path:
    inc = tmp_path / "inc"
    inc.mkdir()
    (inc / "mylib.h").write_text("#include \"sub/more.h\"\nextern int my_global;\ntypedef unsigned my_size;\n"
                                 "#define MY_FAIL(x) return -(x)\nint my_call(int);\n")
    (inc / "sub").mkdir()
    (inc / "sub" / "more.h").write_text("enum { MORE_A, MORE_B };\n")
    return inc


@needs_cc
def test_system_header_names_are_declared_and_a_typo_is_not():
    ok = _check("#include <unistd.h>\nint f(void) { return optind; }\n")
    assert ok.metrics["undeclared_ids"] == 0 and ok.metrics["unknown_ids"] == 0
    typo = _check("#include <unistd.h>\nint f(void) { return optindx + printf_x(); }\n")
    assert typo.metrics["undeclared_ids"] == 1.0  # every include found: what clang says, callees too
    assert {m.split("'")[1] for m in _kinds(typo, "undeclared")} == {"optindx", "printf_x"}


def test_a_header_found_nowhere_makes_names_unknown_not_undeclared():
    r = _check('#include "nothere.h"\nint f(void) { return optind + g(); }\n')
    assert r.metrics["undeclared_ids"] == 0 and r.metrics["unknown_ids"] == 1.0
    assert r.metrics["missing_headers"] == 1 and _kinds(r, "missing_header")
    # a window of a file (no include at all): callees and MACROS may come from its head, `rw` not
    w = _check("int f(void) { return rw + MAXLEN + g(); }\n")
    assert w.metrics["undeclared_ids"] == pytest.approx(1 / 3) and w.metrics["unknown_ids"] == pytest.approx(2 / 3)


def test_a_missing_include_inside_an_if_is_another_configuration():
    inc = c_headers.resolve('#ifndef A_H\n#define A_H\n#include "gone.h"\n#ifdef __ARM_NEON__\n'
                            '#include <arm_neon_nowhere.h>\n#endif\n#endif\n', (), ())
    assert inc.missing == ("gone.h",) and inc.conditional == ("arm_neon_nowhere.h",)


@pytest.mark.parametrize("with_compiler", [True, False])
def test_include_dir_names_macros_and_typedefs(mylib: Path, with_compiler: bool, monkeypatch):
    if with_compiler and not HAS_CC:
        pytest.skip("no C compiler")
    if not with_compiler:  # no compiler on PATH: the headers are read directly, nested ones too
        monkeypatch.setenv("PATH", "")
        c_headers.header_names.cache_clear()
        assert c_headers.find_compiler() is None
    text = ('#include "mylib.h"\nint f(int a)\n{\n\tif (a)\n\t\tMY_FAIL(a);\n\treturn my_global + MORE_B + '
            'my_call(sizeof(my_size));\n}\nint g(int a)\n{\n\tif (a)\n\t\treturn 1;\n\tMY_FAIL(2);\n}\n')
    r = _check(text, include_dir=(str(mylib),))
    assert r.metrics["undeclared_ids"] == 0 and r.metrics["unknown_ids"] == 0, r.issues
    assert r.metrics["falls_off_end"] == 0  # MY_FAIL returns: a header's macro counts like the file's own
    bad = _check(text.replace("my_global", "my_globl"), include_dir=(str(mylib),))
    assert _kinds(bad, "undeclared") == ["'my_globl' is used but never declared"]
    without = _check(text)  # the folder not given: the header is missing, the names unknown
    assert without.metrics["undeclared_ids"] == 0 and without.metrics["unknown_ids"] > 0
    c_headers.header_names.cache_clear()


def test_a_header_reached_through_a_symlink_out_of_the_folder_is_not_read(tmp_path: Path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.h").write_text("int leaked;\n")
    inc = tmp_path / "inc"
    inc.mkdir()
    os.symlink(outside / "secret.h", inc / "secret.h")
    assert c_headers.locate("secret.h", (str(inc),), ()) is None
    r = _check('#include "secret.h"\nint f(void) { return leaked; }\n', include_dir=(str(inc),))
    assert r.metrics["missing_headers"] == 1 and r.metrics["unknown_ids"] == 1.0


@needs_cc
def test_names_made_by_macro_expansion_or_only_in_inactive_branches_are_not_undeclared():
    text = ("#include <stddef.h>\n#define FN(X) X##Literal\nstatic int FN(Split)(void) { return 1; }\n"
            "int f(void)\n{\n#if defined(SOME_OTHER_OS)\n\treturn fopen_s_only_there();\n#endif\n"
            "\treturn SplitLiteral();\n}\n")
    r = _check(text)
    assert r.metrics["undeclared_ids"] == 0, r.issues
    assert _kinds(_check(text.replace("SplitLiteral()", "SplitLiteralx()")), "undeclared")


def test_corpus_headers_collected_at_prepare_resolve_includes(tmp_path: Path):
    src = tmp_path / "proj"
    (src / "include" / "proj").mkdir(parents=True)
    (src / "include" / "proj" / "api.h").write_text("extern int proj_count;\nint proj_call(void);\n")
    (src / "main.c").write_text('#include <proj/api.h>\nint f(void)\n{\n\treturn proj_count + proj_call();\n}\n')
    out = tmp_path / "data" / "proj"
    out.parent.mkdir()
    meta = prepare(resolve_corpus("linux"), get_domain("c"), str(src), out)
    assert meta["report"]["extra"]["c_headers"] == ["include/proj/api.h"]
    from gen.core.data import CorpusData

    stats = CDomain().corpus_stats(CorpusData(out))
    assert stats.headers == ("include/proj/api.h",) and stats.complete and "proj_count" in stats.names
    sample = "#include <proj/api.h>\nint g(void)\n{\n\treturn proj_count + proj_cnt;\n}\n"
    r = _check(sample, stats)
    assert r.metrics["missing_headers"] == 0 and _kinds(r, "undeclared") == ["'proj_cnt' is used but never declared"]
    sampled = CStats(stats.names, 1, 1, stats.headers, complete=False)  # names from a subset: not enough
    assert _check(sample, sampled).metrics["missing_headers"] == 1


def test_a_brace_dropped_in_an_else_branch_is_counted():
    clean = "int f(int a)\n{\n#ifdef X\n\tif (a) {\n\t\tg();\n\t}\n#else\n\tif (b) {\n\t\th();\n\t}\n#endif\n\treturn 0;\n}\n"
    assert c_lex.balance(clean).n_mismatches == 0
    dropped = clean.replace("\t\th();\n\t}\n", "\t\th();\n")
    bal = c_lex.balance(dropped)
    assert bal.n_mismatches == 1 and "#endif" in bal.mismatches[0][1]
    assert _check(dropped).metrics["bracket_errors_per_kb"] > 0
    heads = "#ifdef A\nint f(int a) {\n#else\nint f(void) {\n#endif\n\treturn 0;\n}\n"  # the kernel idiom
    assert c_lex.balance(heads).n_mismatches == 0 and c_lex.balance(heads).n_unclosed == 0
    never = "#if 0\n{ ( [\n#endif\nint g(void) { return 1; }\n"  # never compiled: its brackets don't count
    assert c_lex.balance(never).n_mismatches == 0 and c_lex.balance(never).n_unclosed == 0


def test_self_comparison_only_where_clang_looks():
    text = ("#if X == X\nint a;\n#endif\n#if 0\nint g(int x) { return x == x; }\n#else\n"
            "int h(int y) { return y == y; }\n#endif\nvoid k(int z) { assert(z == z); if (z != z) return; }\n")
    t = c_sem.analyze(text)
    assert t.self_cmp == 2
    assert sorted(m for k, _, m in t.issues if k == "self_comparison") == [
        "compares 'y' with itself", "compares 'z' with itself"]


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")
def test_gcc_uses_include_dirs_and_tells_missing_headers_from_syntax_errors(mylib: Path):
    text = '#include "mylib.h"\nint f(void)\n{\n\treturn my_global;\n}\n'
    assert gcc_syntax(text, (str(mylib),)) == (1.0, "")
    ok, why = gcc_syntax(text)  # the header is missing: gcc's only error is an undeclared name
    assert ok == 1.0 and "missing header" in why
    kernelish = ('#include <linux/nowhere.h>\nstatic int __init setup(struct foo *p)\n{\n\tu64 x = 0;\n'
                 '\tlist_for_each_entry(p, &head, list) {\n\t\tx++;\n\t}\n\treturn container_of(p, struct foo, m)->v;\n}\n')
    assert gcc_syntax(kernelish)[0] == 1.0  # attribute, loop and type macros stubbed, not "fails"
    broken = kernelish.replace("\t\tx++;\n\t}\n", "\t\tx++;\n")
    assert gcc_syntax(broken)[0] == 0.0
    r = _check(text, gcc=True)
    assert r.metrics["gcc_syntax_ok"] == 1.0 and _kinds(r, "gcc_missing_header")


def test_include_dir_is_a_repeatable_validated_option(tmp_path: Path, mylib: Path):
    sample = tmp_path / "s.c"
    sample.write_text('#include "mylib.h"\nint f(void) { return my_global; }\n')
    runner = CliRunner()
    ws = tmp_path / "ws"
    bad = runner.invoke(cli, ["--workspace", str(ws), "eval", "c", str(sample), "--include-dir", str(tmp_path / "no")])
    assert bad.exit_code == 2 and "does not exist" in bad.output
    good = runner.invoke(cli, ["--workspace", str(ws), "eval", "c", str(sample), "--include-dir", str(mylib),
                               "--include-dir", str(tmp_path), "--json", "--out", str(tmp_path / "o")])
    assert good.exit_code == 0, good.output
    assert '"missing_headers"' in good.output
    assert "--include-dir" in runner.invoke(cli, ["eval", "c", "--help"]).output


@pytest.mark.skipif(shutil.which("gcc") is None and shutil.which("clang") is None, reason="no compiler")
def test_agreement_harness_measures_recall_false_alarms_and_agreement(tmp_path: Path):
    from gen.evals.agreement import run, table

    src = tmp_path / "proj"
    src.mkdir()
    (src / "util.h").write_text("int helper(int v);\n")
    (src / "a.c").write_text(
        '#include <stdio.h>\n#include "util.h"\n\nint helper(int v)\n{\n\tint w = v * 2;\n\tif (w > v) {\n'
        '\t\tprintf("%d\\n", w);\n\t}\n\treturn w;\n}\n\nvoid show(int n)\n{\n\tint i;\n\tfor (i = 0; i < n; i++) {\n'
        '\t\tputs("x");\n\t}\n}\n')
    (src / "broken.c").write_text("int f(void) { return 1 \n")  # the compiler rejects it: not a unit
    compiler = shutil.which("clang") or shutil.which("gcc")
    res = run(src, (), compiler, 10, 10, 0, log=lambda m: None)
    assert res["files"] == 2 and res["kept_files"] == 1 and res["units"] == 2
    fam = res["families"]
    for family in ("undeclared", "unused_local", "dropped_brace", "unterminated_string"):
        assert fam[family]["units"] >= 1 and fam[family]["gen_hits"] == fam[family]["units"], (family, fam[family])
        assert fam[family]["cc_hits"] == fam[family]["units"]
    assert fam["void_return"]["units"] == 1 and fam["falls_off_end"]["units"] == 1
    assert all(f["false_alarms"] == 0 for f in fam.values())
    assert "agreement with compiler" in table(res)


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed (texlive-latex-base)")
def test_latex_agreement_harness_compares_with_pdflatex(tmp_path: Path):
    from gen.evals.agreement import latex as AL

    (tmp_path / "a.tex").write_text(
        "Text before.\n\\begin{lemma}\nLet $x = \\left( a + b \\right)$ and $y = {z}^2$ in every case here.\n"
        "\\end{lemma}\n\n\\begin{itemize}\n\\item one $a_{1}$ thing, written out\n\\item two {\\em b} things, "
        "also written out\n\\end{itemize}\n")
    assert [n for n, _ in AL.units_of((tmp_path / "a.tex").read_text())] == ["lemma", "itemize"]
    res = AL.run(tmp_path, 5, 5, 0, log=lambda m: None)
    assert res["units"] == 2
    fam = res["families"]
    assert fam["clean"]["n"] == 2 and fam["clean"]["pdflatex_rejects"] == 0 and fam["clean"]["window_flags"] == 0
    for family in ("unclosed_env", "stray_end", "mismatched_env", "dropped_brace"):
        assert fam[family]["n"] == 2 and fam[family]["pdflatex_rejects"] == 2, (family, fam[family])
        assert fam[family]["document_flags"] == 2 and fam[family]["window_flags"] == 2
    assert fam["left_without_right"]["n"] == 1
    assert all(t["compile_agrees"] == t["n"] for t in fam.values())  # the headline is pdflatex as written
    assert "compile_ok agrees" in AL.table(res)


def test_real_code_idioms_clang_accepts_are_not_flagged(tmp_path: Path):
    inc = tmp_path / "inc"
    inc.mkdir()
    (inc / "py.h").write_text("#define BEGIN_THREADS { int _save = 0;\n#define END_THREADS (void)_save; }\n"
                              "int work(int);\n")
    text = ('#include "py.h"\nint f(int n)\n{\n\tint r;\n\tBEGIN_THREADS\n\tr = work(n);\n\tEND_THREADS\n'
            "\treturn r;;\n}\nint g(const char *ptr)\n{\n\tconst char *p = ptr;\n\tint h = 0;\n"
            "#define STEP h += (*p++)\n\tSTEP;\n\ttypedef enum { fast, slow } mode_e;\n\treturn h + fast;\n}\n")
    r = _check(text, include_dir=(str(inc),))
    for metric in ("undeclared_ids", "unused_locals", "falls_off_end"):
        assert r.metrics[metric] == 0, (metric, r.issues)
    assert c_headers.brace_macros("#define A { x\n#define B }\n#define C {}\n") == {(b"A", 1), (b"B", -1)}


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")
def test_a_sample_cannot_make_the_compiler_read_files_it_names(tmp_path: Path):
    secret = tmp_path / "secret.txt"
    secret.write_text("int LEAKMARKER = 1; syntax error here {\n")
    depth = "../" * (len(Path(tmp_path).parts) + 2)
    for line in (f'#include "{secret}"', f"#include <{depth}{str(secret).lstrip('/')}>",
                 f'#define F "{secret}"\n#include F', f'#include_next "{secret}"'):
        text = f"{line}\n#include <stdio.h>\nint f(void) {{ return 0; }}\n"
        inc = c_headers.resolve(text, (str(tmp_path / "none"),), c_headers.system_dirs(c_headers.find_compiler()))
        assert all(str(secret) not in p for _, p in inc.found)
        kept = [ln for ln in c_headers.found_includes_only(text, inc).splitlines() if "include" in ln]
        assert kept == ["#include <stdio.h>"]
        assert gcc_syntax(text) == (1.0, "")  # had gcc read the file, its syntax error would fail
        r = _check(text, gcc=True)
        assert all("LEAKMARKER" not in i.message + i.excerpt for i in r.issues)

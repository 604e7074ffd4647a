"""The C domain: prepare (walk, skips, separator), checks on hand-made C, the tracker and
features, corruption, and calibration on the real kernel subset in ../shared/corpora/c."""

from __future__ import annotations

import io
import os
import random
import shutil
import tarfile
import time
from pathlib import Path

import pytest

from gen.core.data import CorpusData, prepare
from gen.core.domain import Constraint, EvalContext, PrepareReport
from gen.core.model import CharRNN, ModelArgs
from gen.core.registry import get_domain, resolve_corpus
from gen.plugins.c import FILE_SEP, FILE_SEPARATOR, CDomain, CStats, split_files
from gen.plugins.c import lex as c_lex
from gen.plugins.c import scan as c_scan
from gen.plugins.c import sem as c_sem

SEP = FILE_SEP

CLEAN = """\
#include <linux/kernel.h>

#define BEGIN {
#define SQUARE(x) ((x) * (x))

static int counter;

/* a comment with { and ( and " in it */
static int add(int a, int b)
{
	int sum = a + b;	// and a ) here
	char open = '{';
	const char *s = "}]) \\" still a string";

	if (sum > counter && s[0] == open)
		counter = sum;
	return sum;
}

static int twice(int a)
{
	return add(a, a);
}

void reset(void)
{
	counter = 0;
}
"""

# the kernel's two-heads idiom: braces balance per configuration, not in the text (tree-sitter
# cannot parse it, so it is a fixture for the lexer and the tracker only)
IFDEF_HEADS = """#ifdef CONFIG_FOO
static int twice(int a)
{
#else
static int twice(int b)
{
	int a = b;
#endif
	return add(a, a);
}
"""

BROKEN = """\
void f(void)
{
	int error;
	if (tty == tty)
		return rw;
}

int g(int x)
{
	if (x)
		return 1;
}
"""


def _check(text: str, known: frozenset[str] | None = None, **options):
    ctx = EvalContext(domain=CDomain(), options=options)
    if known is not None:
        ctx._stats, ctx._stats_built = CStats(known, 1, 1), True
    return CDomain().check(text, ctx)


# ---- prepare ---------------------------------------------------------------------------------
def _tree(root: Path, outside: Path) -> None:
    (root / "sub").mkdir(parents=True)
    (root / "b.c").write_text("int b;\n", encoding="utf-8")
    (root / "a.h").write_text("int a;", encoding="utf-8")  # no final newline: one is added
    (root / "sub" / "c.c").write_text("int c;\r\nint d;\r\n", encoding="utf-8")
    (root / "sub" / "sep.c").write_text(f"int e; /* {SEP} */\n", encoding="utf-8")
    (root / "notes.txt").write_text("not C\n", encoding="utf-8")
    (root / "bin.c").write_bytes(b"int x;\0\0\0")
    (root / "latin1.c").write_bytes(b"/* caf\xe9 */\n")
    (root / "big.c").write_text("int big;\n" * 300, encoding="utf-8")  # 2.7 KB > max_file_kb=2
    (outside / "secret.c").write_text("int secret;\n", encoding="utf-8")
    os.symlink(outside / "secret.c", root / "link.c")


def test_documents_walks_sorted_and_counts_every_skip(tmp_path):
    root, outside = tmp_path / "src", tmp_path / "outside"
    outside.mkdir()
    _tree(root, outside)
    dom, spec, report = CDomain(), resolve_corpus("linux"), PrepareReport()
    docs = list(dom.documents(root, spec, {"max_file_kb": 2}, report))
    assert docs == ["int a;\n", "int b;\n", "int c;\nint d;\n", "int e; /*  */\n"]
    assert report.skipped == {"not matching the corpus file patterns": 1, "binary (NUL byte)": 1,
                              "not valid UTF-8": 1, "larger than 2048 bytes": 1,
                              "symlink pointing outside --src": 1}
    assert any("separator" in n for n in report.notes)


def test_documents_from_single_file_and_tar_archive(tmp_path):
    dom, spec = CDomain(), resolve_corpus("linux")
    single = tmp_path / "one.c"
    single.write_text("int one;\n", encoding="utf-8")
    assert list(dom.documents(single, spec, {}, PrepareReport())) == ["int one;\n"]
    archive = tmp_path / "tree.tar.xz"
    with tarfile.open(archive, "w:xz") as tar:
        for name, body in [("linux/z.c", b"int z;\n"), ("linux/a/y.h", b"int y;\n"), ("linux/README", b"hi\n")]:
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    report = PrepareReport()
    assert list(dom.documents(archive, spec, {}, report)) == ["int y;\n", "int z;\n"]
    assert report.skipped == {"not matching the corpus file patterns": 1}


def test_prepare_joins_files_with_the_separator_and_eval_splits_on_it(tmp_path):
    root = tmp_path / "src"
    root.mkdir()
    for i in range(30):
        (root / f"f{i:02}.c").write_text(f"int v{i};\n", encoding="utf-8")
    meta = prepare(resolve_corpus("linux"), get_domain("c"), str(root), tmp_path / "out")
    data = CorpusData(tmp_path / "out")
    assert meta["separator"] == FILE_SEPARATOR == "\u241c\n"
    docs = list(data.documents("train")) + list(data.documents("val"))
    assert sorted(docs) == sorted(f"int v{i};\n" for i in range(30))
    sample = "int a;\n" + FILE_SEPARATOR + "int b;\n" + FILE_SEPARATOR + "int c"
    assert [(o, t) for o, t in split_files(sample)] == [(0, "int a;\n"), (9, "int b;\n"), (18, "int c")]


def test_manifest_sources_and_gpu_defaults_match_the_blog_model():
    spec = resolve_corpus("c")
    assert spec.name == "linux" and spec.patterns == ["*.c", "*.h"]
    assert spec.download["url"].endswith("/linux-6.1.tar.xz") and spec.options["max_file_kb"] == 1024
    gpu = spec.defaults["gpu"]
    n = CharRNN(ModelArgs(vocab_size=105, n_layer=gpu["n_layer"], n_hidden=gpu["n_hidden"],
                          n_embd=gpu["n_embd"])).num_params()
    assert gpu["n_layer"] == 3 and 9.5e6 < n < 10.5e6
    assert spec.defaults["cpu"]["n_hidden"] < gpu["n_hidden"]


# ---- checks on hand-made C -------------------------------------------------------------------
def test_clean_code_scores_clean():
    r = _check(CLEAN)
    m = r.metrics
    assert m["error_bytes"] == 0 and m["missing_per_kb"] == 0 and m["clean_definitions"] == 1
    assert m["bracket_errors_per_kb"] == 0 and m["unclosed_brackets"] == 0 and m["unterminated_per_kb"] == 0
    assert m["undeclared_ids"] == 0 and m["unused_locals"] == 0 and m["void_returns"] == 0
    assert m["falls_off_end"] == 0 and m["self_comparisons_per_kb"] == 0
    assert r.issues == []


def test_the_blogs_slips_are_each_found_with_an_excerpt():
    r = _check(BROKEN)
    kinds = {i.kind: i for i in r.issues}
    assert set(kinds) == {"undeclared", "unused_local", "void_return", "falls_off_end", "self_comparison"}
    assert "'rw'" in " ".join(i.message for i in r.issues if i.kind == "undeclared")
    assert "error" in kinds["unused_local"].message and "int error" in kinds["unused_local"].excerpt
    assert BROKEN[kinds["self_comparison"].offset:].startswith("tty == tty")
    m = r.metrics
    assert m["void_returns"] == 1 and m["falls_off_end"] == 1 and m["unused_locals"] == 1
    shifted = "/* café ✓ */\n" + FILE_SEPARATOR + BROKEN  # offsets count characters, across files
    at = {i.kind: i.offset for i in _check(shifted).issues}
    assert shifted[at["self_comparison"]:].startswith("tty == tty")
    assert m["self_comparisons_per_kb"] > 0 and m["undeclared_ids"] > 0


def test_corpus_names_are_not_undeclared_and_headers_are_assumed_for_calls():
    text = "int f(int a)\n{\n\treturn jiffies + a + kmalloc_size(a) + PAGE_SIZE;\n}\n"
    assert _check(text).metrics["undeclared_ids"] > 0  # jiffies: nothing declares it here
    assert _check(text, known=frozenset({"jiffies"})).metrics["undeclared_ids"] == 0


def test_balance_finds_closers_literals_and_comments():
    for good in (CLEAN, IFDEF_HEADS):
        assert c_lex.balance(good).mismatches == [] and c_lex.balance(good).unclosed == []
    bad = c_lex.balance('int f(void)\n{\n\tg(a];\n}\n}\nchar *s = "abc\n;\n/* open')
    assert bad.mismatches == [(18, "']' closes '(' opened at 16"), (21, "'}' closes '(' opened at 16"),
                              (23, "'}' with nothing open")]
    assert [m for _, m in bad.unterminated] == ["string literal not closed on its line", "comment /* never closed"]
    assert c_lex.balance("#define X(a) { (a\nint y;\n").mismatches == []  # directives are skipped


def test_a_cut_sample_is_parsed_with_its_closing_so_the_cut_is_no_error():
    cut = CLEAN[: CLEAN.index("return add")] + "return add(a, a"
    m = _check(cut).metrics
    assert m["error_bytes"] == 0 and m["missing_per_kb"] == 0  # the ';' the cut took is not missing
    assert m["unclosed_brackets"] == 2  # but balance reports what the cut left open: '{' and '('
    assert m["falls_off_end"] == 0  # the cut function is not judged on what the cut removed


def test_check_never_raises():
    dom, ctx = CDomain(), EvalContext(domain=CDomain())
    rng = random.Random(0)
    junk = ["", SEP, FILE_SEPARATOR * 3, "{" * 5000, ")" * 50, "\ud800 surrogate", "\0\1\2",
            "".join(chr(rng.randrange(1, 0x3000)) for _ in range(3000)), '"' * 7, "/*", "#if\n#else\n#endif\n{"]
    for s in junk:
        r = dom.check(s, ctx)
        assert not [i for i in r.issues if i.kind == "check_error"], (s[:20], r.issues)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")
def test_gcc_pass_rate_is_optional():
    assert _check("int main(void) { return 0; }\n").metrics["gcc_syntax_ok"] is None
    assert _check("int main(void) { return 0; }\n", gcc=True).metrics["gcc_syntax_ok"] == 1.0
    r = _check("int main(void) { return 0 }\n", gcc=True)
    assert r.metrics["gcc_syntax_ok"] == 0.0 and any(i.kind == "gcc" for i in r.issues)


# ---- tracker and features --------------------------------------------------------------------
def test_tracker_bans_wrong_closers_newlines_in_literals_and_early_file_ends():
    t = CDomain().tracker()
    assert t.constraint().ban == frozenset(")]}")
    t.feed_text("int f(int a)\n{\n\tg(a[")
    assert t.constraint().ban == frozenset(")}" + SEP)
    t.feed_text("1], ")
    assert t.constraint().ban == frozenset("]}" + SEP)
    t.feed_text('"x')
    assert t.constraint().ban == frozenset("\n" + SEP)
    t.feed_text("\\")
    assert "\n" not in t.constraint().ban  # an escaped newline continues the string
    t.feed_text('n", \'}\' /* ) */ // ]\n')
    assert t.constraint().ban == frozenset("]}" + SEP) and t.violations() == 0
    t3 = CDomain().tracker()
    t3.feed_text(IFDEF_HEADS + FILE_SEPARATOR)
    assert t3.violations() == 0 and t3.scan.stack == []
    t2 = CDomain().tracker()
    t2.feed_text("x = (a]; }\n\"abc\n")
    assert t2.violations() == 3
    only = CDomain().tracker(["literals"])
    only.feed_text("f(")
    assert only.constraint().free or only.constraint().ban == frozenset()


def test_tracker_constraints_are_shared_objects_for_equal_states():
    a, b = CDomain().tracker(), CDomain().tracker()
    a.feed_text("int f() { if (x")
    b.feed_text("void g(void) { while (y")
    assert a.constraint() is b.constraint()
    assert isinstance(a.constraint(), Constraint)


@pytest.mark.parametrize("prefix", [
    "int f(int a)\n{\n\tif (a && g(\"x", "int f(void)\n{\n\t/* a comment", "x = 'a\\",
    "#ifdef A\nint f(void)\n{\n#else\nint f(int a)\n{\n\tx = a[1", "#define X(a) \\", "// note",
    "void f(void) {\n\tchar *s = \"abc\\",
])
def test_closing_closes_everything_in_order(prefix):
    t = CDomain().tracker()
    t.feed_text(prefix)
    close = t.closing()
    t.feed_text(close)
    s = t.scan
    assert s.stack == [] and s.mode == c_scan.CODE and s.conds == [] and t.violations() == 0
    bal = c_lex.balance(prefix + close)
    assert bal.unclosed == [] and bal.mismatches == [] and bal.unterminated == []
    assert c_lex.balance(prefix).closing == close


def test_features_mark_strings_comments_depths_conditions_and_directives():
    text = '#define N 1\nint f(int a)\n{\n\tif (a > (N)) {\n\t\tg("s");\t/* c */\n\t}\n}\n'
    f = CDomain().features(text)
    assert set(f) == set(c_scan.FEATURES) and all(len(v) == len(text) for v in f.values())
    at = text.index
    assert f["in_preprocessor"][0] == 1 and f["in_preprocessor"][at("int")] == 0
    assert f["in_string"][at('"s"'):at('"s"') + 3].tolist() == [1, 1, 1] and f["in_string"][at("g(")] == 0
    assert f["in_comment"][at("/* c */"):at("/* c */") + 7].tolist() == [1] * 7
    assert f["brace_depth"][at("if")] == 1 and f["brace_depth"][at("g(")] == 2
    assert f["in_if_condition"][at("a >")] == 1 and f["in_if_condition"][at("N)")] == 1
    assert f["in_if_condition"][at("g(")] == 0 and f["paren_depth"][at("N)")] == 2
    assert f["line_position"][at("if")] == 2  # tab, then 'i' is the second character


# ---- corruption ------------------------------------------------------------------------------
def test_corrupt_damages_each_target_and_is_repeatable():
    text = CLEAN + "\nint h(int tty, int other)\n{\n\tint err = 0;\n\tif (tty == other)\n\t\terr = 1;\n\treturn err;\n}\n"
    a, b = CDomain().corrupt(text, random.Random(3)), CDomain().corrupt(text, random.Random(3))
    assert a == b and a != text
    ra, rc = _check(text).metrics, _check(a).metrics
    assert rc["unclosed_brackets"] > ra["unclosed_brackets"]
    assert rc["undeclared_ids"] > ra["undeclared_ids"] and rc["unused_locals"] > ra["unused_locals"]
    assert rc["self_comparisons_per_kb"] > 0


# ---- the real kernel subset -------------------------------------------------------------------
def _kernel_files(shared: Path) -> list[Path]:
    root = shared / "c" / "linux-6.1"
    if not root.is_dir():
        pytest.skip("the C corpus is not in ../shared/corpora")
    return sorted(p for p in root.rglob("*") if p.suffix in (".c", ".h"))


def test_lexer_finds_no_fault_in_real_kernel_files(shared):
    files = _kernel_files(shared)
    assert len(files) == 669
    for p in files[::3]:  # a third here (time); all 669 measured: no mismatch, unclosed or unterminated
        bal = c_lex.balance(p.read_text(encoding="utf-8"))
        assert not (bal.mismatches or bal.unclosed or bal.unterminated), p


def test_tracker_never_flags_real_kernel_code(shared):
    for p in _kernel_files(shared)[::9]:  # every 9th file here; all 669 measured: 0 violations
        t = CDomain().tracker()
        t.feed_text(p.read_text(encoding="utf-8") + FILE_SEPARATOR)
        assert t.violations() == 0, p


@pytest.fixture(scope="module")
def kernel(tmp_path_factory) -> CorpusData:
    from conftest import shared_corpora_dir

    shared = shared_corpora_dir()
    if shared is None or not (shared / "c" / "linux-6.1").is_dir():
        pytest.skip("the C corpus is not in ../shared/corpora")
    out = tmp_path_factory.mktemp("linux") / "linux"
    prepare(resolve_corpus("linux"), get_domain("c"), str(shared / "c" / "linux-6.1"), out)
    return CorpusData(out)


def _calibrate(data: CorpusData, ctx: EvalContext, n: int = 80) -> tuple[dict, dict, float]:
    dom, rng = CDomain(), random.Random(1)
    real = dom.baseline(data, [2048] * n, rng)
    bad = [dom.corrupt(t, rng) for t in real]
    t0 = time.process_time()
    res_real = [dom.check(t, ctx) for t in real]
    speed = sum(map(len, real)) / (time.process_time() - t0) / 1e6
    res_bad = [dom.check(t, ctx) for t in bad]

    def mean(results, name):
        vals = [r.metrics[name] for r in results if r.metrics.get(name) is not None]
        return sum(vals) / len(vals)

    names = [m.name for m in dom.metrics if m.name not in ("void_returns", "gcc_syntax_ok")]
    return ({k: mean(res_real, k) for k in names}, {k: mean(res_bad, k) for k in names}, speed)


CALIBRATED = ["error_bytes", "missing_per_kb", "clean_definitions", "bracket_errors_per_kb", "unclosed_brackets",
              "unterminated_per_kb", "undeclared_ids", "unused_locals", "falls_off_end", "self_comparisons_per_kb"]


def _assert_calibrated(real: dict, bad: dict) -> None:
    specs = {m.name: m for m in CDomain().metrics}
    for name in CALIBRATED:
        r, b = real[name], bad[name]
        if specs[name].higher_is_better:
            assert b < 0.85 * r, (name, r, b)  # corrupted clearly worse ...
        else:
            assert b > 1.5 * r + 0.01, (name, r, b)
    # ... and real code clean where the kernel is clean (these checks almost never fire on it)
    assert real["bracket_errors_per_kb"] == 0 and real["unused_locals"] < 0.01
    assert real["falls_off_end"] < 0.02 and real["self_comparisons_per_kb"] == 0
    assert real["error_bytes"] < 0.1 and real["clean_definitions"] > 0.8


def test_corrupted_kernel_code_scores_clearly_worse_on_every_check(kernel):
    real, bad, _speed = _calibrate(kernel, EvalContext(domain=CDomain()))  # speed: gen bench --eval
    _assert_calibrated(real, bad)


@pytest.mark.slow
def test_calibration_holds_against_the_training_corpus_names(kernel):
    ctx = EvalContext(domain=CDomain(), data=kernel)
    stats = ctx.stats
    assert isinstance(stats, CStats) and len(stats.names) > 20_000
    assert {"jiffies", "kmalloc", "current"} <= stats.names and "tty" not in stats.names
    real, bad, _ = _calibrate(kernel, ctx)
    _assert_calibrated(real, bad)
    assert real["undeclared_ids"] < 0.05  # kernel APIs and globals come from the corpus names


def test_semantic_checks_rarely_fire_on_whole_real_files(shared):
    tally = c_sem.Tally()
    for p in _kernel_files(shared)[::25]:
        t = c_sem.analyze(p.read_text(encoding="utf-8"))
        for k in ("locals", "unused", "value_fns", "falls_off", "void_fns", "void_returns", "self_cmp"):
            setattr(tally, k, getattr(tally, k) + getattr(t, k))
    assert tally.locals > 500 and tally.value_fns > 200 and tally.void_fns > 100
    assert tally.unused / tally.locals < 0.01 and tally.falls_off / tally.value_fns < 0.01
    assert tally.void_returns == 0 and tally.self_cmp == 0


def test_a_macro_that_returns_ends_the_function():
    """clang sees the expansion: `RETURN_ZERO;` after `#define RETURN_ZERO return 0` returns;
    a macro that returns only under an `if` does not (the function can still fall off)."""
    c = get_domain("c")
    ends = ["#define RETURN_ZERO return 0\nint f(int a) {\n    a++;\n    RETURN_ZERO;\n}\n",
            "#define FAIL(x) return -(x)\nint f(int a) {\n    a++;\n    FAIL(a);\n}\n"]
    for src in ends:
        assert c.check(src, EvalContext(c)).metrics["falls_off_end"] == 0.0, src
    falls = "#define CHECK(x) if (x) return 1\nint f(int a) {\n    CHECK(a);\n}\n"
    assert c.check(falls, EvalContext(c)).metrics["falls_off_end"] == 1.0
    assert c.check("int f(int a) {\n    a++;\n    RETURN_ZERO;\n}\n", EvalContext(c)).metrics["falls_off_end"] == 1.0

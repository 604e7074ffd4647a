"""Plugin system: throwaway plugins, entry-point plugins, GEN_PLUGINS, and hook coverage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import click
import pytest

from gen.core import hookspecs
from gen.core.api import CheckResult, CorpusSpec, Domain, MetricSpec, Option, SampleMetric
from gen.core.errors import GenError
from gen.core.hookspecs import hookimpl
from gen.core.plugins import register_plugin, unregister_plugin
from gen.core.registry import get_domain, get_registry, resolve_corpus


class ToyDomain(Domain):
    name = "toy"
    description = "a throwaway test domain"
    default_corpus = "toybox"
    metrics = (MetricSpec("has_x", True),)

    def check(self, sample, ctx):
        return CheckResult({"has_x": float("x" in sample)})


class ToyMetric(SampleMetric):
    name = "toylen"
    metrics = (MetricSpec("toylen", None),)

    def check(self, sample, ctx):
        return CheckResult({"toylen": float(len(sample))})


class ToyPlugin:
    @hookimpl
    def register_domains(self, register):
        register(ToyDomain())

    @hookimpl
    def register_corpora(self, register):
        register(CorpusSpec(name="toybox", domain="toy", patterns=["*.toy"]))

    @hookimpl
    def register_metrics(self, register):
        register(ToyMetric())

    @hookimpl
    def register_commands(self, cli):
        import click

        @cli.command(name="toy-hello")
        def hello():
            click.echo("hello from toy")


def test_register_throwaway_plugin(run, ws, tmp_path):
    register_plugin(ToyPlugin(), name="toy-plugin")
    try:
        assert get_domain("toy").name == "toy"
        assert resolve_corpus("toy").name == "toybox"  # domain name -> its default corpus
        assert any(m.name == "toylen" for m in get_registry().metrics)
        src = tmp_path / "src"
        src.mkdir()
        (src / "a.toy").write_text("xyz " * 300)
        (src / "skip.txt").write_text("not taken")
        out = run("prepare", "toy", "--src", str(src)).output
        assert "prepared toybox (toy)" in out and "skipped 1: not matching" in out
        samples = tmp_path / "s.txt"
        samples.write_text("axb")
        out = run("eval", "toy", str(samples), "--json").output
        assert '"has_x"' in out and '"toylen"' in out
        assert "registered at run time" in run("domains").output
        from gen.core.cli import cli

        hookspecs_pm = __import__("gen.core.plugins", fromlist=["pm"]).pm
        hookspecs_pm.hook.register_commands(cli=cli)
        assert "hello from toy" in run("toy-hello").output
    finally:
        unregister_plugin("toy-plugin")
        from gen.core.cli import cli

        cli.commands.pop("toy-hello", None)
    with pytest.raises(GenError, match="unknown domain 'toy'"):
        get_domain("toy")


def _entry_point_env(tmp_path: Path) -> dict[str, str]:
    """A third-party plugin installed the way pip would: a module plus dist-info entry points."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "gen_thirdparty.py").write_text(textwrap.dedent('''
        from gen.core.api import CheckResult, Choice, Domain, MetricSpec, Option, hookimpl

        class Morse(Domain):
            name = "morse"
            description = "dots and dashes (third-party test plugin)"
            metrics = (MetricSpec("symbol_share", None, "share of the chosen symbol"),)
            eval_options = (Option("symbol", "which symbol to count", ".", Choice((".", "-"))),)

            def claim(self, source):
                return source.suffix_claim((".morse",), "Morse code")

            def check(self, sample, ctx):
                marks = [c for c in sample if c in ".-"]
                share = marks.count(ctx.options["symbol"]) / len(marks) if marks else None
                return CheckResult({"symbol_share": share})

        @hookimpl
        def register_domains(register):
            register(Morse())
    '''))
    dist = site / "gen_thirdparty-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: gen-thirdparty\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[gen]\nmorse = gen_thirdparty\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = str(site) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _gen(args: list[str], env: dict[str, str]) -> str:
    out = subprocess.run([sys.executable, "-m", "gen.core.cli", *args], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout + out.stderr


def test_entry_point_plugin_loads_like_builtins(tmp_path):
    env = _entry_point_env(tmp_path)
    out = _gen(["domains"], env)
    assert "morse" in out and "entry point gen_thirdparty (dist gen-thirdparty 0.1)" in out
    assert "entry point gen.plugins.names" in out


def test_env_var_limits_third_party_plugins_only(tmp_path):
    env = _entry_point_env(tmp_path)
    env["GEN_PLUGINS"] = "morse"
    out = _gen(["domains"], env)
    assert "morse" in out and "names " in out  # built-ins always load
    assert "morse" in _gen(["eval", "--help"], env)  # and so does gen eval (a built-in plugin)
    env["GEN_PLUGINS"] = "other"
    out = _gen(["domains"], env)
    assert "morse" not in out and "names " in out


def test_third_party_domain_claims_its_sources_and_declares_options(tmp_path):
    """A third-party domain, installed like a pip package, is inferred from the sources it claims
    (and says why) and its option of gen's own type works on `gen eval`."""
    env = _entry_point_env(tmp_path)
    env["GEN_HOME"] = str(tmp_path / "ws")
    src = tmp_path / "signals.morse"
    src.write_text("... --- ...\n.-.. --- .-. . --\n" * 200)
    out = _gen(["prepare", "x", "--src", str(src)], env)
    assert "new corpus 'x': domain morse (1 of 1 files are Morse code)" in out
    samples = tmp_path / "s.jsonl"
    samples.write_text('{"text": "..-"}\n{"text": "-"}\n')
    dots = json.loads(_gen(["eval", "morse", str(samples), "--symbol", ".", "--json", "--no-baseline"], env)
                      .split("wrote")[0])
    dashes = json.loads(_gen(["eval", "morse", str(samples), "--symbol", "-", "--json", "--no-baseline"], env)
                        .split("wrote")[0])
    assert dots["metrics"]["symbol_share"]["value"] == pytest.approx((2 / 3 + 0) / 2)
    assert dashes["metrics"]["symbol_share"]["value"] == pytest.approx((1 / 3 + 1) / 2)
    bad = subprocess.run([sys.executable, "-m", "gen.core.cli", "eval", "morse", str(samples), "--symbol", "x"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "'x' is not one of '.', '-'" in bad.stderr


def test_every_hook_has_a_test():
    hooks = [n for n in dir(hookspecs) if n.startswith("register_")]
    tests_text = "".join(p.read_text() for p in Path(__file__).parents[1].rglob("test_*.py"))
    for hook in hooks:
        assert f"def {hook}(" in tests_text, f"hook {hook} has no test plugin implementing it"


class NeedleDomain(Domain):
    """A throwaway domain that declares its own eval options."""

    name = "needle"
    description = "counts a needle string (declared options test)"
    metrics = (MetricSpec("needles", None), MetricSpec("enough", True))
    eval_options = (
        Option("needle", "the string to count", "x"),
        Option("min_count", "how many make a sample good", 1, click.IntRange(min=1)),
    )

    def check(self, sample, ctx):
        n = sample.count(ctx.options["needle"])
        return CheckResult({"needles": float(n), "enough": float(n >= ctx.options["min_count"])})


class NeedlePlugin:
    @hookimpl
    def register_domains(self, register):
        register(NeedleDomain())

    @hookimpl
    def register_run_writers(self, register):
        def write_marker(run):
            path = run.path / "needle-writer.txt"
            path.write_text(f"written for {run.path.name}")
            return path

        register(write_marker)

    @hookimpl
    def register_card_sections(self, register):
        register(lambda loaded, samples, ws: f"## Needles\n\n{sum(s.count('a') for s in samples)} a's in "
                                             f"{len(samples)} samples of {loaded.ckpt['corpus']}\n")


def test_declared_eval_options_work_end_to_end(run, ws, tmp_path, names_file):
    register_plugin(NeedlePlugin(), name="needle-plugin")
    try:
        samples = tmp_path / "s.jsonl"
        samples.write_text('{"text": "qq x q"}\n{"text": "none"}\n')
        summary = json.loads(run("eval", "needle", str(samples), "--needle", "q", "--min-count", "2",
                                 "--json", "--out", str(tmp_path / "e")).output.split("\nwrote")[0])
        assert summary["metrics"]["needles"]["value"] == 1.5 and summary["metrics"]["enough"]["value"] == 0.5
        default = json.loads(run("eval", "needle", str(samples), "--json", "--out", str(tmp_path / "d"))
                             .output.split("\nwrote")[0])
        assert default["metrics"]["needles"]["value"] == 0.5  # the declared default "x"
        assert "--needle TEXT" in run("eval", "needle", "--help").output
        bad = run("eval", "needle", str(samples), "--min-count", "0", code=2).output
        assert "--min-count" in bad and "Traceback" not in bad
        assert "--min-count INTEGER" in run("domains", "needle").output
        # a run writer registered by a plugin runs when training ends
        run("prepare", "nm", "--domain", "names", "--src", str(names_file))
        out = run("train", "nm", "--layers", "1", "--hidden", "16", "--embd", "8", "--batch-size", "4",
                  "--seq-len", "16", "--max-steps", "3", "--eval-every", "3", "--quiet", "--device", "cpu",
                  "--run-name", "w").output
        marker = ws / "runs" / "nm" / "w" / "needle-writer.txt"
        assert marker.read_text() == "written for w" and "needle-writer.txt" in out
        # a model card section registered by a plugin appears in an exported model's card
        run("export", "nm", "--out", str(tmp_path / "exp"), "--no-onnx")
        card = (tmp_path / "exp" / "README.md").read_text()
        assert "## Needles" in card and "in 20 samples of nm" in card and "## Domain eval" in card
    finally:
        unregister_plugin("needle-plugin")

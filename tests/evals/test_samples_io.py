"""Samples in, records out: lone surrogates never crash a write, and a samples folder follows
the rules of `gen prepare` (no symlink out of it, binary files skipped, every skip said)."""

from __future__ import annotations

import json


def test_a_lone_surrogate_is_recorded_not_a_crash(run, ws, tmp_path):
    samples = tmp_path / "s.jsonl"
    samples.write_text('{"text": "bad \\ud800 char (x"}\n{"text": "fine (y)"}\n')
    out = run("eval", "prose", str(samples), "--json", "--out", str(tmp_path / "e")).output
    assert json.loads(out.split("\nwrote")[0])["n"] == 2
    records = [json.loads(line) for line in (tmp_path / "e" / "records.jsonl").read_text().splitlines()]
    assert len(records) == 2 and records[0]["length"] == len("bad \ud800 char (x")
    json.loads((tmp_path / "e" / "summary.json").read_text())  # valid JSON, written at the end


def test_samples_folder_follows_the_prepare_rules(run, ws, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-LINE\n")
    folder = tmp_path / "samples"
    folder.mkdir()
    (folder / "a.txt").write_text("int main(void) { return 0; }\n")
    (folder / "b.bin").write_bytes(b"\x7fELF\x02\x01\x01" + bytes(100))
    (folder / "latin1.txt").write_bytes("caf\xe9 {\n".encode("latin-1"))  # bad bytes are data
    (folder / "escape.txt").symlink_to(secret)
    out = run("eval", "c", str(folder), "--json", "--out", str(tmp_path / "e")).output
    assert "skipped 1 file(s)" in out and "symlink pointing outside --src" in out and "ELF" in out
    assert json.loads(out.split("\n", 2)[-1].split("\nwrote")[0])["n"] == 2
    assert "TOP-SECRET" not in (tmp_path / "e" / "records.jsonl").read_text()


def test_an_empty_samples_file_is_no_sample_in_every_domain(run, ws, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    for domain in ("names", "prose", "wiki", "latex", "c", "text"):
        assert "no samples found" in run("eval", domain, str(empty), code=1).output


def test_the_baseline_costs_about_as_much_as_the_samples_and_at_most_a_megabyte():
    from gen.evals.harness import BASELINE_MAX_CHARS, baseline_lengths

    small = [c * n for c, n in zip("abcdefghij", (500, 300, 900, 200, 700, 100, 800, 400, 600, 500), strict=True)]
    assert baseline_lengths(small) == [500, 900, 700, 800, 600]  # every other one, across the whole set
    even = ["q" * 300] * 1001
    assert abs(sum(baseline_lengths(even)) - 300 * 1001 / 2) <= 300  # half the characters
    assert baseline_lengths(["x" * 500]) == [500]  # one sample: one text of its length
    big = ["y" * 6000] * 1000  # 6 MB of samples
    lengths = baseline_lengths(big)
    assert sum(lengths) <= BASELINE_MAX_CHARS < sum(lengths) + 2 * 6000 and set(lengths) == {6000}
    assert baseline_lengths(["z" * 3_000_000]) == [BASELINE_MAX_CHARS]
    assert baseline_lengths([]) == []


def test_an_interrupted_eval_keeps_what_it_scored(run, ws, tmp_path):
    from gen.core.api import CheckResult, Domain, MetricSpec, hookimpl
    from gen.core.plugins import register_plugin, unregister_plugin

    class Impatient(Domain):
        name = "impatient"
        metrics = (MetricSpec("len", None),)

        def check(self, sample, ctx):
            if sample == "stop":
                raise KeyboardInterrupt  # Ctrl-C while scoring
            return CheckResult({"len": float(len(sample))})

    class Plugin:
        @hookimpl
        def register_domains(self, register):
            register(Impatient())

    samples = tmp_path / "s.jsonl"
    samples.write_text("".join(json.dumps({"text": "ok"}) + "\n" for _ in range(300)) + '{"text": "stop"}\n')
    register_plugin(Plugin(), name="impatient")
    try:
        out = run("eval", "impatient", str(samples), "--out", str(tmp_path / "e"), code=1).output
    finally:
        unregister_plugin("impatient")
    assert "interrupted: 256 of 301 samples scored" in out
    assert len((tmp_path / "e" / "records.jsonl").read_text().splitlines()) == 256
    assert json.loads((tmp_path / "e" / "summary.json").read_text())["partial"] is True


def test_a_set_level_check_that_raises_is_recorded_in_the_summary(ws):
    from gen.core.api import CheckResult, Domain, EvalContext, MetricSpec
    from gen.evals.harness import evaluate

    class Grumpy(Domain):
        name = "grumpy"
        metrics = (MetricSpec("len", None),)

        def check(self, sample, ctx):
            return CheckResult({"len": float(len(sample))})

        def summarize(self, samples, results, ctx):
            raise ValueError("no set figure today")

    d = Grumpy()
    summary = evaluate(d, ["a", "bb"], EvalContext(d), baseline=False).summary()
    assert summary["metrics"]["len"]["value"] == 1.5
    assert summary["set_issues"][0]["kind"] == "check_error" and "no set figure" in summary["set_issues"][0]["message"]

"""The run experience: config files and --show-config, resumes that need no options, budgets that
hold, TensorBoard events, and a clear message (never a traceback) for every bad value."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from gen.core.cli import cli

SMALL = ["--layers", "1", "--hidden", "16", "--embd", "8", "--batch-size", "4", "--seq-len", "16", "--quiet",
         "--device", "cpu"]


def test_config_file_and_show_config(run, ws, names_file, tmp_path):
    run("prepare", "nm", "--domain", "names", "--src", str(names_file))
    conf = tmp_path / "run.toml"
    conf.write_text('[train]\nlayers = 1\nn_hidden = 48\nmax_time = "2m"\nlr = 0.002\nrecipe = "defaults"\n')
    out = run("train", "nm", "--config", str(conf), "--lr", "0.005", "--show-config").output
    rows = {line.split()[0]: line.split(None, 2)[1:] for line in out.splitlines()[3:] if line.strip()}
    assert rows["n_layer"] == ["1", f"file {conf}"] and rows["n_hidden"] == ["48", f"file {conf}"]
    assert rows["max_time"] == ["120.0", f"file {conf}"] and rows["lr"] == ["0.005", "command line"]
    assert rows["seq_len"][1] == "domain names (cpu)" and rows["optimizer"] == ["'adamw'", "default"]
    assert not (ws / "runs").exists()  # --show-config trains nothing and makes no folder
    bad = tmp_path / "bad.toml"
    bad.write_text("n_layer = 0\n")
    assert "n_layer=0 is out of range" in run("train", "nm", "--config", str(bad), code=1).output
    bad.write_text("colour = 'red'\n")
    assert "unknown training option 'colour'" in run("train", "nm", "--config", str(bad), code=1).output


def test_resume_takes_everything_from_the_checkpoint(run, ws, names_file):
    run("prepare", "nm", "--domain", "names", "--src", str(names_file))
    run("train", "nm", *SMALL, "--hidden", "24", "--max-steps", "20", "--eval-every", "10", "--run-name", "r")
    last = str(ws / "runs" / "nm" / "r" / "last.pt")
    out = run("train", "nm", "--resume", last, "--quiet").output  # no options at all
    assert "changed on resume" not in out and "stopped (steps) at step 20" in out
    out = run("train", "nm", "--resume", last, "--max-steps", "30", "--quiet").output
    assert "changed on resume: max_steps: 20 -> 30 (command line)" in out and "at step 30" in out
    out = run("train", "nm", "--resume", last, "--hidden", "32", code=1).output
    assert "different model shape (n_hidden: checkpoint 24, asked 32)" in out
    cfg = json.loads((ws / "runs" / "nm" / "r" / "config.json").read_text())
    assert cfg["n_hidden"] == 24 and cfg["max_steps"] == 30  # the run folder keeps the resolved config


def test_failed_starts_leave_no_run_folder(run, ws, names_file):
    run("prepare", "nm", "--domain", "names", "--src", str(names_file))
    run("train", "nm", "--layers", "0", code=2)
    run("train", "nm", "--max-time", "10q", code=2)
    out = run("train", "nm", *SMALL, "--batch-size", "512", "--seq-len", "512", code=1).output
    assert "too few" in out
    assert not (ws / "runs").exists() or not list((ws / "runs").rglob("*"))


def test_time_budget_covers_the_whole_command(tmp_path, names_file):
    """--max-time is wall time for the command (start-up, final validation and checkpoint
    included); a sample is written and TensorBoard can read the run's events."""
    ws = tmp_path / "ws"
    env = dict(os.environ, GEN_HOME=str(ws), MPLCONFIGDIR=str(tmp_path / "mpl"))
    gen = [sys.executable, "-m", "gen.core.cli"]
    subprocess.run([*gen, "prepare", "nm", "--domain", "names", "--src", str(names_file)], env=env, check=True, capture_output=True)
    t0 = time.monotonic()
    out = subprocess.run([*gen, "train", "nm", "--layers", "2", "--hidden", "128", "--batch-size", "8",
                          "--seq-len", "32", "--max-steps", "1000000", "--eval-every", "100000", "--eval-chars", "0",
                          "--sample-every", "100000", "--max-time", "12s", "--quiet", "--device", "cpu",
                          "--run-name", "t"], env=env, capture_output=True, text=True, timeout=120)
    wall = time.monotonic() - t0
    assert out.returncode == 0, out.stdout + out.stderr
    assert 9.0 <= wall <= 14.0, (wall, out.stdout)
    run = ws / "runs" / "nm" / "t"
    evolution = [json.loads(x) for x in (run / "samples-during-training.jsonl").read_text().splitlines()]
    assert evolution[-1]["step"] > 0 and evolution[-1]["text"]  # a trained sample, though 100000 never came
    assert "stopped (time)" in out.stdout
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run), size_guidance={"tensors": 0, "scalars": 0})
    acc.Reload()
    tags = acc.Tags()
    assert {"train/loss", "train/lr", "train/chars_per_s", "val/loss"} <= set(tags["scalars"])
    assert acc.Scalars("val/loss")[-1].step == evolution[-1]["step"]
    assert "samples/text_summary" in tags["tensors"]


def test_budget_scales_warmup_to_a_short_run():
    from gen.core.budget import Budget
    from gen.core.config import TrainConfig

    assert Budget(TrainConfig(max_steps=30), 0, 0.0, None, 1).warmup == 3
    assert Budget(TrainConfig(max_steps=5000), 0, 0.0, None, 1).warmup == 50
    timed = Budget(TrainConfig(max_steps=10**6), 0, 0.0, time.monotonic() + 10.0, 1)
    for s in range(1, 6):
        timed.step_done(0.05, s)  # 20 steps/s and ~8.5 s left after the reserve: ~170 steps fit
    assert 12 <= timed.warmup <= 20 and 0 < timed.fraction(5, 0.25) < 0.1
    assert timed.fraction(10**6, 0.0) == 1.0 and not timed.out_of_time()


def _commands(group, prefix=()):
    ctx = None  # list_commands and get_command ignore the context here
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        yield (*prefix, name), cmd
        if hasattr(cmd, "list_commands"):
            yield from _commands(cmd, (*prefix, name))


def test_every_help_works():
    runner = CliRunner()
    seen = 0
    for path, _cmd in _commands(cli):
        res = runner.invoke(cli, [*path, "--help"], catch_exceptions=False)
        assert res.exit_code == 0 and "Usage:" in res.output, (path, res.output)
        seen += 1
    assert seen >= 15  # prepare/train/sample, eval and its five domains, viz, neurons, report, guided, bench ...
    assert CliRunner().invoke(cli, ["--version"]).output.startswith("gen, version ")


BAD = [  # (arguments, exit code, a fragment of the message)
    (["train", "nm", "--layers", "0"], 2, "0 is not in the range 1<=x<=64"),
    (["train", "nm", "--dropout", "1.5"], 2, "--dropout"),
    (["train", "nm", "--lr", "-1"], 2, "--lr"),
    (["train", "nm", "--max-time", "10q"], 2, "cannot read duration '10q'"),
    (["train", "nm", "--cell", "transformer"], 2, "'transformer' is not one of"),
    (["train", "nm", "--batch-size", "x"], 2, "'x' is not a valid integer"),
    (["sample", "nm", "-t", "-1"], 2, "-1.0 is not in the range x>=0.0"),
    (["sample", "nm", "--top-p", "2"], 2, "2.0 is not in the range 0.0<x<=1.0"),
    (["sample", "nm", "-n", "0"], 2, "0 is not in the range x>=1"),
    (["sample", "nm", "--top-k", "-3"], 2, "--top-k"),
    (["eval", "latex", "x.tex", "--latex-mode", "sloppy"], 2, "'sloppy' is not one of"),
    (["eval", "latex", "x.tex", "--compile-workers", "0"], 2, "--compile-workers"),
    (["eval", "klingon", "x"], 1, "unknown domain 'klingon'"),
    (["prepare", "names", "--src", "/nonexistent/names.txt"], 1, "does not exist"),
    (["prepare", "enwik8", "--src", "x", "--no-such-flag"], 2, "No such option"),
    (["train", "nm", "--resume", "/nonexistent/last.pt"], 2, "does not exist"),
    (["sample", "/nonexistent/best.pt"], 1, ""),
    (["guided", "nm", "-n", "0"], 2, "0 is not in the range x>=1"),
    (["bench", "--precisions", "fp16"], 2, "fp16"),
    (["viz", "/nonexistent.pt"], 1, ""),
    (["report", "/nonexistent-run"], 1, ""),
]


@pytest.mark.parametrize("args,code,fragment", BAD, ids=[" ".join(a) for a, _, _ in BAD])
def test_bad_values_get_a_clear_message(ws, args, code, fragment):
    res = CliRunner().invoke(cli, args, catch_exceptions=False)  # a traceback would raise here
    assert res.exit_code == code, res.output
    assert fragment in res.output and "Error" in res.output and "Traceback" not in res.output


def test_workspace_after_the_subcommand(run, tmp_path, names_file, monkeypatch):
    monkeypatch.delenv("GEN_HOME", raising=False)
    other = tmp_path / "elsewhere"
    out = run("prepare", "nm", "--domain", "names", "--src", str(names_file), "--workspace", str(other)).output
    assert str(other) in out and (other / "corpora" / "nm" / "meta.json").is_file()
    assert "prepared" in run("corpora", "--workspace", str(other)).output


def test_sample_jsonl_without_out_writes_jsonl(run, ws, names_file):
    run("prepare", "nm", "--domain", "names", "--src", str(names_file))
    run("train", "nm", *SMALL, "--max-steps", "5", "--eval-every", "5", "--run-name", "j")
    run("sample", "nm", "-n", "3", "--jsonl")
    written = list((ws / "runs" / "nm" / "j" / "samples").iterdir())
    assert len(written) == 1 and written[0].suffix == ".jsonl"
    assert all("text" in json.loads(line) for line in written[0].read_text().splitlines())


def test_guided_saves_its_result(run, ws, names_file):
    run("prepare", "nm", "--domain", "names", "--src", str(names_file))
    run("train", "nm", *SMALL, "--max-steps", "5", "--eval-every", "5", "--run-name", "g")
    out = run("guided", "nm", "-n", "2", "-l", "20").output
    assert "sampling 2 x 20 characters without guidance" in out
    saved = list((ws / "evals").glob("guided-names-*.json"))
    assert len(saved) == 1 and set(json.loads(saved[0].read_text())["sets"]) == {"guided", "unguided"}


def test_python_api_example_in_the_readme_runs(tmp_path, monkeypatch):
    from conftest import make_names

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    code = readme.split("### From Python", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)  # the example reads names.txt from where it runs
    monkeypatch.setenv("GEN_HOME", str(tmp_path / "ws"))
    (tmp_path / "names.txt").write_text("\n".join(make_names(6000)) + "\n")  # enough for the default batch
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - our own README's example
    assert len(scope["names"]) == 10 and len(scope["losses"]) == 60
    assert scope["result"].best_val < 5 and 0 <= scope["report"].summary()["metrics"]["novel"]["value"] <= 1


def test_a_run_whose_validation_disagrees_with_training_is_warned_about():
    from gen.core.trust import warnings

    def run(vals: list[float], train: float = 1.0) -> list[str]:
        metrics = [{"step": s, "loss": train} for s in range(10, 1010, 10)]
        metrics += [{"step": 250 * (i + 1), "val_loss": v} for i, v in enumerate(vals)]
        return warnings(sorted(metrics, key=lambda m: m["step"]))

    assert run([1.10, 1.08, 1.07, 1.06]) == []  # validation follows training
    far = run([2.2, 2.3, 2.2, 2.25])
    assert len(far) == 1 and "above training from the first evaluations" in far[0]
    jumpy = run([1.3, 1.9, 1.2, 1.8])
    assert any("jumped by more than 0.2 nats/char 3 time(s)" in w for w in jumpy)
    assert warnings([{"step": 10, "loss": 1.0}, {"step": 20, "val_loss": 1.0, "val_chars": 1024}]) == []

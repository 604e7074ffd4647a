"""The CLI end to end on a tiny fixture: prepare, train, sample, eval; and its error messages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import TINY

from gen.core import checkpoint as ckpt_io


def test_prepare_train_sample_eval(ws: Path, names_file: Path, run, tmp_path: Path):
    out = run("prepare", "nm", "--domain", "names", "--src", str(names_file)).output
    assert "400 documents" in out and str(ws / "corpora" / "nm") in out
    meta = json.loads((ws / "corpora" / "nm" / "meta.json").read_text())
    assert meta["train_chars"] + meta["val_chars"] == sum(len(n) + 1 for n in names_file.read_text().split())
    assert meta["val_chars"] > 0 and meta["dtype"] == "uint8"

    out = run("train", "nm", *TINY, "--max-steps", "30", "--run-name", "t1").output
    run_dir = ws / "runs" / "nm" / "t1"
    assert "val loss" in out and str(run_dir) in out
    for name in ("best.pt", "last.pt", "metrics.jsonl", "loss.png", "config.json"):
        assert (run_dir / name).is_file(), name
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert any("val_loss" in m for m in metrics) and any("chars_per_s" in m for m in metrics)

    samples = tmp_path / "s.txt"
    out = run("sample", "nm", "-n", "12", "--seed", "3", "--out", str(samples)).output
    names = samples.read_text().splitlines()
    assert len(names) == 12 and all("\n" not in n for n in names)
    out = run("eval", "names", str(samples), "--against", "nm", "--out", str(tmp_path / "ev"), "--json").output
    summary = json.loads(out[: out.rindex("}") + 1])
    assert summary["n"] == 12
    assert summary["metrics"]["novel"]["higher_is_better"] is True
    assert 0.0 <= summary["metrics"]["novel"]["value"] <= 1.0
    assert "baseline" in summary and "corrupted" in summary
    records = (tmp_path / "ev" / "records.jsonl").read_text().splitlines()
    assert len(records) == 12 and json.loads(records[0])["index"] == 0

    out = run("eval", "names", "--checkpoint", "nm", "--temperatures", "0.1,1.5", "-n", "6", "--length", "40",
              "--against", "nm", "--out", str(tmp_path / "sweep")).output
    assert "0.1" in out and "1.5" in out and "unique_share" in out
    assert {p.name for p in (tmp_path / "sweep").iterdir()} >= {"sweep.json", "sweep.txt", "sweep.png"}


def test_sample_from_checkpoint_alone(ws: Path, names_file: Path, run, tmp_path: Path):
    run("prepare", "nm", "--domain", "names", "--src", str(names_file))
    run("train", "nm", *TINY, "--max-steps", "10", "--run-name", "solo")
    ckpt = ws / "runs" / "nm" / "solo" / "best.pt"
    moved = tmp_path / "elsewhere.pt"
    moved.write_bytes(ckpt.read_bytes())
    # a fresh workspace with no corpus: the checkpoint alone must be enough
    out = run("--workspace", str(tmp_path / "empty"), "sample", str(moved), "-n", "3", "--seed", "1",
              "--out", str(tmp_path / "o.txt")).output
    assert len((tmp_path / "o.txt").read_text().splitlines()) == 3, out


def test_prime_with_unseen_characters(ws: Path, names_file: Path, run, tmp_path: Path):
    run("prepare", "nm", "--domain", "names", "--src", str(names_file))
    run("train", "nm", *TINY, "--max-steps", "5", "--run-name", "p")
    result = run("sample", "nm", "--prime", "Zoë\u2603", "-n", "2", "--seed", "0", "--out", str(tmp_path / "p.txt"))
    assert "'ë'->'e'" in result.output  # the user is told how unseen characters were encoded
    assert all(s.startswith("Zoë\u2603") for s in (tmp_path / "p.txt").read_text().splitlines())


def test_unknown_names_list_valid_ones(ws: Path, run):
    out = run("prepare", "nosuch", code=1).output  # no --src: not a new corpus of yours either
    assert "unknown corpus or domain 'nosuch'" in out and "names" in out and "kantrowitz" in out
    assert "gen prepare nosuch --src PATH" in out
    out = run("eval", "klingon", "x.txt", code=1).output
    assert "unknown domain 'klingon'" in out and "names" in out


def test_unprepared_corpus_says_how_to_prepare(ws: Path, run):
    out = run("train", "kantrowitz", code=1).output
    assert "not prepared" in out and "gen prepare kantrowitz" in out


def test_domain_name_means_default_corpus(ws: Path, tmp_path: Path, run):
    src = tmp_path / "a.c"
    src.write_text("int main(void) { return 0; }\n" * 200)
    out = run("prepare", "c", "--src", str(src)).output  # the c domain's default corpus: linux
    assert "prepared linux (c)" in out
    listing = run("corpora").output
    assert any(line.startswith("linux") and "prepared" in line and "not prepared" not in line
               for line in listing.splitlines())


def test_domains_lists_origin(run):
    out = run("domains").output
    assert "names" in out and "entry point gen.plugins.names" in out and "census" in out


def test_resume_refuses_another_corpus(ws: Path, names_file: Path, run, tmp_path: Path):
    run("prepare", "nm", "--domain", "names", "--src", str(names_file))
    other = tmp_path / "other.txt"
    other.write_text("\n".join(f"Q{n}x" for n in range(300)) + "\n")
    run("prepare", "kantrowitz", "--src", str(other))
    run("train", "nm", *TINY, "--max-steps", "5", "--run-name", "a")
    out = run("train", "kantrowitz", *TINY, "--resume", str(ws / "runs/nm/a/last.pt"), code=1).output
    assert "trained on corpus 'nm'" in out


def test_eval_never_raises_on_bad_samples(ws: Path, tmp_path: Path, run):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(json.dumps({"text": t}) for t in ["", "\x00\x01", "a" * 5000, "é\u202e"]) + "\n")
    out = run("eval", "names", str(bad), "--json").output
    assert '"n": 4' in out


def test_corrupt_checkpoint_is_a_clear_error(ws: Path, names_file: Path, run):
    run("prepare", "nm", "--domain", "names", "--src", str(names_file))
    run("train", "nm", *TINY, "--max-steps", "5", "--run-name", "c")
    path = ws / "runs" / "nm" / "c" / "best.pt"
    path.write_bytes(path.read_bytes()[: 2000])
    out = run("sample", str(path), code=1).output
    assert "truncated, corrupt" in out and "Traceback" not in out
    assert ckpt_io.load(ws / "runs" / "nm" / "c" / "last.pt")["step"] == 5


def test_demo_runs_offline_on_the_packaged_corpus(ws: Path, run):
    out = run("demo", "--seconds", "4").output
    assert "20 generated names" in out and "novel" in out and "checkpoint:" in out
    assert (ws / "corpora" / "census" / "meta.json").is_file()
    # a budget too short for a full validation (a slow or busy machine): no best.pt, yet names
    short = run("demo", "--seconds", "0.2").output
    assert "20 generated names" in short and "checkpoint:" in short
    assert "best val loss" in short or "no full validation fitted" in short


def test_eval_of_a_file_starts_without_torch(ws: Path, names_file: Path, run, tmp_path: Path):
    """Importing torch costs 1-2 s per command; scoring a file needs none of it (a fresh interpreter)."""
    run("prepare", "nm", "--domain", "names", "--src", str(names_file))
    code = ("import sys; from gen.core.cli import main; sys.argv = ['gen', 'eval', 'names', sys.argv[1], "
            "'--against', 'nm', '--out', sys.argv[2]]\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "print('torch loaded' if 'torch' in sys.modules else 'no torch')")
    out = subprocess.run([sys.executable, "-c", code, str(names_file), str(tmp_path / "ev")], capture_output=True,
                         text=True, env={**os.environ, "GEN_HOME": str(ws)}, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("no torch") and (tmp_path / "ev" / "summary.json").is_file()

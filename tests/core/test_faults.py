"""The fault suite: SIGKILL during training and prepare, two processes on one run, path escapes,
binary and oversized input, odd workspaces, and files written only where they belong.

These run the real CLI in subprocesses (a kill must hit a real process). The kill loop takes
about a minute: marked slow, and run in CI like every test.
"""

from __future__ import annotations

import json
import os
import random
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gen.core import checkpoint as ckpt_io

TINY = ["--layers", "1", "--hidden", "32", "--embd", "8", "--batch-size", "4", "--seq-len", "16",
        "--threads", "1", "--quiet", "--device", "cpu"]


def _env(ws: Path) -> dict[str, str]:
    return dict(os.environ, GEN_HOME=str(ws), MPLCONFIGDIR=str(ws / ".mpl"))


def _gen(ws: Path, *args: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-m", "gen.core.cli", *args], env=_env(ws), capture_output=True,
                         text=True, timeout=300, **kw)
    if check:
        assert out.returncode == 0, out.stdout + out.stderr
    return out


def _start(ws: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "gen.core.cli", *args], env=_env(ws),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait_for(path: Path, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def _records(run: Path) -> list[tuple[int, str]]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [(e["step"], "val" if "val_loss" in e else "train") for e in map(json.loads, lines)]


@pytest.mark.slow
def test_sigkill_loop_resumes_to_the_uninterrupted_weights(tmp_path, names_file):
    """SIGKILL at seeded random moments: half while a process starts (before or while it
    loads the checkpoint), half while it trains (after it has logged a step), so the run keeps
    moving and never finishes before the kills are done. Every kill leaves a checkpoint that
    loads, and the run ends with exactly the weights and records of an uninterrupted one."""
    ws = tmp_path / "ws"
    _gen(ws, "prepare", "nm", "--domain", "names", "--src", str(names_file))
    args = ["train", "nm", *TINY, "--max-steps", "3000", "--eval-every", "50", "--sample-every", "600"]
    _gen(ws, *args, "--run-name", "ref")
    run = ws / "runs" / "nm" / "k"
    proc = _start(ws, *args, "--run-name", "k")
    _wait_for(run / "last.pt")
    rng, steps = random.Random(20261201), []
    for kill in range(12):
        if kill % 2:  # while it starts
            time.sleep(rng.uniform(0.1, 1.5))
        else:  # while it trains: after it logged a step of its own
            size = (run / "metrics.jsonl").stat().st_size
            deadline = time.time() + 60
            while (run / "metrics.jsonl").stat().st_size == size and time.time() < deadline:
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.6))
        assert proc.poll() is None, "the run finished before the kills were done"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        ckpt = ckpt_io.load(run / "last.pt")  # every kill leaves a checkpoint that loads
        assert not steps or ckpt["step"] >= steps[-1]
        steps.append(ckpt["step"])
        proc = _start(ws, "train", "nm", "--resume", str(run / "last.pt"), *TINY)
    assert proc.wait(timeout=300) == 0
    assert len(set(steps)) >= 4, steps  # it moved on between kills
    ref, got = ckpt_io.load(ws / "runs" / "nm" / "ref" / "last.pt"), ckpt_io.load(run / "last.pt")
    assert got["step"] == ref["step"] == 3000
    assert all(torch.equal(got["model"][k], ref["model"][k]) for k in ref["model"])
    assert _records(run) == _records(ws / "runs" / "nm" / "ref")  # each step and validation once
    evolution = [json.loads(x)["step"] for x in (run / "samples-during-training.jsonl").read_text().splitlines()]
    assert evolution == [0, 600, 1200, 1800, 2400, 3000]
    assert not list(run.glob(".*.tmp"))  # temporary files of killed writes were cleaned up


def test_two_trainings_on_one_run_folder(tmp_path, names_file):
    ws = tmp_path / "ws"
    _gen(ws, "prepare", "nm", "--domain", "names", "--src", str(names_file))
    run = ws / "runs" / "nm" / "busy"
    first = subprocess.Popen([sys.executable, "-m", "gen.core.cli", "train", "nm", *TINY, "--max-steps",
                              "100000", "--eval-every", "20", "--run-name", "busy"], env=_env(ws),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(run / "last.pt")
        second = _gen(ws, "train", "nm", "--resume", str(run / "last.pt"), *TINY, check=False)
        assert second.returncode == 1 and f"in use by process {first.pid}" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # the lock died with its holder: a resume now works
    out = _gen(ws, "train", "nm", "--resume", str(run / "last.pt"), *TINY, "--max-steps", "45")
    assert "stopped (steps)" in out.stdout


@pytest.mark.slow
def test_sigkill_during_prepare_keeps_the_old_data_and_leaves_no_orphan(tmp_path, names_file):
    ws = tmp_path / "ws"
    _gen(ws, "prepare", "book", "--domain", "prose", "--src", str(names_file))
    big = tmp_path / "big.txt"
    rng = random.Random(0)
    with open(big, "w") as fh:  # ~60 MB of prose-like lines, so the prepare runs for a while
        words = ["thou", "art", "the", "king", "and", "queen", "of", "all", "that", "is"]
        for _ in range(600):
            fh.write(" ".join(rng.choice(words) for _ in range(20_000)) + "\n")
    proc = _start(ws, "prepare", "book", "--src", str(big))
    corpora = ws / "corpora"
    deadline = time.time() + 60
    while not list(corpora.glob(".book.prepare-*/train.txt")):
        assert time.time() < deadline and proc.poll() is None, "the prepare never started writing"
        time.sleep(0.02)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert list(corpora.glob(".book.prepare-*"))  # the kill left its work folder
    meta = json.loads((corpora / "book" / "meta.json").read_text())
    assert meta["src"] == str(names_file)  # the old data is still there and trains
    _gen(ws, "train", "book", *TINY, "--max-steps", "5", "--eval-every", "5")
    out = _gen(ws, "prepare", "book", "--domain", "prose", "--src", str(names_file))
    assert "left by an interrupted prepare" in out.stdout
    assert not [p for p in corpora.iterdir() if p.name.startswith(".book.") and not p.name.endswith(".lock")]


ESCAPES = ["/tmp/gen-escape-abs", "../../../../tmp/gen-escape-rel", "a/b", "..", ".", "~", "-x", "", "a\\b",
           "x" * 101]


@pytest.mark.parametrize("name", ESCAPES)
def test_run_names_are_names_not_paths(tmp_path, names_file, run, ws, name):
    run("prepare", "nm", "--domain", "names", "--src", str(names_file))
    out = run("train", "nm", "--layers", "1", "--hidden", "8", "--max-steps", "1", "--quiet", "--device",
              "cpu", "--run-name", name, code=1).output
    assert "not a valid name" in out
    assert not Path("/tmp/gen-escape-abs").exists() and not Path("/tmp/gen-escape-rel").exists()
    assert not (ws / "runs" / "nm").exists() or not list((ws / "runs" / "nm").iterdir())


@pytest.mark.parametrize("command", ["prepare", "train", "sample"])
@pytest.mark.parametrize("name", ["../names", "/etc/passwd", "names/../../x"])
def test_corpus_arguments_are_names_not_paths(run, ws, command, name):
    out = run(command, name, code=1).output
    # sample's TARGET may also be a checkpoint path the user names: read safely, never run
    assert ("unknown corpus or domain" in out or "not a valid name" in out or "does not exist" in out
            or (command == "sample" and "not a gen checkpoint" in out)), out
    assert not (ws / "corpora").exists() or not any(p.is_dir() for p in (ws / "corpora").iterdir())


@pytest.mark.parametrize("domain", ["names", "prose", "wiki", "latex", "c"])
@pytest.mark.parametrize("blob", [b"\x7fELF\x02\x01\x01" + bytes(range(256)) * 40, b"%PDF-1.7\n" + b"x" * 5000,
                                  b"plain text with a NUL \x00 in it\n" * 50])
def test_binary_input_is_skipped_in_every_domain(run, ws, tmp_path, domain, blob):
    name = {"names": "names.txt", "prose": "book.txt", "wiki": "enwik8", "latex": "a.tex", "c": "a.c"}[domain]
    src = tmp_path / "src"
    src.mkdir()
    (src / name).write_bytes(blob)
    out = run("prepare", "blob", "--domain", domain, "--src", str(src), code=1).output
    assert "no text found" in out and "binary (" in out


def test_an_oversized_wiki_document_is_skipped_whole(tmp_path, monkeypatch, run, ws):
    from gen.plugins.wiki import source

    monkeypatch.setattr(source, "MAX_PAGE_CHARS", 10_000)
    page = "<page><title>A</title><text>ok</text></page>\n"
    dump = tmp_path / "enwik8"
    dump.write_text("<mediawiki>\n" + page + "<page><text>" + "x" * 50_000 + "</text></page>\n" + page
                    + "</mediawiki>\n")
    out = run("prepare", "enwik8", "--src", str(dump)).output
    assert "skipped 1: document larger than" in out
    text = (ws / "corpora" / "enwik8" / "train.bin").stat().st_size + (ws / "corpora" / "enwik8" / "val.bin").stat().st_size
    assert text < 1000  # none of the 50,000 x's were kept
    line = tmp_path / "line"
    line.write_text("y" * 50_000)  # no XML at all, one long line
    out = run("prepare", "enwik8", "--src", str(line), code=1).output
    assert "document larger than" in out and "no text found" in out


def _limited_fsize():
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))


@pytest.mark.parametrize("case", ["proc", "file", "fsize"])
def test_an_odd_workspace_is_a_one_line_error(tmp_path, names_file, case):
    if case == "proc":
        ws = Path("/proc/1/gen-ws")
    elif case == "file":
        ws = tmp_path / "a-file"
        ws.write_text("not a folder")
    else:
        ws = tmp_path / "ws"
    big = tmp_path / "big.txt"
    big.write_text(names_file.read_text() * 200)  # ~600 KB: more than the file size limit
    out = subprocess.run([sys.executable, "-m", "gen.core.cli", "--workspace", str(ws), "prepare", "nm", "--domain", "names",
                          "--src", str(big)], capture_output=True, text=True, timeout=120,
                         preexec_fn=_limited_fsize if case == "fsize" else None,
                         env=dict(os.environ, MPLCONFIGDIR=str(tmp_path / "mpl")))
    assert "Traceback" not in out.stderr, out.stderr
    if case == "file":  # click's own check of --workspace: a usage error
        assert out.returncode == 2 and "is a file" in out.stderr
        return
    assert out.returncode == 1 and out.stderr.count("\n") == 1, out.stdout + out.stderr
    assert "--workspace" in out.stderr


def test_sigint_before_the_first_validation_says_what_was_saved(tmp_path, names_file):
    ws = tmp_path / "ws"
    _gen(ws, "prepare", "nm", "--domain", "names", "--src", str(names_file))
    proc = subprocess.Popen([sys.executable, "-m", "gen.core.cli", "train", "nm", *TINY, "--max-steps",
                             "100000", "--eval-every", "100000", "--run-name", "early"], env=_env(ws),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _wait_for(ws / "runs" / "nm" / "early" / "metrics.jsonl")
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "no validation ran yet, so there is no best.pt" in out and "inf" not in out
    assert "best.pt" not in out.split("wrote")[-1] and "last.pt" in out.split("wrote")[-1]


def test_every_command_writes_only_into_the_workspace_or_out(tmp_path, names_file):
    """Run the commands a user runs from an empty folder with an empty HOME: afterwards only the
    workspace and the paths given with --out have files."""
    home, cwd, ws, out = tmp_path / "home", tmp_path / "cwd", tmp_path / "ws", tmp_path / "out"
    for d in (home, cwd):
        d.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("MPLCONFIGDIR", "XDG_CACHE_HOME", "XDG_CONFIG_HOME")}
    env.update(HOME=str(home), GEN_HOME=str(ws))

    def gen(*args: str) -> None:
        res = subprocess.run([sys.executable, "-m", "gen.core.cli", *args], env=env, cwd=cwd, capture_output=True,
                             text=True, timeout=300)
        assert res.returncode == 0, (args, res.stdout + res.stderr)

    gen("prepare", "nm", "--domain", "names", "--src", str(names_file))
    gen("train", "nm", *TINY, "--max-steps", "20", "--eval-every", "10", "--sample-every", "10", "--run-name", "r")
    ckpt = str(ws / "runs" / "nm" / "r" / "best.pt")
    gen("sample", "nm", "-n", "5")
    gen("sample", ckpt, "-n", "3", "--out", str(out / "s.txt"))
    gen("eval", "names", str(out / "s.txt"), "--against", "nm")
    gen("eval", "names", str(out / "s.txt"), "--against", "nm", "--out", str(out / "e"))
    gen("eval", "names", "--checkpoint", ckpt, "--temperatures", "0.5,1.0", "-n", "2", "--length", "20")
    gen("viz", ckpt, "--chars", "200")
    gen("neurons", ckpt, "--chars", "500")
    gen("report", str(ws / "runs" / "nm" / "r"))
    gen("guided", ckpt, "-n", "2", "-l", "20")
    gen("domains")
    gen("corpora")
    assert not list(cwd.rglob("*")) and not list(home.rglob("*")), (list(cwd.rglob("*")), list(home.rglob("*")))
    assert (ws / "evals").is_dir() and (out / "e" / "summary.json").is_file()


def test_a_corpus_being_prepared_is_locked(tmp_path, names_file):
    from gen.core.workspace import CorpusDir

    ws = tmp_path / "ws"
    with CorpusDir.of(ws, "nm").lock():  # this process "is preparing" names
        out = _gen(ws, "prepare", "nm", "--domain", "names", "--src", str(names_file), check=False)
        assert out.returncode == 1 and f"in use by process {os.getpid()}" in out.stderr
    assert "prepared nm" in _gen(ws, "prepare", "nm", "--domain", "names", "--src", str(names_file)).stdout


def test_a_corpus_read_while_it_is_prepared_again_is_one_generation(ws, tmp_path):
    """eval --against reads one generation of a corpus while prepare swaps in another: metadata,
    vocabulary and both splits always belong together, and caches are keyed by that generation."""
    import threading

    from gen.core.corpora import load_corpus, prepare_corpus

    small, large = tmp_path / "a.txt", tmp_path / "b.txt"
    small.write_text("abc\n" * 3000)
    large.write_text("the quick brown fox jumps over the lazy dog\n" * 4000)
    prepare_corpus("race", str(small), ws, domain="text", log=lambda _m: None)
    first = load_corpus("race", ws)[1]
    before = (first.digest, len(first.ids("train")), len(first.vocab))
    stop, errors = threading.Event(), []

    def prepare_again() -> None:
        try:
            for i in range(8):
                prepare_corpus("race", str(large if i % 2 == 0 else small), ws, log=lambda _m: None)
        except Exception as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)
        finally:
            stop.set()

    worker = threading.Thread(target=prepare_again)
    worker.start()
    seen = 0
    while not stop.is_set() or seen < 20:
        data = load_corpus("race", ws)[1]
        train, val = data.ids("train"), data.ids("val")
        assert len(train) == data.meta["train_chars"] and len(val) == data.meta["val_chars"]
        assert len(data.vocab) == data.meta["vocab_size"] and int(train.max()) < len(data.vocab)
        seen += 1
    worker.join()
    assert not errors and seen >= 20
    assert (first.digest, len(first.ids("train")), len(first.vocab)) == before  # its generation, still readable

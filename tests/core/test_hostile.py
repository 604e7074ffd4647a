"""Hostile shapes and options: each is a one-line error before anything is allocated or a run
folder exists (issue 32's reproducers, on tiny corpora written here)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import TINY

from gen.core import checkpoint as ckpt_io
from gen.core import shapes


def _no_runs(ws: Path) -> bool:
    return not (ws / "runs").exists() or not [p for p in (ws / "runs").rglob("*") if p.is_dir()
                                               and p.parent.name != "runs"]


@pytest.mark.parametrize("flags, says", [
    (["--hidden", "65536", "--batch-size", "2", "--seq-len", "8"], "GB is available"),
    (["--layers", "1", "--hidden", "32768", "--batch-size", "2", "--seq-len", "8"], "Lower --hidden, --layers"),
    (["--device", "foo"], "use auto, cpu, cuda or cuda:N"),
    (["--device", "meta"], "use auto, cpu, cuda or cuda:N"),
])
def test_training_that_cannot_run_is_refused_before_a_run_folder(run, ws, names_file, flags, says):
    run("prepare", "nm", "--domain", "names", "--src", str(names_file))
    out = run("train", "nm", "--max-steps", "2", "--quiet", *flags, code=1).output
    assert says in out and "Traceback" not in out
    assert _no_runs(ws)


@pytest.mark.parametrize("line, says", [
    ("lr = true", "lr=True is not a valid float"),
    ("n_layer = 1.7", "n_layer=1.7 is not a valid int"),
    ("dropout = \"0.2\"\ncell = \"transformer\"", "choose one of lstm, gru, rnn"),
])
def test_config_values_are_not_coerced(run, ws, names_file, tmp_path, line, says):
    run("prepare", "nm", "--domain", "names", "--src", str(names_file))
    cfg = tmp_path / "c.toml"
    cfg.write_text(line + "\n")
    assert says in run("train", "nm", "--config", str(cfg), "--show-config", code=1).output


def test_config_keys_outside_train_are_refused(run, ws, names_file, tmp_path):
    run("prepare", "nm", "--domain", "names", "--src", str(names_file))
    cfg = tmp_path / "c.toml"
    cfg.write_text("lr = 0.01\n[train]\nn_hidden = 32\n")
    assert "['lr'] sit outside [train]" in run("train", "nm", "--config", str(cfg), "--show-config", code=1).output


@pytest.fixture
def trained(run, ws, names_file) -> Path:
    run("prepare", "nm", "--domain", "names", "--src", str(names_file))
    run("train", "nm", *TINY, "--max-steps", "10", "--run-name", "r")
    return ws / "runs" / "nm" / "r" / "best.pt"


@pytest.mark.parametrize("edit, says", [
    (lambda c: c["model_args"].update(n_hidden=20000), "rnn.weight_ih_l0 has shape (128, 8), but"),
    (lambda c: c["model_args"].update(n_layer=10**6), "n_layer=1000000 is out of range"),
    (lambda c: c["model_args"].update(cell="transformer"), "cell = 'transformer': choose one of"),
    (lambda c: c["model_args"].update(n_hidden="32"), "n_hidden = '32' must be int"),
    (lambda c: c["model_args"].update(colour=1), "unknown ['colour']"),
    (lambda c: c["vocab"].update(chars=["a"]), "vocabulary does not hold"),
    (lambda c: c.update(model_args=None), "model arguments are missing"),
])
def test_a_checkpoint_with_a_bad_shape_is_refused_before_allocation(run, trained, tmp_path, edit, says):
    ckpt = ckpt_io.load(trained)
    edit(ckpt)
    bad = tmp_path / "bad.pt"
    ckpt_io.save(bad, {k: v for k, v in ckpt.items() if k not in ("format", "version")})
    out = run("sample", str(bad), "-n", "1", "-l", "5", code=1).output
    assert says in out and "Traceback" not in out


def test_shape_arithmetic_matches_the_model():
    from gen.core.model import CharRNN, ModelArgs

    for cell in ("lstm", "gru", "rnn"):
        args = {"vocab_size": 7, "cell": cell, "n_layer": 3, "n_hidden": 5, "n_embd": 4, "dropout": 0.0}
        model = CharRNN(ModelArgs(**args))
        assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == shapes.weight_shapes(args)
        assert shapes.n_params(args) == sum(p.numel() for p in model.parameters())
    big = {"vocab_size": 65, "cell": "lstm", "n_layer": 1, "n_hidden": 65536, "n_embd": 64, "dropout": 0.0}
    assert shapes.training_bytes(big, 32, 128) > 4 * 4 * 65536 * 65536  # the hidden-to-hidden matrix alone
    assert torch.get_num_threads() >= 1


def test_runs_racing_for_one_name_get_a_folder_each(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from gen.core.workspace import new_run_dir

    with ThreadPoolExecutor(8) as pool:
        runs = list(pool.map(lambda _i: new_run_dir(tmp_path, "nm", "same").path, range(16)))
    assert len(set(runs)) == 16 and all(p.is_dir() for p in runs)


def test_concurrent_trainings_share_the_cores(tmp_path):
    from gen.core.threads import ThreadShare

    stale = tmp_path / "cache" / "running" / "999999.1.lock"  # a process that died holding nothing
    stale.parent.mkdir(parents=True)
    stale.touch()
    before = torch.get_num_threads()
    try:
        _share_cores(tmp_path, stale, ThreadShare)
    finally:
        torch.set_num_threads(before)


def _share_cores(tmp_path, stale, ThreadShare) -> None:
    with ThreadShare(tmp_path, cores=8) as first:
        assert first.live() == 1 and not stale.exists()
        assert "every core" in first.apply() and torch.get_num_threads() == 8
        with ThreadShare(tmp_path, cores=8) as second:
            assert first.live() == second.live() == 2 and first.threads() == 4
            assert "8 cores shared by 2 trainings" in first.apply() and torch.get_num_threads() == 4
        assert first.live() == 1 and first.threads() == 8


def test_removing_a_linked_corpus_removes_the_link_only(run, ws, names_file, tmp_path):
    run("prepare", "nm", "--domain", "names", "--src", str(names_file))
    real = tmp_path / "elsewhere"
    (ws / "corpora" / "nm").rename(real)
    (ws / "corpora" / "nm").symlink_to(real)
    out = run("corpora", "--remove", "nm").output
    assert "a link; its target" in out and real.is_dir() and (real / "meta.json").is_file()
    assert not (ws / "corpora" / "nm").exists()


def test_a_closed_pipe_is_not_blamed_on_the_workspace(ws):
    """stdout whose reader is gone (`gen ... | head`): exit quietly, no workspace hint, no traceback."""
    import os
    import subprocess
    import sys

    code = ("import os, sys\nr, w = os.pipe()\nos.close(r)\nos.dup2(w, 1)\n"
            "sys.argv = ['gen', 'domains']\nfrom gen.core.cli import main\nmain()\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "GEN_HOME": str(ws)})
    assert proc.returncode == 141, proc.stderr
    assert "workspace" not in proc.stderr and "Traceback" not in proc.stderr


LAUNCHER = """
import os, subprocess, sys
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(p.pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)
"""


def _prepare_stdin(tmp_path, data_path) -> tuple[int, str, float]:
    """(exit code, stderr, peak RSS in MB of that process alone) of `gen prepare big --src -`,
    started from a small launcher: a child's peak RSS counts what it shared with its parent
    before exec, and the test process is large."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "GEN_HOME": str(tmp_path / "ws")}
    with open(data_path, "rb") as stdin:
        out = subprocess.run([sys.executable, "-c", LAUNCHER, sys.executable, "-m", "gen.core.cli", "prepare", "big",
                              "--domain", "text", "--src", "-"], stdin=stdin, env=env, capture_output=True,
                             text=True, timeout=300)
    code, maxrss = out.stdout.split()
    return int(code), out.stderr, int(maxrss) / 1024


def test_prepare_from_stdin_streams_with_flat_memory(tmp_path):
    """120 MB through stdin: peak memory stays at the working set of one chunk (the whole text
    held, as before, was about three times the input)."""
    big = tmp_path / "big.txt"
    block = "the quick brown fox jumps over the lazy dog, and then some more words here\n" * 14_000  # ~1 MB
    with open(big, "w") as fh:
        for _ in range(120):
            fh.write(block)
    code, err, peak_mb = _prepare_stdin(tmp_path, big)
    assert code == 0, err
    assert big.stat().st_size > 100e6 and peak_mb < 300, peak_mb


@pytest.mark.parametrize("data, says", [(b"caf\xe9 au lait\n" * 100, "is not valid UTF-8 (byte 3)"),
                                        (b"\x00\x01\x02" * 100, "no text found")])
def test_stdin_that_is_not_utf8_or_text_is_one_line(tmp_path, data, says):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(data)
    code, err, _ = _prepare_stdin(tmp_path, bad)
    assert code == 1 and says in err and "Traceback" not in err

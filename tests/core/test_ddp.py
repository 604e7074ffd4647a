"""DDP on CPU: `gen train` under torchrun with the gloo backend and 2 processes.

The run goes through the real CLI (``gen.core.cli``). A small launcher records the module that
DistributedDataParallel wraps in each process and saves its final weights at exit, so the test
can check that gradient averaging kept both ranks' weights identical, and identical to the
checkpoint rank 0 wrote.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from conftest import make_names

from gen.core import checkpoint as ckpt_io
from gen.core.cli import cli

STEPS = 20
TRAIN = ["--layers", "1", "--hidden", "32", "--embd", "8", "--batch-size", "4", "--seq-len", "16",
         "--eval-every", "10", "--max-steps", str(STEPS), "--warmup", "5", "--lr", "0.01", "--quiet",
         "--device", "cpu", "--run-name", "ddp"]

LAUNCHER = '''
import atexit, os, runpy, sys
import torch
from torch.nn.parallel import DistributedDataParallel as DDP

wrapped = []
_init = DDP.__init__


def _record(self, module, *args, **kwargs):
    _init(self, module, *args, **kwargs)
    wrapped.append(module)


DDP.__init__ = _record


@atexit.register
def _dump():
    if wrapped:
        state = {k: v.detach().clone() for k, v in wrapped[0].state_dict().items()}
        torch.save(state, os.path.join(os.environ["PROBE_DIR"], "rank%s.pt" % os.environ["RANK"]))


sys.argv = ["gen", *sys.argv[1:]]
runpy.run_module("gen.core.cli", run_name="__main__", alter_sys=True)
'''


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    ws, probe = tmp / "ws", tmp / "probe"
    probe.mkdir()
    src = tmp / "names.txt"
    src.write_text("\n".join(make_names(400)) + "\n", encoding="utf-8")
    res = CliRunner().invoke(cli, ["--workspace", str(ws), "prepare", "nm", "--domain", "names", "--src", str(src)])
    assert res.exit_code == 0, res.output
    launcher = tmp / "launch.py"
    launcher.write_text(LAUNCHER, encoding="utf-8")
    env = {**os.environ, "GEN_HOME": str(ws), "PROBE_DIR": str(probe), "OMP_NUM_THREADS": "1"}
    # --standalone: a private rendezvous on a free port (other test runs may share the machine)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(launcher), "train", "nm", *TRAIN]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return ws, probe, proc.stdout + proc.stderr


def _written_runs(ws: Path) -> list[Path]:
    return sorted(p for p in (ws / "runs" / "nm").iterdir() if p.is_dir() and any(p.iterdir()))


def test_two_processes_train_and_only_rank0_writes(ddp_run):
    ws, _, out = ddp_run
    assert "2 processes" in out and f"stopped (steps) at step {STEPS}" in out
    runs = _written_runs(ws)
    assert len(runs) == 1, runs  # rank 1 wrote nothing
    assert len(list((ws / "runs").rglob("metrics.jsonl"))) == 1
    assert len(list((ws / "runs").rglob("last.pt"))) == 1
    lines = (runs[0] / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(set(lines))
    entries = [json.loads(line) for line in lines]
    train_steps = [e["step"] for e in entries if "loss" in e]
    val = [(e["step"], e["val_loss"]) for e in entries if "val_loss" in e]
    assert train_steps == list(range(10, STEPS + 1, 10))  # one line per logged step, not one per rank
    assert [s for s, _ in val] == list(range(10, STEPS + 1, 10))
    vocab = len(json.loads((ws / "corpora" / "nm" / "vocab.json").read_text(encoding="utf-8"))["chars"])
    assert val[-1][1] < val[0][1] < math.log(vocab)  # it learns: below uniform, and still improving


def test_ranks_hold_identical_weights_equal_to_the_checkpoint(ddp_run):
    ws, probe, _ = ddp_run
    r0, r1 = (torch.load(probe / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert r0.keys() == r1.keys()
    for k in r0:
        assert torch.equal(r0[k], r1[k]), f"rank weights differ in {k}: DDP did not average gradients"
    ckpt = ckpt_io.load(_written_runs(ws)[0] / "last.pt")
    assert ckpt["world"] == 2 and ckpt["step"] == STEPS
    for k in r0:
        assert torch.equal(ckpt["model"][k], r0[k]), k


def test_checkpoint_samples(ddp_run):
    ws, _, _ = ddp_run
    ckpt = _written_runs(ws)[0] / "best.pt"
    res = CliRunner().invoke(cli, ["--workspace", str(ws), "sample", str(ckpt), "-n", "3", "-l", "20",
                                   "--seed", "0", "--out", str(ws / "s.txt")])
    assert res.exit_code == 0, res.output
    samples = (ws / "s.txt").read_text(encoding="utf-8").splitlines()
    assert len(samples) == 3 and any(samples)


def test_one_run_folder(ddp_run):
    ws, _, _ = ddp_run
    assert len([p for p in (ws / "runs" / "nm").iterdir() if p.is_dir()]) == 1

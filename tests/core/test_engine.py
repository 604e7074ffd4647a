"""Engine: fused stepper == nn.LSTM/GRU/RNN, sampling options, checkpoints, exact resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gen.core import checkpoint as ckpt_io
from gen.core.atomic import atomic_write
from gen.core.config import TrainConfig, parse_duration
from gen.core.data import CorpusData, StreamBatches, prepare
from gen.core.errors import GenError
from gen.core.model import CharRNN, FusedStepper, ModelArgs
from gen.core.registry import get_domain, resolve_corpus
from gen.core.sample import SampleOptions, filter_logits, sample
from gen.core.train import lr_at, train
from gen.core.vocab import Vocab


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_fused_stepper_matches_full_sequence(cell):
    torch.manual_seed(0)
    model = CharRNN(ModelArgs(vocab_size=11, cell=cell, n_layer=3, n_hidden=16, n_embd=5)).eval()
    ids = torch.randint(0, 11, (4, 9))
    with torch.no_grad():
        full, _ = model(ids)
    stepper = FusedStepper(model)
    state = stepper.init_state(4)
    for t in range(9):
        logits = stepper.step(ids[:, t], state)
        torch.testing.assert_close(logits, full[:, t], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_awd_dropouts_act_in_training_only(cell):
    """DropConnect and embedding dropout change training's forward pass (new masks each call,
    gradients reach the real weights) and leave evaluation exactly the plain model's."""
    torch.manual_seed(0)
    args = dict(vocab_size=11, cell=cell, n_layer=2, n_hidden=16, n_embd=5)
    awd = CharRNN(ModelArgs(**args, weight_drop=0.5, embed_drop=0.3))
    plain = CharRNN(ModelArgs(**args))
    plain.load_state_dict(awd.state_dict())  # the same parameters: the dropouts add none
    ids = torch.randint(0, 11, (3, 7))
    a, _ = awd(ids)
    b, _ = awd(ids)
    assert not torch.allclose(a, b)
    a.sum().backward()
    hh = awd.rnn.weight_hh_l0.grad
    assert hh is not None and 0 < (hh == 0).float().mean() < 1  # about half the entries masked
    awd.eval()
    plain.eval()
    with torch.no_grad():
        torch.testing.assert_close(awd(ids)[0], plain(ids)[0], atol=0, rtol=0)


@pytest.fixture
def tiny_model():
    torch.manual_seed(1)
    vocab = Vocab("abcdefgh\n ")
    return CharRNN(ModelArgs(vocab_size=len(vocab), n_layer=2, n_hidden=24, n_embd=6)).eval(), vocab


def test_sampling_is_reproducible_and_greedy_is_argmax(tiny_model):
    model, vocab = tiny_model
    a, _ = sample(model, vocab, SampleOptions(n=3, length=40, seed=5))
    b, _ = sample(model, vocab, SampleOptions(n=3, length=40, seed=5))
    c, _ = sample(model, vocab, SampleOptions(n=3, length=40, seed=6))
    assert a == b and a != c
    g1, _ = sample(model, vocab, SampleOptions(n=2, length=30, temperature=0.0, seed=1))
    g2, _ = sample(model, vocab, SampleOptions(n=2, length=30, temperature=0.0, seed=2))
    k1, _ = sample(model, vocab, SampleOptions(n=1, length=30, top_k=1, seed=3))
    assert g1 == g2 and g1[0] == g1[1] == k1[0]


def test_top_k_and_top_p_truncate():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isinf(filter_logits(logits, 1.0, 2, 1.0)).tolist() == [[False, False, True, True]]
    assert torch.isinf(filter_logits(logits, 1.0, 0, 0.7)).tolist() == [[False, False, True, True]]
    assert torch.isinf(filter_logits(logits, 1.0, 0, 0.9)).tolist() == [[False, False, False, True]]


def test_prime_and_stop(tiny_model):
    model, vocab = tiny_model
    texts, stats = sample(model, vocab, SampleOptions(n=4, length=200, prime="abé", stop=["\n"], seed=0))
    assert all(t.startswith("abé") and "\n" not in t for t in texts)
    assert stats.unknown_prime == {"é": "e"}


def test_stream_batches_carry_contiguously():
    ids = torch.arange(1000).numpy()
    b = StreamBatches(ids, batch_size=4, seq_len=10)
    x0, y0 = b.get(0)
    x1, _ = b.get(1)
    assert x0.shape == (4, 10) and torch.equal(y0[:, :-1], x0[:, 1:])
    assert torch.equal(x1[:, 0], x0[:, -1] + 1)  # stream b continues where it stopped
    with pytest.raises(GenError, match="Lower --batch-size"):
        StreamBatches(ids[:30], batch_size=4, seq_len=10)


def test_lr_schedule_warms_up_and_decays():
    cfg = TrainConfig(lr=1.0, warmup_steps=10, max_steps=110, min_lr_ratio=0.1)
    assert lr_at(0, cfg) == pytest.approx(0.1) and lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(60, cfg) == pytest.approx(0.55) and lr_at(110, cfg) == pytest.approx(0.1)
    assert parse_duration("10m") == 600 and parse_duration("1.5h") == 5400


def test_atomic_write_survives_a_crash(tmp_path):
    target = tmp_path / "ckpt.pt"
    target.write_bytes(b"old checkpoint")

    def crash_midway(fh):
        fh.write(b"half of a new")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, crash_midway)
    assert target.read_bytes() == b"old checkpoint"
    assert list(tmp_path.iterdir()) == [target]  # no temp file left behind


def test_checkpoint_refuses_pickled_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"format": ckpt_io.FORMAT_NAME, "version": 1, "x": Evil()}, path)
    with pytest.raises(GenError, match="cannot be read"):
        ckpt_io.load(path)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(GenError, match="truncated, corrupt"):
        ckpt_io.load(tmp_path / "junk.pt")


def _corpus(tmp_path: Path, names_file: Path) -> CorpusData:
    spec = resolve_corpus("names")
    prepare(spec, get_domain("names"), str(names_file), tmp_path / "c")
    return CorpusData(tmp_path / "c")


def _cfg(**kw) -> TrainConfig:
    base = dict(n_layer=2, n_hidden=24, n_embd=8, batch_size=4, seq_len=16, dropout=0.1, eval_every=7,
                warmup_steps=3, device="cpu")
    return TrainConfig(**{**base, **kw})


@pytest.mark.parametrize("ema,awd", [(0.0, False), (0.9, False), (0.9, True)])
def test_exact_resume_matches_uninterrupted(tmp_path, names_file, ema, awd):
    """With averaged weights and AWD-LSTM's dropouts too: the average is part of the checkpoint,
    DropConnect and embedding-dropout masks come from the saved random state."""
    data = _corpus(tmp_path, names_file)
    (tmp_path / "full").mkdir()
    (tmp_path / "split").mkdir()
    kw = dict(max_steps=20, ema=ema, **(dict(weight_drop=0.3, embed_drop=0.1) if awd else {}))
    full = train(data, _cfg(**kw), tmp_path / "full", "names", progress=False, log=lambda m: None)
    first = train(data, _cfg(**kw), tmp_path / "split", "names", progress=False,
                  log=lambda m: None, on_step=lambda step, loss: step == 9)  # interrupted after step 9
    assert first.stopped == "signal" and len(first.losses) == 9
    resume = ckpt_io.load(tmp_path / "split" / "last.pt")
    second = train(data, _cfg(**kw), tmp_path / "split", "names", resume=resume, progress=False,
                   log=lambda m: None)
    assert first.losses + second.losses == full.losses
    a, b = ckpt_io.load(tmp_path / "full" / "last.pt"), ckpt_io.load(tmp_path / "split" / "last.pt")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert full.best_val == second.best_val
    if ema:  # best.pt samples with the average, which differs from the trained weights it resumes
        assert any(not torch.equal(a["model"][k], a["raw_model"][k]) for k in a["model"])
        assert all(torch.equal(a["raw_model"][k], b["raw_model"][k]) for k in a["raw_model"])


def test_resume_refuses_other_shape(tmp_path, names_file):
    data = _corpus(tmp_path, names_file)
    (tmp_path / "r").mkdir()
    train(data, _cfg(max_steps=3), tmp_path / "r", "names", progress=False, log=lambda m: None)
    resume = ckpt_io.load(tmp_path / "r" / "last.pt")
    cfg = _cfg(max_steps=6)
    cfg.n_hidden = 32
    with pytest.raises(GenError, match="n_hidden: checkpoint 24, asked 32"):
        train(data, cfg, tmp_path / "r", "names", resume=resume, progress=False, log=lambda m: None)


def test_nan_loss_is_skipped_then_stops(tmp_path, names_file, monkeypatch):
    from gen.core import train as train_mod

    data = _corpus(tmp_path, names_file)
    (tmp_path / "n").mkdir()
    real = train_mod.cross_entropy
    calls = {"n": 0}

    def sometimes_nan(logits, targets):  # poison steps 2 and 5 onwards (training calls only)
        calls["n"] += 1
        loss = real(logits, targets)
        return loss * float("nan") if calls["n"] == 3 or calls["n"] >= 6 else loss

    monkeypatch.setattr(train_mod, "cross_entropy", sometimes_nan)
    messages = []
    res = train(data, _cfg(max_steps=50, eval_every=1000), tmp_path / "n", "names", progress=False,
                log=messages.append)
    assert res.stopped == "nan" and len(res.losses) == 4
    assert any("Lower --lr" in m for m in messages)
    assert (tmp_path / "n" / "last.pt").is_file()


def test_sigint_saves_and_exits_cleanly(tmp_path, names_file):
    env = dict(os.environ, GEN_HOME=str(tmp_path / "ws"))
    subprocess.run([sys.executable, "-m", "gen.core.cli", "prepare", "nm", "--domain", "names", "--src", str(names_file)],
                   env=env, check=True, capture_output=True)
    proc = subprocess.Popen([sys.executable, "-m", "gen.core.cli", "train", "nm", "--max-steps", "100000",
                             "--hidden", "32", "--layers", "1", "--batch-size", "4", "--seq-len", "16",
                             "--eval-every", "100000", "--run-name", "sig", "--quiet"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    metrics = tmp_path / "ws" / "runs" / "nm" / "sig" / "metrics.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and not (metrics.exists() and metrics.stat().st_size > 0):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "interrupted at step" in out and "--resume" in out
    ckpt = ckpt_io.load(tmp_path / "ws" / "runs" / "nm" / "sig" / "last.pt")
    assert ckpt["step"] > 0 and ckpt["hidden"] is not None


def test_bf16_training_on_cpu(tmp_path, names_file):
    data = _corpus(tmp_path, names_file)
    (tmp_path / "b").mkdir()
    res = train(data, _cfg(max_steps=6, precision="bf16"), tmp_path / "b", "names", progress=False,
                log=lambda m: None)
    assert len(res.losses) == 6 and all(0 < v < 10 for v in res.losses) and res.best_val < 10


def test_a_shortened_final_validation_is_never_the_best(tmp_path, names_file):
    """A validation cut to fit the time budget scores a few windows, not the split (1.23 where
    the split scored 1.44): it is logged with its size but never saves best.pt."""
    import json

    from gen.core.train import _setup, _start, _validate

    data = _corpus(tmp_path, names_file)
    run_dir = tmp_path / "short"
    run_dir.mkdir()
    r = _setup(data, _cfg(), run_dir, "names", None, lambda m: None)
    _start(r, False, False, None)
    _validate(r, max_chars=16)
    assert r.best_val == float("inf") and not (run_dir / "best.pt").exists()
    _validate(r)
    assert r.best_val == r.last_val and (run_dir / "best.pt").exists()
    r.metrics_fh.close()
    vals = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if "val_loss" in x]
    assert vals[0]["val_chars"] == 16 and "val_chars" not in vals[1]


def test_the_precision_probe_leaves_the_run_rng_alone():
    from gen.core.precision import probe

    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    probe(ModelArgs(vocab_size=10, n_layer=1, n_hidden=16, n_embd=4), steps=1)
    assert torch.equal(torch.rand(3), expected)

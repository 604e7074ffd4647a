"""precision = "auto": the real probe (both precisions timed on this CPU), its cache, the
manifest's bf16 recipe applied only when bf16 is picked, and the answer forced both ways."""

from __future__ import annotations

import json

import pytest

from gen.core import plan
from gen.core import workspace as ws_mod
from gen.core.corpora import load_corpus
from gen.core.domain import CorpusSpec
from gen.core.model import ModelArgs
from gen.core.precision import FORCE_ENV, machine_id, pick_precision, probe

TINY = ModelArgs(vocab_size=20, n_layer=1, n_hidden=32, n_embd=8)


def test_probe_measures_both_precisions_on_this_cpu():
    pick = probe(TINY, steps=2)
    assert pick.precision in ("fp32", "bf16")
    assert pick.speedup is not None and pick.speedup > 0
    # the rule, whatever this CPU measured: bf16 only when clearly faster
    assert (pick.precision == "bf16") == (pick.speedup >= 1.2)
    assert f"{pick.speedup:.2f}x" in pick.why


def test_probe_answer_is_cached_per_machine_and_shape(tmp_path, monkeypatch):
    monkeypatch.delenv(FORCE_ENV, raising=False)
    cache = tmp_path / "cache" / "precision.json"
    first = pick_precision(TINY, _cpu(), cache)
    assert not first.cached
    table = json.loads(cache.read_text())
    (key,) = table
    assert key.startswith(machine_id()) and key.endswith("lstm1x32e8v20")
    assert table[key]["precision"] == first.precision
    again = pick_precision(TINY, _cpu(), cache)
    assert again.cached and again.precision == first.precision and "cached" in again.why
    # another shape is measured on its own; a damaged cache is measured again, never an error
    other = ModelArgs(vocab_size=20, n_layer=1, n_hidden=16, n_embd=8)
    pick_precision(other, _cpu(), cache)
    assert len(json.loads(cache.read_text())) == 2
    cache.write_text("{not json")
    assert not pick_precision(TINY, _cpu(), cache).cached


def test_the_cache_answer_is_what_later_runs_use(tmp_path, monkeypatch):
    """A cached answer is used as it stands (a planted bf16 is honoured without measuring)."""
    monkeypatch.delenv(FORCE_ENV, raising=False)
    cache = tmp_path / "precision.json"
    key = f"{machine_id()}|lstm1x32e8v20"
    cache.write_text(json.dumps({key: {"precision": "bf16", "speedup": 2.5, "why": "probe: bf16 2.50x fp32"}}))
    pick = pick_precision(TINY, _cpu(), cache)
    assert pick.precision == "bf16" and pick.cached and pick.speedup == 2.5


def test_forced_answer_and_a_bad_forced_value(monkeypatch):
    for answer in ("fp32", "bf16"):
        monkeypatch.setenv(FORCE_ENV, answer)
        assert pick_precision(TINY, _cpu()).precision == answer
    monkeypatch.setenv(FORCE_ENV, "fp16")
    with pytest.raises(Exception, match="fp32 or bf16"):
        pick_precision(TINY, _cpu())


SPEC = CorpusSpec(name="toy", domain="names", origin="test", defaults={
    "cpu": {"n_hidden": 64, "dropout": 0.1, "bf16": {"n_hidden": 96, "dropout": 0.3}},
    "gpu": {"n_hidden": 128}})


@pytest.mark.parametrize("answer", ["fp32", "bf16"])
def test_bf16_recipe_applies_only_when_bf16_is_picked(answer, ws, names_file, run, monkeypatch):
    run("prepare", "nm", "--domain", "names", "--src", str(names_file))
    data = load_corpus("nm", ws)[1]
    monkeypatch.setenv(FORCE_ENV, answer)
    cfg, note = plan.resolve_precision(SPEC, data, {"device": "cpu"}, ws)
    assert cfg.precision == answer and answer in note and FORCE_ENV in note
    assert cfg.origin("precision").startswith("auto:")
    if answer == "bf16":
        assert (cfg.n_hidden, cfg.dropout) == (96, 0.3) and "bf16" in cfg.origin("n_hidden")
    else:
        assert (cfg.n_hidden, cfg.dropout) == (64, 0.1)
    # an option on the command line still wins over either recipe
    cfg, _ = plan.resolve_precision(SPEC, data, {"device": "cpu", "n_hidden": 40}, ws)
    assert cfg.n_hidden == 40
    # a precision the user names is not probed
    cfg, note = plan.resolve_precision(SPEC, data, {"device": "cpu", "precision": "fp32"}, ws)
    assert cfg.precision == "fp32" and (cfg.n_hidden, cfg.dropout) == (64, 0.1) and "command line" in note


def test_training_prints_and_records_the_measured_pick(ws, names_file, run, monkeypatch):
    """No forcing: the CLI probes for real, says what it picked and why, caches it, and the
    run's config records the precision used (not "auto")."""
    monkeypatch.delenv(FORCE_ENV, raising=False)
    run("prepare", "nm", "--domain", "names", "--src", str(names_file))
    out = run("train", "nm", "--layers", "1", "--hidden", "32", "--embd", "8", "--batch-size", "4",
              "--seq-len", "16", "--max-steps", "3", "--quiet", "--device", "cpu", "--run-name", "p").output
    line = next(x for x in out.splitlines() if x.startswith("precision: "))
    config = json.loads((ws / "runs" / "nm" / "p" / "config.json").read_text())
    assert config["precision"] in ("fp32", "bf16") and line.startswith(f"precision: {config['precision']} (probe: ")
    assert ws_mod.precision_cache(ws).exists()
    out = run("train", "nm", "--layers", "1", "--hidden", "32", "--embd", "8", "--batch-size", "4",
              "--seq-len", "16", "--max-steps", "3", "--quiet", "--device", "cpu", "--run-name", "q").output
    assert "cached)" in out


def _cpu():
    import torch

    return torch.device("cpu")


def test_sampling_precision_rules(monkeypatch):
    import torch

    from gen.core.model import CharRNN, int8_available
    from gen.core.precision import native_bf16, sampling_dtype

    monkeypatch.delenv(FORCE_ENV, raising=False)
    cpu = _cpu()
    big = CharRNN(ModelArgs(vocab_size=20, n_layer=1, n_hidden=256, n_embd=8))
    small = CharRNN(ModelArgs(vocab_size=20, n_layer=1, n_hidden=32, n_embd=8))
    # one stream of a big model: int8 weights (a quarter of the bytes) where the x86 kernels exist
    assert sampling_dtype(big, cpu, "auto", streams=1) == (torch.qint8 if int8_available() else torch.float32)
    assert sampling_dtype(small, cpu, "auto", streams=64) == torch.float32  # small weights sit in cache
    assert sampling_dtype(small, cpu, "bf16", streams=1) == torch.bfloat16  # named: as asked
    many = sampling_dtype(big, cpu, "auto", streams=64)  # bf16 units win for many streams where they exist
    assert many == (torch.bfloat16 if native_bf16() else torch.qint8 if int8_available() else torch.float32)
    monkeypatch.setenv(FORCE_ENV, "bf16")
    assert sampling_dtype(small, cpu, "auto", streams=1) == torch.bfloat16


def test_the_drift_check_runs_once_per_model_and_weights(monkeypatch):
    import torch

    from gen.core import precision
    from gen.core.model import CharRNN, int8_available

    monkeypatch.delenv(FORCE_ENV, raising=False)
    calls = []
    real = precision.nll_drift
    monkeypatch.setattr(precision, "nll_drift", lambda model, **kw: calls.append(1) or real(model, chars=8, **kw))
    model = CharRNN(ModelArgs(vocab_size=20, n_layer=1, n_hidden=256, n_embd=8))
    cpu = torch.device("cpu")
    first = precision.sampling_dtype(model, cpu, "auto", streams=1)
    assert precision.sampling_dtype(model, cpu, "auto", streams=1) == first
    expected = 1 if int8_available() else 0  # fp32 needs no check
    assert len(calls) == expected
    with torch.no_grad():
        model.head.bias.add_(1.0)  # new weights: checked again
    precision.sampling_dtype(model, cpu, "auto", streams=1)
    assert len(calls) == 2 * expected


def test_bf16_stepper_follows_the_fp32_one():
    import torch

    from gen.core.model import CharRNN, FusedStepper
    from gen.core.precision import nll_drift

    torch.manual_seed(0)
    for cell in ("lstm", "gru", "rnn"):
        model = CharRNN(ModelArgs(vocab_size=30, cell=cell, n_layer=2, n_hidden=64, n_embd=8)).eval()
        ref, low = FusedStepper(model), FusedStepper(model, "cpu", torch.bfloat16)
        s_ref, s_low = ref.init_state(3), low.init_state(3)
        for t in range(20):
            ids = torch.tensor([t % 30, (3 * t) % 30, 7])
            a, b = ref.step(ids, s_ref), low.step(ids, s_low)
            assert b.dtype == torch.float32 and (a - b).abs().max() < 0.05, cell
        assert nll_drift(model, chars=32) < 0.01


def test_int8_stepper_follows_the_fp32_one(monkeypatch):
    import pytest
    import torch

    from gen.core import model as model_mod
    from gen.core.model import CharRNN, FusedStepper, int8_available
    from gen.core.precision import nll_drift

    if not int8_available():
        pytest.skip("this torch has no x86 int8 kernels (fbgemm)")
    torch.manual_seed(0)
    for cell in ("lstm", "gru", "rnn"):
        model = CharRNN(ModelArgs(vocab_size=30, cell=cell, n_layer=2, n_hidden=64, n_embd=8)).eval()
        ids = [torch.tensor([t % 30, (3 * t) % 30, 7]) for t in range(20)]
        ref, low = FusedStepper(model), FusedStepper(model, "cpu", torch.qint8)
        s_ref, s_low = ref.init_state(3), low.init_state(3)
        # products this small stay fp32 (int8's per-call overhead would cost more than it saves)
        assert all(torch.equal(ref.step(i, s_ref), low.step(i, s_low)) for i in ids), cell
        monkeypatch.setattr(model_mod, "INT8_MIN_MACS", 0)  # every product in int8
        s_ref, s_low = ref.init_state(3), low.init_state(3)
        for i in ids:
            a, b = ref.step(i, s_ref), low.step(i, s_low)
            assert b.dtype == torch.float32 and (a - b).abs().max() < 0.05, cell
            assert not torch.equal(a, b)  # really another product, not the fp32 one
        assert nll_drift(model, chars=32, dtype=torch.qint8) < 0.01
        monkeypatch.undo()


def test_int8_named_off_the_cpu_is_refused():
    import torch

    from gen.core.errors import GenError
    from gen.core.model import CharRNN
    from gen.core.precision import sampling_dtype

    model = CharRNN(ModelArgs(vocab_size=20, n_layer=1, n_hidden=32, n_embd=8))
    try:
        sampling_dtype(model, torch.device("cuda"), "int8")
    except GenError as e:
        assert "int8 runs on the CPU" in str(e)
    else:
        raise AssertionError("int8 on a GPU was accepted")


def test_sample_and_viz_take_device_and_precision(ws, names_file, run):
    run("prepare", "nm", "--domain", "names", "--src", str(names_file))
    run("train", "nm", "--layers", "1", "--hidden", "32", "--embd", "8", "--batch-size", "4", "--seq-len", "16",
        "--max-steps", "4", "--quiet", "--device", "cpu", "--run-name", "d")
    ckpt = str(ws / "runs" / "nm" / "d" / "best.pt")
    fp32 = run("sample", ckpt, "-n", "8", "--seed", "3", "--device", "cpu", "--precision", "fp32").output
    bf16 = run("sample", ckpt, "-n", "8", "--seed", "3", "--device", "cpu", "--precision", "bf16").output
    assert "8 samples" in fp32 and "(fp32 stepper)" in fp32 and "(bf16 stepper)" in bf16
    int8 = run("sample", ckpt, "-n", "8", "--seed", "3", "--device", "cpu", "--precision", "int8").output
    assert "8 samples" in int8 and "(int8 stepper)" in int8
    run("viz", ckpt, "--corpus", "nm", "--chars", "200", "--device", "cpu", "--out", str(ws / "v.html"))
    assert (ws / "v.html").stat().st_size > 0
    out = run("sample", ckpt, "--device", "cuda", code=1).output if not _has_cuda() else ""
    assert not out or "no CUDA GPU" in out


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()

"""The CUDA paths against the CPU (marker ``cuda``; skipped without a GPU, run by evals/dev/gpucheck.py
when the device tool lends one): cuDNN cells, bf16 autocast, checkpoints that cross devices,
the sampling stepper, exact resume, and DDP over NCCL."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from conftest import make_names

from gen.core import checkpoint as ckpt_io
from gen.core.config import SampleOptions, TrainConfig
from gen.core.data import CorpusData, prepare
from gen.core.domain import CorpusSpec, Domain
from gen.core.model import CharRNN, FusedStepper, ModelArgs, cross_entropy
from gen.core.sample import sample
from gen.core.train import train

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")]


@pytest.fixture(autouse=True)
def _exact_cuda():
    """fp32 products without TF32, deterministic cuDNN: the comparisons below are of arithmetic."""
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.deterministic)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.deterministic = True
    yield
    (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.deterministic) = before


@pytest.fixture
def corpus(tmp_path) -> CorpusData:
    src = tmp_path / "names.txt"
    src.write_text("\n".join(make_names(600)) + "\n", encoding="utf-8")
    prepare(CorpusSpec(name="nm", domain="names", split="hash"), Domain(), str(src), tmp_path / "nm")
    return CorpusData(tmp_path / "nm")


def _cfg(**kw) -> TrainConfig:
    return TrainConfig(**{**dict(n_layer=2, n_hidden=64, n_embd=16, batch_size=8, seq_len=32, eval_every=10,
                                 warmup_steps=2, device="cuda", precision="fp32"), **kw})


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_cudnn_cells_match_the_cpu_forward_and_backward(cell):
    torch.manual_seed(0)
    cpu = CharRNN(ModelArgs(vocab_size=40, cell=cell, n_layer=2, n_hidden=64, n_embd=16))
    gpu = CharRNN(ModelArgs(vocab_size=40, cell=cell, n_layer=2, n_hidden=64, n_embd=16)).cuda()
    gpu.load_state_dict(cpu.state_dict())
    x = torch.randint(0, 40, (4, 50))
    y = torch.randint(0, 40, (4, 50))
    losses = []
    for model, dev in ((cpu, "cpu"), (gpu, "cuda")):
        logits, _ = model(x.to(dev))
        loss = cross_entropy(logits, y.to(dev))
        loss.backward()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(losses[1], abs=1e-5)
    for (name, a), b in zip(cpu.named_parameters(), gpu.parameters(), strict=True):
        assert torch.allclose(a.grad, b.grad.cpu(), atol=1e-5, rtol=1e-4), name


def test_bf16_autocast_training_is_finite(corpus, tmp_path):
    if not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    res = train(corpus, _cfg(max_steps=20, precision="bf16"), tmp_path / "b", "names", progress=False,
                log=lambda _m: None)
    assert res.step == 20 and 0 < res.best_val < 10


def test_a_gpu_checkpoint_samples_the_same_on_the_cpu(corpus, tmp_path):
    train(corpus, _cfg(max_steps=10), tmp_path / "g", "names", progress=False, log=lambda _m: None)
    ckpt = ckpt_io.load(tmp_path / "g" / "best.pt")
    model, vocab = ckpt_io.model_from_checkpoint(ckpt)
    assert next(model.parameters()).device.type == "cpu"
    twin = CharRNN(ModelArgs(**ckpt["model_args"]))
    twin.load_state_dict({k: v.cuda().cpu() for k, v in ckpt["model"].items()})
    twin.eval()
    opts = SampleOptions(n=4, length=60, seed=3, device="cpu", precision="fp32")
    assert sample(model, vocab, opts)[0] == sample(twin, vocab, opts)[0]


def test_the_stepper_on_the_gpu_equals_the_cpu_stepper():
    torch.manual_seed(1)
    model = CharRNN(ModelArgs(vocab_size=30, n_layer=2, n_hidden=96, n_embd=16)).eval()
    cpu, gpu = FusedStepper(model, torch.device("cpu")), FusedStepper(model, torch.device("cuda"))
    s_cpu, s_gpu = cpu.init_state(3), gpu.init_state(3)
    for i in torch.randint(0, 30, (200, 3)):
        a = cpu.step(i, s_cpu)
        b = gpu.step(i.cuda(), s_gpu)
        assert torch.allclose(a, b.float().cpu(), atol=1e-4)


def test_exact_resume_on_the_gpu(corpus, tmp_path):
    full = train(corpus, _cfg(max_steps=20), tmp_path / "full", "names", progress=False, log=lambda _m: None)
    train(corpus, _cfg(max_steps=10), tmp_path / "split", "names", progress=False, log=lambda _m: None)
    resume = ckpt_io.load(tmp_path / "split" / "last.pt")
    again = train(corpus, _cfg(max_steps=20), tmp_path / "split", "names", resume=resume, progress=False,
                  log=lambda _m: None)
    assert again.step == full.step == 20
    assert again.best_val == pytest.approx(full.best_val, abs=1e-6)
    a, b = ckpt_io.load(tmp_path / "full" / "last.pt")["model"], ckpt_io.load(tmp_path / "split" / "last.pt")["model"]
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


@pytest.mark.parametrize("world", [1, 2])
def test_ddp_over_nccl(world, tmp_path):
    if torch.cuda.device_count() < world:
        pytest.skip(f"{world} GPUs needed, {torch.cuda.device_count()} here")
    src = tmp_path / "names.txt"
    src.write_text("\n".join(make_names(600)) + "\n", encoding="utf-8")
    env = {**os.environ, "GEN_HOME": str(tmp_path / "ws")}
    subprocess.run([sys.executable, "-m", "gen.core.cli", "prepare", "nm", "--domain", "names", "--src", str(src)],
                   env=env, check=True, capture_output=True, timeout=120)
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(world), "-m",
                          "gen.core.cli", "train", "nm", "--device", "cuda", "--layers", "1", "--hidden", "64",
                          "--batch-size", "8", "--seq-len", "32", "--max-steps", "20", "--eval-every", "10",
                          "--quiet", "--run-name", "ddp"], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "ws" / "runs" / "nm" / "ddp" / "best.pt").is_file()

"""gen export: the folder, loading it everywhere, and parity of PyTorch, onnxruntime and the browser.

Parity is the test of an export: over 1,000 characters of held-out text fed one at a time, the
logits of PyTorch (nn.LSTM/GRU/RNN over the whole sequence), onnxruntime running model.onnx and
the exported web page in headless Chromium agree within 1e-4, for every cell and 1-3 layers.
"""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path

import pytest
import torch

from gen.core import exportdir
from gen.core.config import SampleOptions
from gen.core.errors import GenError
from gen.core.export import export_model
from gen.core.model import CharRNN, ModelArgs
from gen.core.models import Loaded, load_model
from gen.core.sample import sample
from gen.core.vocab import Vocab
from gen.evals.bench.exported import static_server
from tests.conftest import CHROMIUM, TINY, needs_chromium

TEXT = ("The lamp on the table burned low; she wrote (slowly, in a small hand) that the river "
        "had risen again, that the bridge [the old one] would not hold, and that nobody - not "
        "even the miller - believed it.\n") * 8
HELD_OUT = TEXT[7:1007]
CASES = [(cell, layers) for cell in ("lstm", "gru", "rnn") for layers in (1, 2, 3)]


def make_loaded(cell: str, layers: int, seed: int = 0) -> Loaded:
    """An untrained model with weights scaled up so gates saturate as a trained model's do."""
    torch.manual_seed(seed)
    vocab = Vocab(sorted(set(TEXT)))
    model = CharRNN(ModelArgs(vocab_size=len(vocab), cell=cell, n_layer=layers, n_hidden=24, n_embd=8)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)
    ckpt = {"model_args": model.args.to_dict(), "model": model.state_dict(), "vocab": vocab.to_dict(),
            "separator": "\n", "domain": "text", "corpus": "fixture", "step": 7, "best_val": 2.5,
            "config": {"batch_size": 4, "seq_len": 16, "precision": "fp32"}}
    return Loaded(model, vocab, ckpt, Path("fixture.pt"))


@functools.cache
def exported(cell: str, layers: int, root: Path) -> Path:
    out = root / f"{cell}{layers}"
    export_model(make_loaded(cell, layers), out, root / "ws", card=False)
    return out


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("exports")


def torch_logits(loaded: Loaded, text: str) -> torch.Tensor:
    """PyTorch's own forward over the whole sequence (nn.LSTM/GRU/RNN): (T, V)."""
    ids = torch.tensor([loaded.vocab.encode(text)])
    with torch.no_grad():
        return loaded.model(ids)[0][0]


def stepped(stepper, ids: list[int]) -> torch.Tensor:
    state = stepper.init_state(1)
    return torch.stack([stepper.step(torch.tensor([i]), state)[0] for i in ids])


@pytest.mark.parametrize("cell,layers", CASES)
def test_onnxruntime_matches_pytorch(cell, layers, root):
    from gen.core.onnxstep import OnnxStepper

    folder = exported(cell, layers, root)
    loaded = load_model(str(folder), root / "ws")
    ref = torch_logits(make_loaded(cell, layers), HELD_OUT)
    assert torch.equal(torch_logits(loaded, HELD_OUT), ref)  # safetensors round trip: bit for bit
    ort = OnnxStepper(folder / exportdir.ONNX, cell, layers, 24)
    got = stepped(ort, loaded.vocab.encode(HELD_OUT))
    assert ref.abs().max() > 1.0  # logits big enough that a wrong gate or bias shows
    assert (got - ref).abs().max().item() < 1e-4
    # the batch dimension is dynamic: three streams at once give each stream's own logits
    state = ort.init_state(3)
    ids = loaded.vocab.encode("abc")
    assert torch.allclose(ort.step(torch.tensor(ids), state)[1], stepped(ort, [ids[1]])[0], atol=1e-5)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_same_seed_same_text_in_pytorch_and_onnxruntime(cell, root):
    from gen.core.onnxstep import OnnxStepper

    folder = exported(cell, 2, root)
    loaded = load_model(str(folder), root / "ws")
    opts = SampleOptions(length=200, temperature=1.0, seed=11, prime="The ", stop=[], precision="fp32")
    mine = sample(loaded.model, loaded.vocab, opts)[0][0]
    theirs = sample(loaded.model, loaded.vocab, opts, stepper=OnnxStepper(folder / exportdir.ONNX, cell, 2, 24))[0][0]
    assert len(mine) == 204 and mine == theirs


@needs_chromium
def test_browser_page_matches_pytorch(root):
    """The exported web page, served by a static file server, in headless Chromium: the logits
    of its JavaScript step over 1,000 held-out characters, for every cell and depth."""
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (uses the system Chromium)")
    for cell, layers in CASES:
        exported(cell, layers, root)
    server = static_server(root)
    try:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page()
            for cell, layers in CASES:
                page.goto(f"http://127.0.0.1:{server.server_port}/{cell}{layers}/web/", timeout=20_000)
                page.wait_for_selector("body[data-ready='1']", timeout=20_000)
                got = page.evaluate("""async (text) => {
                    const m = await gen.loadModel(".."), state = m.initState();
                    return m.encode(text).map((id) => Array.from(m.step(id, state)));
                }""", HELD_OUT)
                ref = torch_logits(make_loaded(cell, layers), HELD_OUT)
                diff = (torch.tensor(got) - ref).abs().max().item()
                assert diff < 1e-4, f"{cell} x{layers}: browser logits differ by {diff}"
            # the page itself: a prime typed, Generate clicked, the text streamed into the page
            page.fill("#prime", "The ")
            page.fill("#length", "120")
            page.click("#go")
            page.wait_for_selector("body[data-done='1']", timeout=30_000)
            out = page.text_content("#out")
            assert out.startswith("The ") and len(out) == 124
            assert "chars/s" in page.text_content("#status")
            browser.close()
    finally:
        server.shutdown()


def test_export_folder_and_card(root, tmp_path, names_file, ws, run):
    """A trained model through the command: the files, the card Hugging Face reads, and the
    export loaded by every command that takes a model."""
    from huggingface_hub import ModelCard

    run("prepare", "mynames", "--src", str(names_file))
    run("train", "mynames", *TINY, "--max-steps", "30")
    out = tmp_path / "exp"
    res = run("export", "mynames", "--out", str(out))
    assert "model.safetensors" in res.output and "model.onnx" in res.output
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["training"]["step"] == 30 and cfg["training"]["chars_seen"] == 30 * 4 * 16
    assert cfg["vocab"]["chars"] == load_model("mynames", ws).vocab.chars
    card = ModelCard.load(out / "README.md")
    assert card.data.library_name == "gen" and "names" in card.data.tags
    assert card.data.eval_results[0].metric_value == pytest.approx(cfg["training"]["best_val_loss_nats"], abs=1e-4)
    assert "## Domain eval" in card.text and "real" in card.text
    # the export samples exactly as the checkpoint it came from
    a = run("sample", "mynames", "-n", "5", "--seed", "3", "--precision", "fp32").output
    b = run("sample", str(out), "-n", "5", "--seed", "3", "--precision", "fp32").output
    assert a.split("wrote")[0] == b.split("wrote")[0]
    assert (ws / "exported" / "exp" / "samples").is_dir()  # not inside the export folder
    run("eval", "names", "--checkpoint", str(out), "--temperatures", "0.8", "-n", "4", "--out", str(tmp_path / "sw"))
    run("viz", str(out), "--corpus", "mynames", "--chars", "200", "--out", str(tmp_path / "v.html"))
    assert (tmp_path / "v.html").stat().st_size > 1000
    import gen

    assert len(gen.load(str(out)).sample(n=2, seed=1)) == 2
    from gen.core.serve.command import load_served, model_names
    from gen.core.serve.engine import Worker
    from gen.core.serve.requests import Limits

    worker = Worker()
    served = load_served(model_names([str(out)], ws), ws, Limits(max_streams=2), "cpu", "fp32", worker)
    assert served["exp"].card()["corpus"] == "mynames"  # gen serve takes the folder


def test_export_refuses_and_leaves_nothing_half_written(root, tmp_path, ws, run):
    loaded = make_loaded("lstm", 1)
    out = tmp_path / "busy"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    with pytest.raises(GenError, match="not empty.*--force"):
        export_model(loaded, out, ws, card=False)
    assert (out / "mine.txt").read_text() == "keep me"
    export_model(loaded, out, ws, card=False, force=True)
    assert not (out / "mine.txt").exists() and exportdir.is_export(out)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left
    res = run("export", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "x"), code=1)
    assert "does not exist" in res.output and "Traceback" not in res.output
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    res = run("export", str(tmp_path / "bad.pt"), "--out", str(tmp_path / "y"), code=1)
    assert "cannot be read" in res.output
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def _copy(root: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(exported("lstm", 2, root), dst)
    return dst


def test_damaged_exports_are_refused_in_one_line(root, tmp_path, ws):
    folder = _copy(root, tmp_path)
    cfg = json.loads((folder / "config.json").read_text())

    def load_with(**args) -> str:
        (folder / "config.json").write_text(json.dumps({**cfg, "model_args": {**cfg["model_args"], **args}}))
        with pytest.raises(GenError) as err:
            load_model(str(folder), ws)
        return str(err.value)

    assert "rnn.weight_ih_l0 has shape (96, 8)" in load_with(n_hidden=32)  # config and weights disagree
    assert "n_hidden" in load_with(n_hidden=10**9)  # absurd: refused by the range, nothing allocated
    assert "do not match" in load_with(n_layer=3)
    (folder / "config.json").write_text(json.dumps(cfg))
    data = bytearray((folder / "model.safetensors").read_bytes())
    data[20:30] = b"@@@@@@@@@@"  # inside the JSON header
    (folder / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(GenError, match="header or data is damaged"):
        load_model(str(folder), ws)
    (folder / "model.safetensors").write_bytes(bytes(data[:100]))
    with pytest.raises(GenError, match="damaged"):
        load_model(str(folder), ws)
    (folder / "config.json").write_text("{nope")
    with pytest.raises(GenError, match="cannot be read as JSON"):
        load_model(str(folder), ws)


def test_hub_id_loads_from_the_local_cache_offline(root, tmp_path, ws, monkeypatch):
    """hf:OWNER/NAME goes through huggingface_hub's own cache: a snapshot laid out as the Hub
    client lays it out, read with HF_HUB_OFFLINE=1; a repository not cached says so in one line."""
    pytest.importorskip("huggingface_hub")
    cache = tmp_path / "hub"
    commit = "0123456789abcdef0123456789abcdef01234567"
    snap = cache / "models--someone--tiny-lstm" / "snapshots" / commit
    snap.mkdir(parents=True)
    for name in ("config.json", "model.safetensors"):
        shutil.copy(exported("lstm", 2, root) / name, snap / name)
    (cache / "models--someone--tiny-lstm" / "refs").mkdir()
    (cache / "models--someone--tiny-lstm" / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)
    loaded = load_model("hf:someone/tiny-lstm", ws)
    assert torch.equal(torch_logits(loaded, HELD_OUT[:50]), torch_logits(make_loaded("lstm", 2), HELD_OUT[:50]))
    assert loaded.run.path == ws / "exported" / "someone--tiny-lstm"
    with pytest.raises(GenError, match="not in the local Hugging Face cache"):
        load_model("hf:someone/other", ws)
    with pytest.raises(GenError, match="hf:OWNER/NAME"):
        load_model("hf:../../etc", ws)

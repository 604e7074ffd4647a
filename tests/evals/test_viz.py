"""Seeing inside the model: activations, the viz page, the neuron search, the run page, and the
pages as a browser shows them (headless Chromium; those tests skip when it is not installed)."""

from __future__ import annotations

import base64
import json
import math
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import make_names

from gen.core.cli import cli
from gen.core.domain import Domain
from gen.core.hookspecs import hookimpl
from gen.core.model import CharRNN, FusedStepper, ModelArgs
from gen.core.plugins import load_plugins, register_plugin, unregister_plugin
from gen.core.vocab import Vocab
from gen.core.workspace import RunDir
from gen.evals.inspect import commands as viz_commands
from gen.evals.inspect.neurons import correlate, find_cells
from gen.evals.inspect.viz import Trace, page_data, render_page, trace
from tests.conftest import CHROMIUM, needs_chromium

HOSTILE = "</script><script>document.body.setAttribute('data-pwned','1')</script><!-- <b>&amp;"


# ---- activations ------------------------------------------------------------------------------

@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@torch.no_grad()
def test_trace_matches_stepping_one_char_at_a_time(cell: str):
    torch.manual_seed(0)
    text = "abc ab\nba cab\n" * 4
    vocab = Vocab(set(text))
    model = CharRNN(ModelArgs(vocab_size=len(vocab), cell=cell, n_layer=2, n_hidden=12, n_embd=6)).eval()
    tr = trace(model, vocab, text)
    stepper, state, rows, logits = FusedStepper(model), None, [], []
    state = stepper.init_state(1)
    for i in vocab.encode("\n" + text):
        logits.append(stepper.step(torch.tensor([i]), state)[0])
        # the stepper keeps per layer (h, c); the trace orders each layer's block as (c, h)
        per_layer = [[state[2 * k + 1], state[2 * k]] if cell == "lstm" else [state[k]] for k in range(2)]
        rows.append(torch.cat([t for pair in per_layer for t in pair], 1)[0].clone())
    expect = torch.stack(rows)[1:].numpy()
    assert tr.acts.shape == (len(text), (4 if cell == "lstm" else 2) * 12)
    np.testing.assert_allclose(tr.acts, expect, atol=1e-5)
    logp = torch.log_softmax(torch.stack(logits), -1)
    ids = torch.tensor(vocab.encode(text))
    np.testing.assert_allclose(tr.loss, -logp[:-1].gather(1, ids[:, None])[:, 0].numpy(), atol=1e-5)
    assert [vocab.chars[i] for i in tr.top_ids[3]] == [vocab.chars[i] for i in logp[4].topk(5).indices]
    np.testing.assert_allclose(tr.top_p.sum(1), logp[1:].exp().topk(5).values.sum(1).numpy(), atol=1e-5)
    assert tr.cell(tr.column(1, tr.kinds[-1], 7)) == (1, tr.kinds[-1], 7)


@torch.no_grad()
def test_trace_without_start_character_predicts_from_the_zero_state():
    torch.manual_seed(1)
    vocab = Vocab("xyz")
    model = CharRNN(ModelArgs(vocab_size=3, n_layer=1, n_hidden=8, n_embd=4)).eval()
    tr = trace(model, vocab, "zyx")
    first = torch.log_softmax(model.head.bias, -1)[vocab.stoi["z"]]
    assert tr.loss[0] == pytest.approx(-first.item(), abs=1e-5)


# ---- neuron search ----------------------------------------------------------------------------

def test_correlate_equals_pearson_and_is_zero_for_constants():
    rng = np.random.default_rng(0)
    acts = rng.normal(size=(300, 7)).astype(np.float32)
    acts[:, 4] = 2.5  # a dead cell
    feats = np.stack([acts[:, 1] * 3 + rng.normal(size=300) * 0.1, rng.normal(size=300), np.ones(300)])
    r = correlate(acts, feats)
    for f in range(2):
        for c in (0, 1, 2, 3, 5, 6):
            assert r[f, c] == pytest.approx(np.corrcoef(feats[f], acts[:, c])[0, 1], abs=1e-4)
    assert r[0, 1] > 0.99 and np.all(r[:, 4] == 0) and np.all(r[2] == 0)


def test_find_cells_recovers_planted_cells_and_skips_useless_features():
    rng = np.random.default_rng(1)
    n, hidden = 2000, 16
    depth = np.cumsum(rng.choice([-1, 1], size=n)).astype(np.float32)
    acts = rng.normal(size=(n, 2 * 2 * hidden)).astype(np.float32)
    tr = Trace("x" * n, acts, ("c", "h"), 2, hidden, np.zeros((n, 5), int), np.zeros((n, 5)), np.zeros(n))
    acts[:, tr.column(1, "c", 5)] = depth * 0.3 + rng.normal(size=n) * 0.05
    acts[:, tr.column(0, "h", 2)] = -np.tanh(depth / 10)
    rep = find_cells(tr, {"depth": depth, "flat": np.zeros(n), "short": np.ones(3)})
    (cell, r), (cell2, r2) = rep.matches[0].cells[:2]
    assert cell == (1, "c", 5) and r > 0.99 and cell2 == (0, "h", 2) and r2 < -0.8
    assert rep.strong[0.8] == 2 and rep.share(0.8) == pytest.approx(2 / 64)
    assert set(rep.skipped) == {"flat", "short"} and "constant" in rep.skipped["flat"]
    d = rep.to_dict("/x/viz.html")
    assert d["features"]["depth"]["link"] == "/x/viz.html#cell=1:c:5" and d["cells_abs_r_ge_0.8"] == 2


# ---- pages without a browser ------------------------------------------------------------------

def _small_trace(text: str) -> Trace:
    torch.manual_seed(0)
    vocab = Vocab(set(text) | {"\n"})
    return trace(CharRNN(ModelArgs(vocab_size=len(vocab), n_layer=1, n_hidden=8, n_embd=4)), vocab, text)


def test_page_keeps_hostile_text_inert_and_round_trips_it():
    text = f"ab{HOSTILE}\u2028\U0001f600\n"
    page = render_page(page_data(_small_trace(text), f"title {HOSTILE}", {"src": "<i>x</i>"}))
    assert page.count("<script") == 2 and page.count("</script>") == 2  # only the data block and ours
    assert "<b>" not in page and "<i>" not in page and "&lt;/script&gt;" in page  # the title, escaped
    assert not re.search(r"\b(src|href)\s*=", page)  # nothing is fetched when the page is viewed
    block = re.search(r'<script type="application/json" id="data">(.*?)</script>', page, re.S).group(1)
    data = json.loads(block)
    assert data["text"] == text and data["title"] == f"title {HOSTILE}"
    assert len(base64.b64decode(data["acts"])) == len(text) * 16  # 8 c + 8 h cells, one byte each


def test_page_embeds_pinned_and_most_varying_cells_when_over_budget():
    tr = _small_trace("abab\nbaba\n" * 20)
    data = page_data(tr, "t", pinned=[{"cell": (0, "h", 3), "label": "pin"}], max_bytes=len(tr.text) * 4)
    keys = [f"{c[0]}:{c[1]}:{c[2]}" for c in data["cells"]]
    assert len(keys) == 4 and "0:h:3" in keys and data["total_cells"] == 16
    assert data["pinned"] == [{"cell": "0:h:3", "label": "pin"}]


# ---- the commands on a tiny trained model -----------------------------------------------------

TRAIN = ["--layers", "2", "--hidden", "16", "--embd", "8", "--batch-size", "4", "--seq-len", "16",
         "--eval-every", "10", "--sample-every", "10", "--max-steps", "20",
         "--quiet", "--device", "cpu"]


class ToyDomain(Domain):
    """A throwaway domain whose features are easy to predict."""

    name = "toyviz"

    def features(self, text: str) -> dict[str, np.ndarray]:
        col = np.zeros(len(text), dtype=np.float32)
        for i in range(1, len(text)):
            col[i] = 0 if text[i - 1] == "\n" else col[i - 1] + 1
        return {"column": col, "is_vowel": np.array([c in "aeiou" for c in text], dtype=np.float32),
                "never": np.zeros(len(text), dtype=np.float32)}


class _ToyPlugin:
    @hookimpl
    def register_domains(self, register):
        register(ToyDomain())


@pytest.fixture(scope="module")
def gen_cli():
    pm = load_plugins()
    if not pm.is_registered(viz_commands):  # before the `viz` entry point is installed
        register_plugin(viz_commands, "viz")
    pm.hook.register_commands(cli=cli)
    runner = CliRunner()

    def _run(*args: str):
        result = runner.invoke(cli, list(args), catch_exceptions=False)
        assert result.exit_code == 0, f"gen {' '.join(args)} -> {result.exit_code}\n{result.output}"
        return result.output

    return _run


@pytest.fixture(scope="module")
def trained(tmp_path_factory, gen_cli) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("viz")
    src = root / "names.txt"
    src.write_text("\n".join(make_names()) + "\n", encoding="utf-8")
    ws = root / "ws"
    gen_cli("--workspace", str(ws), "prepare", "nm", "--domain", "names", "--src", str(src))
    gen_cli("--workspace", str(ws), "train", "nm", *TRAIN, "--run-name", "v")
    # 20,000 characters, with markup that must stay text, for the size and escaping checks
    text = (("\n".join(make_names(800, seed=3)) + "\n" + HOSTILE + "\n") * 4)[:20_000]
    (root / "text.txt").write_text(text, encoding="utf-8")
    return {"ws": ws, "run": ws / "runs" / "nm" / "v", "text": root / "text.txt", "root": root}


@pytest.fixture(scope="module")
def neurons_out(trained, gen_cli) -> dict:
    register_plugin(_ToyPlugin(), "toyviz")
    try:
        out = trained["root"] / "neurons"
        table = gen_cli("--workspace", str(trained["ws"]), "neurons", str(trained["run"] / "best.pt"),
                        "--text", str(trained["text"]), "--domain", "toyviz", "--out", str(out))
    finally:
        unregister_plugin("toyviz")
    return {"dir": out, "table": table, "json": json.loads((out / "neurons.json").read_text())}


def test_neurons_command_reports_best_cells_with_links(neurons_out):
    data, out = neurons_out["json"], neurons_out["dir"]
    assert data["chars"] == 20_000 and data["n_cells"] == 2 * 2 * 16 and data["domain"] == "toyviz"
    assert set(data["features"]) == {"column", "is_vowel"} and "never" in data["skipped_features"]
    for feat in data["features"].values():
        assert re.fullmatch(r"[01]:[ch]:\d+", feat["cell"]) and -1 <= feat["r"] <= 1 and len(feat["top"]) == 3
        assert feat["link"] == f"{(out / 'viz.html').resolve()}#cell={feat['cell']}"
    assert 0 <= data["share_abs_r_ge_0.8"] <= data["share_abs_r_ge_0.5"] <= 1
    assert "| column |" in neurons_out["table"] and (out / "neurons.md").is_file()


def test_viz_command_from_corpus_and_names_domain(trained, gen_cli, tmp_path: Path):
    ws, ckpt = str(trained["ws"]), str(trained["run"] / "best.pt")
    out = gen_cli("--workspace", ws, "viz", ckpt, "--corpus", "nm", "--chars", "300", "--cell", "1:h:4",
                  "--out", str(tmp_path / "v.html"))
    page = (tmp_path / "v.html").read_text(encoding="utf-8")
    data = json.loads(re.search(r'id="data">(.*?)</script>', page, re.S).group(1))
    assert "v.html" in out and len(data["text"]) == 300 and data["text"] == data["text"].lstrip("\n")
    assert data["pinned"][0]["cell"] == "1:h:4" and "val split" in data["info"]["text"]
    bad = CliRunner().invoke(cli, ["--workspace", ws, "viz", ckpt, "--cell", "2:c:0"])
    assert bad.exit_code == 1 and "has layers 0-1, kinds c/h and units 0-15" in bad.output
    gen_cli("--workspace", ws, "neurons", ckpt, "--corpus", "nm", "--chars", "2000", "--out", str(tmp_path / "n"))
    names = json.loads((tmp_path / "n" / "neurons.json").read_text())
    assert set(names["features"]) == {"position_in_name", "is_newline"}


def test_report_page_escapes_samples_and_inlines_the_plot(trained, gen_cli, tmp_path: Path):
    run = tmp_path / "run"
    shutil.copytree(trained["run"], run)
    RunDir(run).add_evolution_sample(99, 1.234, HOSTILE)
    (run / "loss.png").unlink()  # redrawn from metrics.jsonl
    gen_cli("report", str(run / "best.pt"))
    page = (run / "report.html").read_text(encoding="utf-8")
    assert "<script" not in page and "&lt;/script&gt;&lt;script&gt;" in page
    png = base64.b64decode(re.search(r'src="data:image/png;base64,([^"]+)"', page).group(1))
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and re.findall(r'src="([a-z]+):', page) == ["data"]
    assert page.count("<details") >= 4 and "step 10 · train loss" in page and "step 99 · train loss 1.234" in page
    best = min(json.loads(x)["val_loss"] for x in (run / "metrics.jsonl").read_text().splitlines() if "val_loss" in x)
    assert f"{best:.4f} nats ({best / math.log(2):.3f} bpc)" in page


# ---- in a real browser ------------------------------------------------------------------------

PROBE = """<script>(function () {
  var span = document.querySelectorAll("#text span")[10], tip = document.getElementById("tip");
  span.dispatchEvent(new MouseEvent("mouseover", {bubbles: true}));
  var out = {tip: [tip.hidden, tip.querySelectorAll(".g").length], hashes: []}, step = document.querySelectorAll("#controls button");
  step[1].click(); out.hashes.push(location.hash); step[0].click(); out.hashes.push(location.hash);
  document.body.setAttribute("data-probe", JSON.stringify(out));
})();</script>"""


def _chromium(url: str, tmp: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
           f"--user-data-dir={tmp / 'profile'}", *extra, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


class _Dom(HTMLParser):
    """Text inside #text, the body's attributes, coloured spans and the strip's guess rows."""

    def __init__(self) -> None:
        super().__init__()
        self.body, self.text, self.info, self.depth, self.where = {}, [], [], 0, None
        self.coloured = self.guess_rows = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "body":
            self.body = a
        if self.where:
            self.depth += 1
        elif a.get("id") in ("text", "cellinfo"):
            self.where, self.depth = a["id"], 1
        if tag == "span" and self.where == "text" and "background-color: rgba" in a.get("style", ""):
            self.coloured += 1
        if tag == "div" and a.get("class", "").split()[:1] == ["g"] and "background-color" in a.get("style", ""):
            self.guess_rows += 1

    def handle_endtag(self, tag):
        if self.where:
            self.depth -= 1
            if self.depth == 0:
                self.where = None

    def handle_data(self, data):
        if self.where == "text":
            self.text.append(data)
        elif self.where == "cellinfo":
            self.info.append(data)


@needs_chromium
def test_browser_renders_20000_chars_coloured_by_the_linked_cell(neurons_out, trained, tmp_path: Path):
    page, cell = neurons_out["json"]["features"]["column"]["link"].split("#cell=")
    # as a user would: hover a character, step to the next cell and back (leaves the state as it was)
    probed = tmp_path / "viz.html"
    probed.write_text(Path(page).read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    res = _chromium(f"file://{probed}#cell={cell}&pos=30", tmp_path, "--enable-logging=stderr", "--v=0", "--dump-dom")
    dom = _Dom()
    dom.feed(res.stdout)
    assert dom.body.get("data-ready") == "1", res.stderr[-2000:]
    assert "data-error" not in dom.body and "data-pwned" not in dom.body and "Uncaught" not in res.stderr
    text = trained["text"].read_text(encoding="utf-8")
    assert "".join(dom.text) == text.replace("\n", "\u21b5\n") and HOSTILE in "".join(dom.text)
    assert dom.coloured > 0.9 * len(text)  # every character carries the cell's colour
    info = "".join(dom.info)
    assert f"cell {cell} — " in info and "column r=" in info
    assert dom.guess_rows == 61 * 5 + 5  # the strip (61 columns around position 30) and the tooltip
    probe = json.loads(dom.body["data-probe"])
    assert probe["tip"] == [False, 5] and probe["hashes"][1] == f"#cell={cell}&pos=30", probe
    assert probe["hashes"][0] != probe["hashes"][1]
    ms = float(dom.body["data-render-ms"])
    print(f"20,000 characters rendered in {ms:.0f} ms (page load {dom.body['data-load-ms']} ms)")
    assert ms < 10_000


@needs_chromium
def test_browser_screenshot_shows_activation_colours(neurons_out, tmp_path: Path):
    import matplotlib.image

    link = neurons_out["json"]["features"]["column"]["link"]
    shot = tmp_path / "shot.png"
    _chromium("file://" + link, tmp_path, f"--screenshot={shot}", "--window-size=900,700")
    img = matplotlib.image.imread(shot)[..., :3]
    assert img.shape[:2] == (700, 900) and img.std() > 0.05
    text_area = img[260:]  # below the header, controls and strip: only the coloured text
    tinted = (text_area.max(axis=2) - text_area.min(axis=2)) > 0.2
    assert tinted.sum() > 5000, tinted.sum()  # the characters carry the cell's colours

"""`gen bench --quick`: every column is produced, finite and positive (no timed asserts: the
machine is shared), and the baselines really are the same model as ours."""

from __future__ import annotations

import json
import math
import random

import pytest
import torch
from click.testing import CliRunner

from gen.core.cli import cli
from gen.core.model import CharRNN, int8_available
from gen.core.plugins import load_plugins, register_plugin
from gen.evals.bench import commands as bench_commands
from gen.evals.bench.measure import STREAMS, Case, RefLSTM, parse_config


@pytest.fixture(scope="module")
def gen_cli():
    pm = load_plugins()
    if not pm.is_registered(bench_commands):  # before the `bench` entry point is installed
        register_plugin(bench_commands, "bench")
    pm.hook.register_commands(cli=cli)
    return CliRunner()


@pytest.fixture(scope="module")
def quick(gen_cli, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    threads = torch.get_num_threads()
    try:  # one thread: a busy 2-core machine stalls OpenMP's second thread
        res = gen_cli.invoke(cli, ["bench", "--quick", "--threads", "1", "--json", str(out)], catch_exceptions=False)
    finally:
        torch.set_num_threads(threads)
    assert res.exit_code == 0, res.output
    return res.output, json.loads(out.read_text())


def _pos(x) -> bool:
    return isinstance(x, int | float) and math.isfinite(x) and x > 0


def test_every_column_is_finite_and_positive(quick):
    _, r = quick
    assert set(r["peak"]) == {"fp32", "bf16"} and all(_pos(p["flops"]) for p in r["peak"].values())
    assert "flops_per_char" in r["flop_formula"] and r["machine"]["torch"] == torch.__version__
    assert len(r["cases"]) == 2
    for c in r["cases"]:
        assert c["flops_per_char_train"] == pytest.approx(3 * c["flops_per_char_sample"])
        for prec in ("fp32", "bf16"):
            t = c["train"][prec]
            for name in ("ours", "ref", "cell"):
                v = t[name]
                cols = ("chars_per_s", "chars_per_cpu_s", "flops_per_s", "pct_peak", "peak_mem_mb")
                assert all(_pos(v[k]) for k in cols), (prec, name)
                # interleaved: every variant got one timed block per round
                assert len(v["blocks"]) == r["rounds"] and all(_pos(b) for b in v["blocks"])
                assert v["flops_per_s"] == pytest.approx(v["chars_per_s"] * c["flops_per_char_train"])
                # against the best peak seen (it is measured at the start and again at the end)
                assert v["pct_peak"] == pytest.approx(100 * v["flops_per_s"] / r["peak"][prec]["flops"])
                assert r["peak"][prec]["flops"] >= r["peak"][prec]["flops_end"]
            for other in ("ref", "cell"):  # a paired ratio: within the per-round ratios of our speed to theirs
                rounds = [o / r for o, r in zip(t["ours"]["blocks"], t[other]["blocks"], strict=True)]
                assert min(rounds) * 0.999 <= t[f"ratio_{other}"] <= max(rounds) * 1.001
        s = c["sample"]
        assert all(_pos(s[f"ours_{n}"][k]) for n in STREAMS for k in ("chars_per_s", "chars_per_cpu_s", "pct_peak"))
        assert _pos(s["nn_lstm_1"]["chars_per_s"]) and _pos(s["speedup_1"])
        assert ("int8" in s["nll_drift"]) == int8_available()  # a row per low-precision stepper, with its drift
        for low, drift in s["nll_drift"].items():
            assert all(_pos(s[f"{low}_{n}"]["chars_per_s"]) for n in STREAMS) and 0 <= drift < 0.05, low
        assert {s["auto_1"], s["auto_64"]} <= {"fp32", "bf16", "int8"}
    assert r["targets"] and all(isinstance(t["met"], bool) and _pos(t["target"]) for t in r["targets"])
    assert _pos(r["load"]["wall_s"])


def test_table_shows_each_case_and_column(quick):
    text, r = quick
    for c in r["cases"]:
        assert c["config"] in text
    for col in ("ours c/s", "%peak", "ours/ref", "cell c/s", "MB ours", "1 stream", "nn.LSTM/char", "64 streams"):
        assert col in text
    assert "matmul peak: fp32" in text and "targets" in text
    assert ("int8" in text) == int8_available()


def test_sampling_only(gen_cli, tmp_path):
    out = tmp_path / "s.json"
    res = gen_cli.invoke(cli, ["bench", "--configs", "1x16:2x4", "--precisions", "none", "--seconds-per-case", "0.2",
                               "--json", str(out)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    r = json.loads(out.read_text())
    assert r["precisions"] == [] and r["cases"][0]["train"] == {}
    assert _pos(r["cases"][0]["sample"]["ours_64"]["chars_per_s"])
    # the planned duration comes first, before any measuring
    assert res.output.index("planned: 1 config(s) x about 0 s") < res.output.index("matmul peak")


def test_parse_config_presets_and_overrides():
    assert parse_config("2x512") == Case("2x512", 2, 512, 100, 100)
    assert parse_config("2x128") == Case("2x128", 2, 128, 32, 64)
    assert parse_config("3x256:10x20") == Case("3x256:10x20", 3, 256, 10, 20)
    with pytest.raises(ValueError, match="LAYERSxHIDDEN"):
        parse_config("2by512")


def test_bad_precision_is_a_usage_error(gen_cli):
    res = gen_cli.invoke(cli, ["bench", "--quick", "--precisions", "fp16"])
    assert res.exit_code == 2 and "fp16" in res.output


def test_baselines_are_the_same_model_as_ours():
    """Same parameter count as CharRNN, and the per-timestep LSTMCell loop computes exactly what
    the fused nn.LSTM does once its weights are copied over."""
    case = Case("t", 2, 16, 3, 5)
    ours, fused, cells = CharRNN(case.args()), RefLSTM(case.args()), RefLSTM(case.args(), per_step=True)
    assert ours.num_params() == sum(p.numel() for p in fused.parameters()) == sum(p.numel() for p in cells.parameters())
    with torch.no_grad():
        cells.embed.weight.copy_(fused.embed.weight)
        cells.head.load_state_dict(fused.head.state_dict())
        for k, cell in enumerate(cells.cells):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(cell, name).copy_(getattr(fused.lstm, f"{name}_l{k}"))
        x = torch.randint(0, case.args().vocab_size, (case.batch, case.seq))
        a, (h, c) = fused(x, None)
        b, state = cells(x, None)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(h[-1], state[-1][0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(c[0], state[0][1], rtol=1e-5, atol=1e-5)


def test_eval_section_scores_held_out_documents_of_1_to_6_kb(gen_cli, ws, run, tmp_path):
    """`gen bench --eval`: a row per prepared corpus, every MB/s column finite and positive, the
    domain's target judged, and the samples real held-out text cut into 1-6 KB documents."""
    from gen.core.corpora import load_corpus
    from gen.evals.bench.evalspeed import DOC_MAX, DOC_MIN, bench_eval, held_out_documents

    rng = random.Random(2)
    words = "the king is dead and long live queen my lord shall we go now".split()
    play = "\n\n".join(f"KING:\n{' '.join(rng.choice(words) for _ in range(rng.randint(20, 90)))}."
                       for _ in range(900))
    src = tmp_path / "play.txt"
    src.write_text(play + "\n", encoding="utf-8")
    run("prepare", "pl", "--domain", "prose", "--src", str(src))
    _, data = load_corpus("pl", ws)
    docs = held_out_documents(data, False, 10_000)
    assert docs and all(DOC_MIN <= len(d) <= DOC_MAX for d in docs)
    held_out = set(data.text("val").splitlines())  # short documents (here: lines) are joined into one
    assert all(set(d.splitlines()) <= held_out for d in docs) and 10_000 <= sum(map(len, docs)) < 10_000 + DOC_MAX
    [row] = bench_eval(["pl"], ws, max_chars=10_000, log=lambda _: None)
    assert row["domain"] == "prose" and row["chars"] == sum(map(len, docs))
    assert all(_pos(row[k]) for k in ("checks", "copy", "against", "eval_against"))
    res = gen_cli.invoke(cli, ["bench", "--configs", "none", "--eval", "pl", "--eval-mb", "0.01"],
                         catch_exceptions=False)
    assert res.exit_code == 0, res.output
    line = next(ln for ln in res.output.splitlines() if ln.startswith("pl "))
    assert "prose" in line and ("met 5" in line or "MISS 5" in line)

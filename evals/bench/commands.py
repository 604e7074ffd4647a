"""CLI command `gen bench`, added through the plugin hook (entry point ``bench`` in the ``gen``
group): options and the printed tables; the measuring is in measure.py."""

from __future__ import annotations

import json
import math
from typing import Any

import click

from gen.core import table
from gen.core.hookspecs import hookimpl

CHAR_RNN_CPS = 100 * 100 / 0.46  # char-rnn 2x512, batch 100 x seq 100: 0.46 s/batch, TITAN Z (2015)


def _si(x: float) -> str:
    if not math.isfinite(x):
        return str(x)
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.3g}"


def format_report(result: dict[str, Any]) -> str:
    """Plain-text tables: training per case x precision, sampling per case, targets."""
    m, lines = result["machine"], []
    lines.append(f"gen bench {result['date']}: {m.get('gpu') or m['cpu']} ({m['device']}, {m['threads']} threads, "
                 f"torch {m['torch']})")
    lines.append("matmul peak: " + ", ".join(f"{p} {_si(v['flops'])}FLOP/s" for p, v in result["peak"].items()))
    lines.append(f"FLOPs: {result['flop_formula']}")
    rows = [[f"{c['config']} {c['batch']}x{c['seq']}", prec + ("*" if c.get("auto", {}).get("pick") == prec else ""),
             _si(t["ours"]["chars_per_s"]),
             f"{t['ours']['pct_peak']:.1f}%", _si(t["ref"]["chars_per_s"]), f"{t['ratio_ref']:.2f}",
             _si(t["cell"]["chars_per_s"]), f"{t['ratio_cell']:.2f}", f"{t['ours']['peak_mem_mb']:.0f}",
             f"{t['ref']['peak_mem_mb']:.0f}"] for c in result["cases"] for prec, t in c["train"].items()]
    head = ["config", "prec", "ours c/s", "%peak", "ref c/s", "ours/ref", "cell c/s", "ours/cell", "MB ours", "MB ref"]
    lines += ["", "training (chars/s, medians; MB = peak memory)", table.render(rows, [head], align="<<>>>>>>>>")]
    lines.append(f"(char-rnn 2x512 100x100 on a 2015 TITAN Z GPU: {_si(CHAR_RNN_CPS)} chars/s)")
    for c in result["cases"]:
        a = c.get("auto")
        if a:
            measured = f", full rows measure {a['measured']:.2f}x" if a.get("measured") else ""
            lines.append(f"* precision=auto picks {a['pick']} for {c['config']}: {a['why']}{measured}")
    rows = []
    for c in result["cases"]:
        s = c["sample"]
        pct = s["ours_64"].get("pct_peak")
        for prec, key in (("fp32", "ours"), ("bf16", "bf16"), ("int8", "int8")):
            if f"{key}_1" not in s:
                continue
            marks = "".join(m for m, n in (("*", 1), ("+", 64)) if s.get(f"auto_{n}") == prec)
            fp32 = prec == "fp32"
            rows.append([c["config"], prec + marks, _si(s[f"{key}_1"]["chars_per_s"]),
                         _si(s["nn_lstm_1"]["chars_per_s"]) if fp32 else "-", f"{s['speedup_1']:.2f}x" if fp32 else "-",
                         _si(s[f"{key}_64"]["chars_per_s"]), "-" if pct is None or not fp32 else f"{pct:.1f}%",
                         "-" if fp32 else f"{s['nll_drift'][prec]:.4f}"])
    head = ["config", "stepper", "1 stream", "nn.LSTM/char", "speedup", "64 streams", "%peak", "NLL drift"]
    lines += ["", "sampling (chars/s on the CPU, medians; what --precision auto picks: * for 1 stream, + for 64; "
                  "%peak: fp32 64 streams vs the fp32 matmul peak; NLL drift: |low - fp32| nats/char on this "
                  "random-weight model)",
              table.render(rows, [head], align="<<>>>>>>")]
    lines += [f"note: {n}" for n in result.get("notes", [])]
    if result["targets"]:
        lines += ["", "targets (stated for the 2-core CPU)"]
        lines += [f"  {'met ' if t['met'] else 'MISS'} {t['name']}: {t['value']:,.2f} (target {t['target']:,})"
                  for t in result["targets"]]
    ld = result.get("load", {})
    lines += ["", f"load average {ld.get('loadavg_start')} -> {ld.get('loadavg_end')} on {m['cpus']} CPUs; "
                  f"this process got {ld.get('cpu_share', 0):.0%} of {m['threads']} threads' time over "
                  f"{ld.get('wall_s')} s" + (" (a busy machine: figures are lower bounds)"
                                            if ld.get("cpu_share", 1) < 0.8 else "")]
    return "\n".join(lines)


@click.command("bench")
@click.option("--quick", is_flag=True, help="tiny sizes, a few seconds: checks the benchmark itself")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="also write the results here")
@click.option("--configs", default=None,
              help="LAYERSxHIDDEN[:BATCHxSEQ],... (default 2x128,2x512,3x512; presets 2x128 = 32x64, else 100x100)")
@click.option("--seconds-per-case", type=float, default=None,
              help="time budget per config (default 60): it sizes the timed blocks; rounds always complete")
@click.option("--device", default="auto", show_default=True, help="auto (cuda when present), cpu, cuda")
@click.option("--precisions", default=None,
              help="fp32,bf16 (default; bf16 skipped on a CPU without native bf16); none = sampling only")
@click.option("--rounds", type=int, default=None, help="interleaved rounds per variant (default 3, quick 2)")
@click.option("--threads", type=int, default=0, help="CPU threads (0 = torch's default, all cores)")
@click.option("--guided", "guided_ckpts", multiple=True,
              help="checkpoint (or corpus) whose 1-stream guided sampling cost to measure (repeatable); "
                   "with --configs none only this runs")
@click.option("--eval", "eval_corpora", default=None,
              help="prepared corpora (comma-separated) whose eval throughput to measure on their held-out "
                   "text in 1-6 KB documents; with --configs none only this runs")
@click.option("--eval-mb", type=float, default=0.4, show_default=True, help="held-out text scored per corpus")
def bench(quick: bool, json_out: str | None, configs: str | None, seconds_per_case: float | None, device: str,
          precisions: str | None, rounds: int | None, threads: int, guided_ckpts: tuple[str, ...],
          eval_corpora: str | None, eval_mb: float) -> None:
    """Training and sampling throughput against plain-PyTorch baselines, and (--eval) how fast
    gen eval judges real text; prints tables."""
    from gen.core.errors import GenError
    from gen.evals.bench.measure import run_bench

    eval_rows = None
    if eval_corpora:
        from gen.evals.bench.evalspeed import bench_eval, format_eval

        eval_rows = bench_eval([c.strip() for c in eval_corpora.split(",") if c.strip()],
                               click.get_current_context().obj, int(eval_mb * 1e6), log=lambda m: click.echo(m, err=True))
        click.echo(format_eval(eval_rows))
        if configs == "none":
            _write_json(json_out, {"eval": eval_rows})
            return

    if guided_ckpts:
        from gen.evals.guided import guided_cost

        ws = click.get_current_context().obj
        click.echo("guided sampling cost, 1 stream (median of 3 interleaved rounds of 2,000 chars)")
        for target in guided_ckpts:
            c = guided_cost(target, ws)
            click.echo(f"  {c['domain']:7} unguided {c['unguided_chars_per_s']:8,.0f} chars/s   guided "
                       f"{c['guided_chars_per_s']:8,.0f} chars/s   slowdown {c['slowdown']:+.1%}   ({c['checkpoint']})")
        if configs == "none":
            return

    precs = None if precisions is None else tuple(p.strip() for p in precisions.split(",")
                                                  if p.strip() and p.strip() != "none")
    bad = [p for p in precs or () if p not in ("fp32", "bf16")]
    if bad or (precs == () and precisions != "none"):
        raise click.BadParameter(f"{', '.join(bad) or 'nothing'}: use fp32 and/or bf16 (none: sampling only)",
                                 param_hint="--precisions")
    try:
        result = run_bench(configs, quick, seconds_per_case, device, precs, rounds, threads,
                           log=lambda msg: click.echo(msg, err=True))
    except ValueError as exc:
        raise GenError(str(exc)) from None
    click.echo(format_report(result))
    _write_json(json_out, {**result, "eval": eval_rows} if eval_rows else result)


def _write_json(path: str | None, result: dict[str, Any]) -> None:
    """The results as JSON (training, sampling and eval figures of one run in one file)."""
    if not path:
        return
    from gen.core.atomic import atomic_write_text

    atomic_write_text(path, json.dumps(result, indent=2))
    click.echo(f"wrote {path}", err=True)


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(bench)


if __name__ == "__main__":
    bench()

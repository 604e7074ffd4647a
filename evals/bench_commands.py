"""CLI command `gen bench`, added through the plugin hook (entry point ``bench`` in the ``gen``
group). It parses options and prints; the measuring is in bench.py."""

from __future__ import annotations

import json
from pathlib import Path

import click

from gen.core.hookspecs import hookimpl


@click.command("bench")
@click.option("--quick", is_flag=True, help="tiny sizes, a few seconds: checks the benchmark itself")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="also write the results here")
@click.option("--configs", default=None,
              help="LAYERSxHIDDEN[:BATCHxSEQ],... (default 2x128,2x512,3x512; presets 2x128 = 32x64, else 100x100)")
@click.option("--seconds-per-case", type=float, default=None,
              help="time budget per config (default 60; a variant always gets at least 2 timed blocks)")
@click.option("--device", default="auto", show_default=True, help="auto (cuda when present), cpu, cuda")
@click.option("--precisions", default="fp32,bf16", show_default=True, help="training precisions; none = sampling only")
@click.option("--rounds", type=int, default=None, help="interleaved rounds per variant (default 3, quick 2)")
@click.option("--threads", type=int, default=0, help="CPU threads (0 = torch's default, all cores)")
def bench(quick: bool, json_out: str | None, configs: str | None, seconds_per_case: float | None, device: str,
          precisions: str, rounds: int | None, threads: int) -> None:
    """Training and sampling throughput against plain-PyTorch baselines; prints a table."""
    from gen.core.errors import GenError
    from gen.evals.bench import format_report, run_bench

    precs = tuple(p.strip() for p in precisions.split(",") if p.strip() and p.strip() != "none")
    bad = [p for p in precs if p not in ("fp32", "bf16")]
    if bad or not (precs or precisions == "none"):
        raise click.BadParameter(f"{', '.join(bad) or 'nothing'}: use fp32 and/or bf16 (none: sampling only)",
                                 param_hint="--precisions")
    try:
        result = run_bench(configs, quick, seconds_per_case, device, precs, rounds, threads,
                           log=lambda msg: click.echo(msg, err=True))
    except ValueError as exc:
        raise GenError(str(exc)) from None
    click.echo(format_report(result))
    if json_out:
        from gen.core.atomic import atomic_write_text

        Path(json_out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(json_out, json.dumps(result, indent=2))
        click.echo(f"wrote {json_out}", err=True)


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(bench)


if __name__ == "__main__":
    bench()

"""`gen eval DOMAIN ...`, added to the CLI through the register_commands hook.

`gen eval` is a group with one subcommand per loaded domain, built from that domain's declared
``eval_options`` beside the common ones, so ``gen eval c --help`` shows the C flags and a
third-party domain's own flags work exactly like a built-in's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from gen.core.atomic import atomic_write_text
from gen.core.cli import add_workspace_option
from gen.core.config import SampleOptions
from gen.core.domain import Domain
from gen.core.errors import GenError
from gen.core.hookspecs import hookimpl
from gen.core.options import click_option
from gen.core.registry import get_domain, get_registry
from gen.core.samplesfile import json_text, read_samples
from gen.core.workspace import evals_dir
from gen.evals.harness import eval_context, score_texts
from gen.evals.records import RecordWriter, format_table, write_report

_COMMON = [
    click.Argument(["samples"], type=click.Path(), required=False),
    click.Option(["--against"], help="training corpus to compare with (novelty, invented words, real-text baseline)"),
    click.Option(["--checkpoint"], help="temperature sweep: sample from this checkpoint (or corpus name) instead"),
    click.Option(["--temperatures"], default="0.2,0.5,0.8,1.0,1.3", show_default=True,
                 help="temperature sweep: comma-separated temperatures"),
    click.Option(["-n", "--num"], default=8, show_default=True, help="temperature sweep: samples per temperature"),
    click.Option(["--length"], default=800, show_default=True, help="temperature sweep: characters per sample"),
    click.Option(["--seed"], default=0, show_default=True, help="temperature sweep: sampling seed"),
    click.Option(["--device"], default="auto", show_default=True,
                 help="temperature sweep: where the model samples (auto = CUDA when present, cpu, cuda:N)"),
    click.Option(["--out"], type=click.Path(file_okay=False), help="folder for records.jsonl and summary.json"),
    click.Option(["--json", "as_json"], is_flag=True, help="print the summary JSON to stdout"),
    click.Option(["--no-baseline"], is_flag=True, help="skip the reference columns (real, corrupted, n-gram)"),
    click.Option(["--temperature"], type=click.FloatRange(0.0), default=SampleOptions.temperature, show_default=True,
                 help="the temperature the samples were drawn at: the n-gram column samples at it"),
]
_COMMON_NAMES = {p.name for p in _COMMON}


def run_eval(domain: Domain, params: dict[str, Any]) -> None:
    """Score a samples file/folder, or with --checkpoint sweep temperatures."""
    options = {k: v for k, v in params.items() if k not in _COMMON_NAMES}  # the domain's own flags
    ws = click.get_current_context().find_root().obj
    out_dir = Path(params["out"]) if params["out"] else evals_dir(ws, domain.name)
    if params["checkpoint"]:
        from gen.core.models import load_model
        from gen.evals.sweep import run_sweep

        ctx = eval_context(domain, params["against"], ws, options)
        temps = [float(t) for t in params["temperatures"].split(",") if t.strip()]
        target = str(load_model(params["checkpoint"], ws).path)
        res = run_sweep(target, ctx, temps, params["num"], params["length"], params["seed"], out_dir,
                        log=lambda m: click.echo(m, err=True), device=params["device"])
        click.echo(json.dumps(res.to_dict(), indent=2) if params["as_json"] else res.table())
        click.echo(f"wrote {out_dir}/sweep.json, sweep.txt, sweep.png", err=True)
        return
    if params["samples"] is None:
        raise GenError("give a SAMPLES file/folder, or --checkpoint for a temperature sweep")
    skipped: dict[str, int] = {}
    texts = read_samples(params["samples"], per_line=domain.samples_per_line, skipped=skipped)
    for reason, n in sorted(skipped.items()):
        click.echo(f"skipped {n:,} file(s) of {params['samples']}: {reason}", err=True)
    if not texts:
        raise GenError(f"no samples found in {params['samples']}")
    writer = RecordWriter(out_dir / "records.jsonl")  # records reach the disk as they are scored
    try:
        report = score_texts(domain.name, texts, params["against"], ws, not params["no_baseline"], sink=writer,
                             options=options, temperature=params["temperature"])
    except KeyboardInterrupt:
        writer.close()
        atomic_write_text(out_dir / "summary.json", json_text({"partial": True, "n_scored": writer.count,
                                                               "n": len(texts), "domain": domain.name}, 2))
        raise GenError(f"interrupted: {writer.count} of {len(texts)} samples scored and kept in {writer.path}; "
                       f"summary.json says the report is partial") from None
    writer.close()
    report.meta["samples"] = str(params["samples"])
    rec, summ = write_report(report, out_dir, records_written=True)
    if params["as_json"]:
        click.echo(json_text(report.summary(), indent=2))
    else:
        click.echo(format_table(report))
    click.echo(f"wrote {rec} and {summ}", err=True)


def domain_eval_command(domain: Domain) -> click.Command:
    """`gen eval DOMAIN`: the common options plus the domain's declared eval options."""
    return click.Command(
        domain.name, params=[*_COMMON, *(click_option(o) for o in domain.eval_options)],
        callback=lambda **params: run_eval(domain, params),
        help=f"Score {domain.name} samples (a .txt, .jsonl or directory) for structural validity, or with "
             f"--checkpoint sweep temperatures: sample at each and score every set (table, JSON and PNG).",
        short_help=domain.description)


class EvalGroup(click.Group):
    """One subcommand per domain loaded now (built-in, entry point or registered at run time)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(get_registry().domains)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return add_workspace_option(domain_eval_command(get_domain(name)))  # an unknown name lists the valid ones


@click.group("eval", cls=EvalGroup)
def eval_group() -> None:
    """Score samples with a domain's checks: gen eval DOMAIN SAMPLES [--against CORPUS] [domain flags]."""


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(eval_group)

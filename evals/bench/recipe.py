"""The recipe for the budget against the domain's defaults and against other shapes: `gen train`
on prepared corpora, each (corpus, budget) cell run once per arm, one after the other (``auto``:
the picked recipe; ``defaults``: ``--recipe defaults``; ``LxH``: that shape, the recipe picking
the rest), every best.pt scored on the whole validation split, one table printed.

    python -m gen.evals.bench.recipe --cells wp02:2m,wp1:2m,warandpeace:15m --json out.json
    python -m gen.evals.bench.recipe --cells wp1:2m --arms 2x128,2x256,2x384

Runs are sequential and alone on the machine (a run beside another would measure the sharing);
the workspace is GEN_HOME or --workspace, where the corpora must be prepared. Extra
``gen train`` options for every run go after ``--``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click

from gen.core import table
from gen.core.config import parse_duration
from gen.core.workspace import RunDir

ARMS = "auto,defaults"


def arm_options(arm: str) -> list[str]:
    """`gen train` options of an arm: auto, defaults or a shape LxH."""
    if arm in ("auto", "defaults"):
        return ["--recipe", arm]
    layers, hidden = arm.split("x")
    return ["--recipe", "auto", "--layers", layers, "--hidden", hidden]


def _gen(*args: str, workspace: str | None) -> str:
    """Run one gen command in a new process (as a user would); its output, or exit on failure."""
    cmd = [sys.executable, "-m", "gen.core.cli", *(["--workspace", workspace] if workspace else []), *args]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise click.ClickException(f"{' '.join(args)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return done.stdout + done.stderr


def run_cell(corpus: str, budget: str, arm: str, extra: tuple[str, ...], workspace: str | None) -> dict[str, Any]:
    """One training run and the whole-validation loss of its best.pt."""
    name = f"recipe-{arm}-{budget}-{time.strftime('%H%M%S')}"
    t0 = time.monotonic()
    log = _gen("train", corpus, "--max-time", budget, *arm_options(arm), "--run-name", name, "--quiet",
               *extra, workspace=workspace)
    wall = time.monotonic() - t0
    folder = Path(re.search(r"run folder: (\S+)", log).group(1))
    val, cfg = whole_val_loss(folder / "best.pt", corpus, workspace)
    speeds = sorted(m["chars_per_s"] for m in RunDir(folder).read_metrics() if m.get("chars_per_s"))
    return {"corpus": corpus, "budget": budget, "arm": arm, "run": str(folder), "wall_s": round(wall, 1),
            "val": val, "shape": f"{cfg['n_layer']}x{cfg['n_hidden']}", "dropout": cfg["dropout"], "ema": cfg["ema"],
            "seq_len": cfg["seq_len"], "chars_per_s": speeds[len(speeds) // 2] if speeds else None,
            "recipe": [line for line in log.splitlines() if line.startswith("recipe")]}


def describe(rec: dict[str, Any]) -> str:
    return (f"{rec['arm']}: {rec['shape']} d{rec['dropout']} ema {rec['ema']} seq {rec['seq_len']}, "
            f"{(rec['chars_per_s'] or 0) / 1e3:.1f}k c/s")


def whole_val_loss(checkpoint: Path, corpus: str, workspace: str | None) -> tuple[float, dict[str, Any]]:
    """nats/char of the checkpoint over the corpus's whole validation split (fp32, streams
    carried as in training's validation), and the run's config."""
    import torch

    from gen.core import checkpoint as ckpt_io
    from gen.core.config import TrainConfig
    from gen.core.corpora import load_corpus
    from gen.core.train import evaluate
    from gen.core.workspace import workspace_dir

    ckpt = ckpt_io.load(checkpoint)
    model, _ = ckpt_io.model_from_checkpoint(ckpt, str(checkpoint))
    _, data = load_corpus(corpus, workspace_dir(workspace))
    cfg = TrainConfig().update(ckpt["config"], str(checkpoint))
    cfg.update({"eval_chars": 0, "precision": "fp32"}, "whole validation split")
    return evaluate(model, data, cfg, torch.device("cpu")), ckpt["config"]


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--cells", required=True, help="CORPUS:BUDGET,... e.g. wp1:2m,warandpeace:15m")
@click.option("--workspace", default=None, help="the workspace with the prepared corpora (default GEN_HOME)")
@click.option("--arms", default=ARMS, show_default=True, help="auto, defaults and/or shapes LxH, comma-separated")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="also write every run's record here")
@click.argument("extra", nargs=-1, type=click.UNPROCESSED)
def main(cells: str, workspace: str | None, arms: str, json_out: str | None, extra: tuple[str, ...]) -> None:
    records, rows = [], []
    head = [["corpus", "budget", "arm", "val (nats/char)", "vs first arm"]]
    for cell in cells.split(","):
        corpus, budget = cell.split(":")
        parse_duration(budget)  # a bad budget fails before any run
        runs = [run_cell(corpus, budget, arm, extra, workspace) for arm in arms.split(",")]
        records += runs
        rows += [[corpus, budget, describe(r), f"{r['val']:.4f}", f"{r['val'] - runs[0]['val']:+.4f}"] for r in runs]
        click.echo(table.render(rows[-len(runs):], head))
        if json_out:
            Path(json_out).write_text(json.dumps(records, indent=1) + "\n", encoding="utf-8")
    click.echo("\n" + table.render(rows, head))


if __name__ == "__main__":
    main()

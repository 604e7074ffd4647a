"""`gen demo`: prepare the offline census names, train for a time budget, sample 20 names and
judge their novelty against the training names (the README's first command)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from gen.core import pipeline
from gen.core import workspace as ws_mod
from gen.core.domain import EvalContext
from gen.core.sample import SampleOptions
from gen.core.train import train
from gen.evals.harness import evaluate


def run_demo(ws: Path, seconds: float, log) -> dict[str, Any]:
    """Train ``seconds`` on the census names and return the names, their summary and the run."""
    spec = pipeline.resolve_corpus("census")
    if not ws_mod.is_prepared(ws, spec.name):
        meta = pipeline.prepare_corpus(spec.name, None, ws)
        log(f"prepared {spec.name}: {meta['report']['documents']:,} names from {meta['src']}")
    spec, data = pipeline.load_corpus(spec.name, ws)
    cfg = pipeline.resolve_config(spec, {"device": "cpu"} if not torch.cuda.is_available() else {})
    cfg.max_time = seconds
    run = ws_mod.new_run_dir(ws, spec.name, "demo-" + time.strftime("%Y%m%d-%H%M%S"))
    log(f"training {cfg.n_layer}x{cfg.n_hidden} {cfg.cell} for up to {seconds:.0f} s in {run}")
    res = train(data, cfg, run.path, spec.domain, log=log)
    # a budget too short for one full validation leaves no best.pt (a shortened one is never a
    # best): the last weights then speak for the run
    checkpoint = run.best if run.best.exists() else run.last
    loaded = pipeline.load_checkpoint(checkpoint)
    texts, _ = pipeline.sample_texts(loaded, SampleOptions(n=20, length=40, temperature=0.8, seed=0), guided=True,
                                     constraints=["nonempty", "maxlen"])
    ctx = EvalContext(loaded.domain, data)
    report = evaluate(loaded.domain, texts, ctx, baseline=False)
    return {"names": texts, "train_names": ctx.stats["names"], "summary": report.summary(),
            "checkpoint": checkpoint, "result": res}

"""Temperature sweep: sample a checkpoint at several temperatures and score every set.

The blog's trade-off in numbers: at low temperature a model loops (repetition high), at high
temperature it misspells (word validity low). Works for any domain: the columns are whatever
metrics the domain and the generic metrics report, plus ``diversity`` (share of distinct
8-character windows over the whole set at that temperature). With a training corpus
(``--against``), held-out real text of the same lengths is scored once as the reference line.

Outputs: a table (rows temperatures, columns metrics), ``sweep.json`` and ``sweep.png``.
``python -m gen.evals.sweep CKPT --against CORPUS --temps 0.2,0.5,0.8,1.0,1.3`` runs it alone.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gen.core import table
from gen.core.domain import Domain, EvalContext
from gen.core.table import fmt_num

DEFAULT_TEMPS = (0.2, 0.5, 0.8, 1.0, 1.3)
DIVERSITY_WINDOW = 8


def diversity(samples: Sequence[str], window: int = DIVERSITY_WINDOW) -> float | None:
    """Share of distinct ``window``-character windows across a set of samples."""
    total, seen = 0, set()
    for s in samples:
        for i in range(len(s) - window + 1):
            seen.add(s[i:i + window])
            total += 1
    return len(seen) / total if total else None


def score_set(domain: Domain, samples: list[str], ctx: EvalContext) -> tuple[dict[str, float | None], dict[str, bool]]:
    """Summary values and higher-is-better flags of one set, through the harness's scorer
    (domain checks + generic metrics)."""
    from gen.evals.harness import score

    scored = score(domain, samples, ctx)
    return dict(scored.values), {k: s.higher_is_better for k, s in scored.specs.items()}


@dataclass
class SweepResult:
    temperatures: list[float]
    rows: list[dict[str, float | None]]  # one per temperature: metric -> value
    better: dict[str, bool]  # metric -> higher is better
    real: dict[str, float | None] | None = None  # held-out real text, same lengths
    samples: dict[float, list[str]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        cols: list[str] = []
        for row in [*self.rows, self.real or {}]:
            cols += [k for k, v in row.items() if k not in cols and v is not None]
        return cols

    def to_dict(self) -> dict[str, Any]:
        return {"temperatures": self.temperatures, "rows": self.rows, "higher_is_better": self.better,
                "real": self.real, "meta": self.meta,
                "samples": {str(t): s[:3] for t, s in self.samples.items()}}

    def table(self) -> str:
        cols = self.columns
        head = ["temp", *cols]
        body = [[f"{t:g}", *(fmt_num(r.get(c), 3) for c in cols)]
                for t, r in zip(self.temperatures, self.rows, strict=True)]
        if self.real:
            body.append(["real", *(fmt_num(self.real.get(c), 3) for c in cols)])
        arrows = ["", *("^" if self.better.get(c, True) else "v" for c in cols)]
        return table.render(body, [head, arrows], align=">" * len(head), rule="")


def plot(result: SweepResult, path: Path, title: str = "") -> Path:
    """One small panel per metric: value against temperature, real text as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = result.columns
    ncol = min(4, max(1, len(cols)))
    nrow = max(1, math.ceil(len(cols) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol, 2.5 * nrow), squeeze=False)
    for ax, name in zip(axes.flat, cols, strict=False):
        xs = [t for t, r in zip(result.temperatures, result.rows, strict=True) if r.get(name) is not None]
        ys = [r[name] for r in result.rows if r.get(name) is not None]
        ax.plot(xs, ys, "o-", color="tab:blue", label="samples")
        if result.real and result.real.get(name) is not None:
            ax.axhline(result.real[name], color="tab:green", linestyle="--", label="real text")
        ax.set_title(f"{name} ({'higher' if result.better.get(name, True) else 'lower'} is better)", fontsize=8)
        ax.set_xlabel("temperature", fontsize=7)
        if result.temperatures:  # the same x range in every panel, even where values are missing
            lo, hi = min(result.temperatures), max(result.temperatures)
            pad = 0.05 * (hi - lo or 1)
            ax.set_xlim(lo - pad, hi + pad)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(cols):]:
        ax.axis("off")
    if cols:
        axes.flat[0].legend(fontsize=6)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def run_sweep(checkpoint: str | Path, ctx: EvalContext, temperatures: Sequence[float] = DEFAULT_TEMPS,
              n: int = 8, length: int = 800, seed: int = 0, out_dir: Path | None = None,
              prime: str = "", top_k: int = 0, log: Callable[[str], None] | None = None,
              device: str = "cpu") -> SweepResult:
    """Sample ``n`` x ``length`` at each temperature from ``checkpoint`` and score each set
    with ``ctx`` (its domain, and its ``data`` as the training corpus when given)."""
    from gen.core.config import SampleOptions
    from gen.core.models import load_checkpoint
    from gen.core.sample import sample

    loaded = load_checkpoint(checkpoint)
    ckpt, domain = loaded.ckpt, ctx.domain
    temps = sorted(float(t) for t in temperatures)
    rows, better, all_samples = [], {}, {}
    for t in temps:
        t0 = time.perf_counter()
        opts = SampleOptions(n=n, length=length, temperature=t, top_k=top_k, prime=prime, seed=seed, device=device)
        samples, _ = sample(loaded.model, loaded.vocab, opts, separator=loaded.separator, domain=domain)
        values, flags = score_set(domain, samples, ctx)
        values["diversity"] = diversity(samples)
        better.update(flags)
        rows.append(values)
        all_samples[t] = samples
        if log:
            log(f"temperature {t:g}: {n} samples scored in {time.perf_counter() - t0:.1f}s")
    better["diversity"] = True
    real = None
    if ctx.data is not None:
        lengths = [max(1, len(s)) for s in all_samples[temps[-1]]] if temps else [length] * n
        baseline = domain.baseline(ctx.data, lengths, random.Random(seed))
        real, flags = score_set(domain, baseline, ctx)
        real["diversity"] = diversity(baseline)
        better.update({k: v for k, v in flags.items() if k not in better})
    result = SweepResult(temps, rows, better, real, all_samples,
                         {"checkpoint": str(checkpoint), "domain": domain.name, "n": n, "length": length,
                          "seed": seed, "against": ctx.data.name if ctx.data is not None else None,
                          "step": ckpt.get("step"), "best_val": ckpt.get("best_val")})
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "sweep.json").write_text(json.dumps(result.to_dict(), indent=2, ensure_ascii=False),
                                            encoding="utf-8")
        (out_dir / "sweep.txt").write_text(result.table() + "\n", encoding="utf-8")
        plot(result, out_dir / "sweep.png", f"{domain.name}: temperature sweep of {Path(checkpoint).name}")
    return result


def main(argv: list[str] | None = None) -> int:
    from gen.core.errors import GenError
    from gen.core.registry import get_domain
    from gen.core.workspace import workspace_dir
    from gen.evals.harness import eval_context

    ap = argparse.ArgumentParser(prog="python -m gen.evals.sweep", description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--domain", help="default: the checkpoint's domain")
    ap.add_argument("--against", help="training corpus (prepared) for the corpus-based metrics")
    ap.add_argument("--temps", default=",".join(map(str, DEFAULT_TEMPS)))
    ap.add_argument("-n", type=int, default=8)
    ap.add_argument("--length", type=int, default=800)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="sweep")
    args = ap.parse_args(argv)
    try:
        from gen.core import checkpoint as ckpt_io

        domain = get_domain(args.domain or ckpt_io.load(args.checkpoint)["domain"])
        ctx = eval_context(domain, args.against, workspace_dir(), {})
        temps = [float(t) for t in args.temps.split(",") if t.strip()]
        res = run_sweep(args.checkpoint, ctx, temps, args.n, args.length, args.seed, Path(args.out),
                        log=lambda m: print(m, file=sys.stderr))
    except GenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(res.table())
    print(f"\nwrote {args.out}/sweep.json, sweep.txt, sweep.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())

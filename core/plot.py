"""loss.png of a run: training and validation loss against step, drawn from metrics.jsonl."""

from __future__ import annotations

from gen.core.atomic import atomic_write
from gen.core.workspace import RunDir


def plot_losses(run: RunDir, references: dict[str, float] | None = None) -> None:
    """(Re)draw ``run.loss_plot`` from the run's metrics, with ``references`` (label -> loss, e.g.
    the best n-gram's) as horizontal lines; written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = run.read_metrics()
    train_pts = [(e["step"], e["loss"]) for e in metrics if "loss" in e]
    val_pts = [(e["step"], e["val_loss"]) for e in metrics if "val_loss" in e]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if train_pts:
        ax.plot(*zip(*train_pts, strict=True), label="train", alpha=0.7)
    if val_pts:
        ax.plot(*zip(*val_pts, strict=True), "o-", label="validation")
    for label, loss in (references or {}).items():
        ax.axhline(loss, linestyle="--", color="gray", linewidth=1, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/char)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    atomic_write(run.loss_plot, lambda fh: fig.savefig(fh, format="png"))
    plt.close(fig)

"""`gen export`: a trained model as one self-describing folder anyone can load.

The folder (core/exportdir.py names its files) is written into a temporary sibling and renamed
into place at the end, so an interrupted or failed export leaves nothing half-written, and an
existing folder is replaced only with ``force`` (after the new one is complete).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from gen.core import exportdir
from gen.core.errors import GenError
from gen.core.models import Loaded
from gen.core.units import bpc

WEB_FILES = ("index.html", "gen.js")  # the browser sampler (core/web/), copied into DIR/web/


@dataclass
class ExportReport:
    folder: Path
    seconds: float
    sizes: dict[str, int] = field(default_factory=dict)  # file (relative to the folder) -> bytes
    notes: list[str] = field(default_factory=list)


def export_config(loaded: Loaded) -> dict[str, Any]:
    """config.json: everything needed to rebuild and sample the model, and how it was trained."""
    from gen.core.checkpoint import FORMAT_NAME, FORMAT_VERSION
    from gen.core.onnxstep import INPUTS, OUTPUTS, state_rows

    ck, args = loaded.ckpt, loaded.model.args
    cfg = ck.get("config") or {}
    step, best = ck.get("step"), ck.get("best_val")
    per_step = (cfg.get("batch_size") or 0) * (cfg.get("seq_len") or 0)
    best = best if isinstance(best, int | float) and best == best and best != float("inf") else None
    training = {"step": step, "chars_seen": step * per_step if isinstance(step, int) and per_step else None,
                "best_val_loss_nats": best, "best_val_bpc": bpc(best) if best is not None else None,
                "precision": cfg.get("precision"), "machine": ck.get("machine"), "elapsed_s": ck.get("elapsed"),
                "config": cfg or None}
    if "export" in ck:  # re-exporting an export keeps what the first one knew
        training = ck["export"].get("training", training)
    return {
        "format": exportdir.FORMAT_NAME, "format_version": exportdir.FORMAT_VERSION,
        "architectures": ["CharRNN"], "model_type": "gen-charrnn",
        "model_args": args.to_dict(), "vocab": loaded.vocab.to_dict(), "separator": loaded.separator,
        "stop": loaded.domain.stop or "",  # where a sample ends (a name at its newline)
        "domain": ck["domain"], "corpus": ck["corpus"], "gen_version": _version(),
        "checkpoint_format": f"{FORMAT_NAME} v{FORMAT_VERSION}", "training": training,
        "onnx": {"file": exportdir.ONNX, "inputs": list(INPUTS), "outputs": list(OUTPUTS),
                 "state_rows": state_rows(args.cell, args.n_layer),
                 "state_layout": "per layer h, then c after it for an LSTM: (S, batch, n_hidden)"},
    }


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gen-charrnn")
    except PackageNotFoundError:
        return "unknown"


def check_target(out: Path, force: bool) -> None:
    """Refuse an existing, non-empty folder (or a file) unless ``force``."""
    if out.exists() and not out.is_dir():
        raise GenError(f"{out} exists and is not a folder: choose another --out")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise GenError(f"{out} exists and is not empty: choose another --out, or add --force to replace it")


def export_model(loaded: Loaded, out: Path, ws: Path, *, force: bool = False, onnx: bool = True,
                 card: bool = True, log: Callable[[str], None] = lambda m: None) -> ExportReport:
    """Write the export folder of ``loaded`` to ``out`` (see the module docstring)."""
    t0 = time.perf_counter()
    out = Path(out)
    check_target(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.export-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    report = ExportReport(out, 0.0)
    try:
        _write(loaded, tmp, ws, onnx, card, report, log)
        _shareable(tmp)
        _swap_in(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report.sizes = {str(p.relative_to(out)): p.stat().st_size for p in sorted(out.rglob("*")) if p.is_file()}
    report.seconds = time.perf_counter() - t0
    return report


def _write(loaded: Loaded, tmp: Path, ws: Path, onnx: bool, card: bool, report: ExportReport,
           log: Callable[[str], None]) -> None:
    from safetensors.torch import save_file

    from gen.core.atomic import atomic_write_text

    state = {k: v.detach().float().contiguous() for k, v in loaded.model.state_dict().items()}
    save_file(state, str(tmp / exportdir.WEIGHTS), metadata={"format": "pt"})
    config = export_config(loaded)
    atomic_write_text(tmp / exportdir.CONFIG, json.dumps(config, indent=1, ensure_ascii=False) + "\n")
    if onnx:
        from gen.core.onnxstep import write_onnx

        log("writing model.onnx (one step, torch's ONNX exporter)")
        write_onnx(loaded.model, tmp / exportdir.ONNX)
    else:
        report.notes.append("no model.onnx (--no-onnx)")
    web = tmp / exportdir.WEB
    web.mkdir()
    for name in WEB_FILES:
        (web / name).write_bytes(resources.files("gen.core").joinpath("web", name).read_bytes())
    if card:
        from gen.core.modelcard import write_card

        log("writing the model card (20 samples, scored beside held-out text)")
        report.notes += write_card(loaded, config, tmp / exportdir.CARD, ws)
    else:
        report.notes.append("no model card (--no-card)")


def _shareable(folder: Path) -> None:
    """Files readable by everyone the umask allows (temporary files are created private)."""
    umask = os.umask(0)
    os.umask(umask)
    for p in folder.rglob("*"):
        p.chmod((0o755 if p.is_dir() else 0o644) & ~umask)


def _swap_in(tmp: Path, out: Path) -> None:
    """Rename the finished folder into place; an existing ``out`` (allowed by --force) is moved
    aside first and deleted only once the new folder is in place."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.replaced-{os.getpid()}"
        out.rename(old)
    try:
        tmp.rename(out)
    except OSError:
        if old is not None:
            old.rename(out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)

"""`gen score`: load, score and say it: the model beside the corpus's best n-gram, dynamic
evaluation, and the loss-by-structure table and chart (written into the checkpoint's run folder)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from gen.core import table
from gen.core.atomic import atomic_write_text
from gen.core.errors import GenError
from gen.core.table import fmt_num
from gen.core.units import bpc


def run_score(ws: Path, target: str, file: str | None, chars: int | None, order: int, dynamic: bool,
              lr: float | None, decay: float | None, by_structure: bool, as_json: str | None,
              log: Callable[[str], None]) -> str:
    """Everything `gen score` does; returns the text it prints."""
    from gen.core.corpora import load_corpus
    from gen.core.models import load_model
    from gen.core.scoring import Dynamic
    from gen.core.workspace import CorpusDir
    from gen.evals.baselines.ngram import best
    from gen.evals.baselines.score import by_structure as group
    from gen.evals.baselines.score import plot_structure, score
    from gen.evals.baselines.store import baselines

    loaded = load_model(target, ws)
    vocab, corpus = loaded.vocab, loaded.ckpt["corpus"]
    data = load_corpus(corpus, ws)[1] if CorpusDir.of(ws, corpus).is_prepared() else None
    if file is None and data is None:
        raise GenError(f"the checkpoint's corpus {corpus!r} is not prepared: gen prepare {corpus}, or give --file")
    text = Path(file).read_text(encoding="utf-8") if file else None
    ids = vocab.encode(text) if text is not None else data.ids("val")
    ids = ids[:chars] if chars else ids
    if len(ids) == 0:
        raise GenError("nothing to score: the text is empty")
    if data is not None and data.vocab.chars != vocab.chars:
        raise GenError(f"corpus {corpus!r} was prepared again since the checkpoint: its vocabulary differs")
    best_order = None
    if data is not None:
        results, _ = baselines(data, min(order, len(data.ids("train"))), log=log)
        best_order = best(results).order
    settings = Dynamic(**{k: v for k, v in (("lr", lr), ("decay", decay)) if v is not None}) if dynamic else None
    log(f"scoring {len(ids):,} characters with {loaded.path}" + (" (and dynamically)" if dynamic else ""))
    start = vocab.stoi.get(loaded.separator[:1], 0)
    scores = score(loaded.model, ids, start, data.ids("train") if data is not None else None, len(vocab),
                   best_order, settings)
    summary = {**scores.summary(), "checkpoint": str(loaded.path), "text": file or f"{corpus} validation split"}
    if settings is not None:
        summary["dynamic_settings"] = {"lr": settings.lr, "decay": settings.decay, "beta": settings.beta}
    lines = [_table(summary)]
    if by_structure:
        rows = group(scores, loaded.domain.features(text if text is not None else vocab.decode(ids)))
        summary["by_structure"] = rows
        lines.append(_structure_table(rows))
        if rows and best_order:
            path = loaded.run.structure
            plot_structure(rows, path, f"{corpus}: model vs order-{best_order} n-gram, by structure")
            lines.append(f"chart: {path}")
    if as_json:
        atomic_write_text(Path(as_json), json.dumps(summary, indent=2))
        lines.append(f"wrote {as_json}")
    return "\n".join(lines)


def _table(s: dict) -> str:
    rows = [["model (static)", f"{s['model_nats']:.4f}", f"{s['model_bpc']:.3f}", f"{s['seconds']['model']:.1f}"]]
    if "dynamic_nats" in s:
        rows.append(["model (dynamic evaluation)", f"{s['dynamic_nats']:.4f}", f"{s['dynamic_bpc']:.3f}",
                     f"{s['seconds']['dynamic']:.1f}"])
    if "ngram_nats" in s:
        rows.append([f"best n-gram (order {s['ngram_order']}, Kneser-Ney)", f"{s['ngram_nats']:.4f}",
                     f"{s['ngram_bpc']:.3f}", f"{s['seconds']['ngram']:.1f}"])
    out = [table.render(rows, [["on " + s["text"] + f" ({s['chars']:,} chars)", "nats/char", "bpc", "s"]],
                        align="<>>>")]
    if "ngram_nats" in s:
        out.append(f"the model is {s['model_gain_over_ngram_nats']:+.4f} nats/char "
                   f"({bpc(s['model_gain_over_ngram_nats']):+.3f} bpc) below counting")
    if "dynamic_nats" in s:
        out.append(f"dynamic evaluation: {s['dynamic_gain_nats']:+.4f} nats/char below the static model")
    return "\n".join(out)


def _structure_table(rows: list[dict]) -> str:
    if not rows:
        return "(this domain reports no structural features)"
    body = [[r["feature"], r["group"], f"{r['chars']:,}", f"{r['model_nats']:.3f}", fmt_num(r["ngram_nats"]),
             fmt_num(r["gain_nats"])] for r in rows]
    top = max((r for r in rows if r["gain_nats"] is not None and r["chars"] >= 100), key=lambda r: r["gain_nats"],
              default=None)
    out = ["", "loss by structure (nats/char; gain = n-gram minus model):",
           table.render(body, [["feature", "group", "chars", "model", "n-gram", "gain"]], align="<<>>>>")]
    if top is not None and top["gain_nats"] > 0:
        out.append(f"the model beats counting most where {top['feature']} = {top['group']} "
                   f"({top['gain_nats']:+.3f} nats/char over {top['chars']:,} characters)")
    elif top is not None:
        out.append(f"counting beats the model everywhere; by least where {top['feature']} = {top['group']} "
                   f"({top['gain_nats']:+.3f} nats/char over {top['chars']:,} characters): train it longer")
    return "\n".join(out)

"""What an eval writes and shows: records.jsonl (streamed as samples are scored), summary.json,
and the table of samples beside the reference columns (real, corrupted, n-gram)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from gen.core import table
from gen.core.atomic import atomic_write_text
from gen.core.table import fmt_num
from gen.evals.harness import BETTER, EvalReport, as_good


def write_report(report: EvalReport, out_dir: Path, records_written: bool = False) -> tuple[Path, Path]:
    """records.jsonl (one line per sample; unless a RecordWriter already streamed them) and
    summary.json, written atomically."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rec_path, sum_path = out_dir / "records.jsonl", out_dir / "summary.json"
    if not records_written:
        atomic_write_text(rec_path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in report.samples.records))
    atomic_write_text(sum_path, json.dumps(report.summary(), indent=2, ensure_ascii=False))
    return rec_path, sum_path


class RecordWriter:
    """records.jsonl written as samples are scored: each chunk appended and flushed, text that
    cannot be encoded (lone surrogates) escaped; ``count`` says how many are safely on disk."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.count = path, 0
        self.fh = open(path, "w", encoding="utf-8", errors="backslashreplace")

    def __call__(self, records: list[dict[str, Any]]) -> None:
        self.fh.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        self.fh.flush()
        self.count += len(records)

    def close(self) -> None:
        self.fh.close()


def format_table(report: EvalReport, worst: int = 3) -> str:
    """Metric table (samples | real | corrupted) plus excerpts of the most frequent issues."""
    s = report.samples
    cols = ["metric", "better", "samples"] + (["real", "corrupted"] if report.real else []) + \
        (["n-gram"] if report.ngram else [])
    good = set(as_good(s, report.ngram)) if report.ngram else set()
    rows = []
    for name, spec in s.specs.items():
        row = [name, BETTER[spec.higher_is_better], fmt_num(s.values.get(name))]
        if report.real:
            row += [fmt_num(report.real.values.get(name)), fmt_num(report.corrupted.values.get(name))]
        if report.ngram:
            row.append(fmt_num(report.ngram.values.get(name)) + (" *" if name in good else ""))
        rows.append(row)
    lines = [table.render(rows, [cols])]
    if report.real:
        lines.append(f"(real and corrupted: {report.meta.get('baseline_texts', 0):,} held-out texts, "
                     f"{report.meta.get('baseline_chars', 0):,} characters, of {report.meta.get('against')})")
    if report.ngram:
        lines.append(f"(n-gram: {report.meta['ngram_texts']:,} samples of the order-{report.meta['ngram_order']} "
                     f"model of {report.meta.get('against')} at temperature {report.meta['ngram_temperature']}; "
                     f"* where counting scores as well as the samples: {', '.join(sorted(good)) or 'nowhere'})")
    elif "ngram" in report.meta:
        lines.append(f"({report.meta['ngram']})")
    kinds = Counter(i["kind"] for r in s.records for i in r["issues"])
    if kinds:
        lines.append("")
        lines.append(f"issues in {len(s.records)} samples (most frequent first, with excerpts):")
        for kind, count in kinds.most_common(8):
            examples = [i for r in s.records for i in r["issues"] if i["kind"] == kind][:worst]
            lines.append(f"  {kind}: {count}")
            for ex in examples:
                where = f"@{ex['offset']} " if ex["offset"] >= 0 else ""
                lines.append(f"      {where}{ex['message'][:90]}" + (f"  | {ex['excerpt']}" if ex["excerpt"] else ""))
    return "\n".join(lines)

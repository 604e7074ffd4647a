"""The one samples format shared by `gen sample` (writes) and `gen eval` (reads).

* a plain text file: one sample (or, for line-per-sample domains such as names, one per line);
* a directory: every regular file in it is one sample, in sorted order;
* JSONL (``.jsonl``): one ``{"text": ...}`` object per line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gen.core.atomic import atomic_write_text
from gen.core.errors import GenError

MAX_SAMPLES_BYTES = 256 << 20  # a samples file or folder larger than this is an error, not a slow eval
MAX_SAMPLE_FILE_BYTES = 16 << 20  # one file of a samples folder larger than this is skipped


def read_samples(path: str | Path, per_line: bool = False, skipped: dict[str, int] | None = None) -> list[str]:
    """The samples at ``path``; in a folder, what was skipped (and why) is counted in ``skipped``."""
    path = Path(path)
    if str(path) == "-":
        import sys

        text = sys.stdin.read()
        return _lines(text) if per_line else [text]
    if not path.exists():
        raise GenError(f"samples {path} do not exist: pass a .txt file, a .jsonl file or a directory")
    if path.is_dir():
        return _folder(path, skipped if skipped is not None else {})
    if path.stat().st_size > MAX_SAMPLES_BYTES:
        raise GenError(f"samples {path} are {path.stat().st_size:,} bytes, over the {MAX_SAMPLES_BYTES:,} a samples "
                       f"file may have: split it")
    text = path.read_text(encoding="utf-8", errors="replace")
    if not text:  # one policy for every domain: an empty file holds no sample (gen eval says so)
        return []
    if path.suffix == ".jsonl":
        out = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                out.append(str(json.loads(line)["text"]))
            except (json.JSONDecodeError, KeyError, TypeError):
                raise GenError(f"{path}:{n}: not a JSON object with a \"text\" field") from None
        return out
    return _lines(text) if per_line else [text]


def _folder(root: Path, skipped: dict[str, int]) -> list[str]:
    """Every regular file of a samples folder, sorted: with the rules of `gen prepare` (no
    symlink out of the folder, binary files and oversized files skipped, each skip counted)."""
    from gen.core.sources import PrepareReport, binary_reason, walk_files

    report, out, total = PrepareReport(), [], 0
    for f in walk_files(root, ["*"], report):
        data = f.read_bytes() if f.stat().st_size <= MAX_SAMPLE_FILE_BYTES else None
        if data is None:
            report.skip(f"larger than {MAX_SAMPLE_FILE_BYTES:,} bytes")
            continue
        total += len(data)
        if total > MAX_SAMPLES_BYTES:
            raise GenError(f"samples folder {root} holds over {MAX_SAMPLES_BYTES:,} bytes: split it")
        reason = binary_reason(data[:8192])
        if reason:
            report.skip(reason)
            continue
        out.append(data.decode("utf-8", errors="replace"))  # bad bytes in a sample are data
    for reason, n in report.skipped.items():
        skipped[reason] = skipped.get(reason, 0) + n
    return out


def json_text(obj: Any, indent: int | None = None) -> str:
    """JSON that always encodes to UTF-8: a lone surrogate in a sample (JSONL's "\\ud800")
    becomes the JSON escape ``\\ud800`` instead of crashing the write."""
    text = json.dumps(obj, indent=indent, ensure_ascii=False)
    return text.encode("utf-8", errors="backslashreplace").decode("utf-8")


def _lines(text: str) -> list[str]:
    """One sample per line. An empty line is an empty sample (data, not noise); only the final
    newline ends the file."""
    lines = text.replace("\r\n", "\n").split("\n")
    return lines[:-1] if lines and lines[-1] == "" else lines


def write_samples(path: str | Path, samples: list[str], per_line: bool = False) -> Path:
    """Write samples in the format the path names: .jsonl, a .txt file, or a directory."""
    path = Path(path)
    if path.suffix == ".jsonl":
        atomic_write_text(path, "".join(json.dumps({"text": s}, ensure_ascii=False) + "\n" for s in samples))
    elif per_line:
        atomic_write_text(path, "".join(s.replace("\n", " ") + "\n" for s in samples))
    elif len(samples) == 1 and path.suffix:
        atomic_write_text(path, samples[0])
    else:
        path.mkdir(parents=True, exist_ok=True)
        for i, s in enumerate(samples):
            atomic_write_text(path / f"sample-{i:04d}.txt", s)
    return path

"""The one samples format shared by `gen sample` (writes) and `gen eval` (reads).

* a plain text file: one sample (or, for line-per-sample domains such as names, one per line);
* a directory: every regular file in it is one sample, in sorted order;
* JSONL (``.jsonl``): one ``{"text": ...}`` object per line.
"""

from __future__ import annotations

import json
from pathlib import Path

from gen.core.atomic import atomic_write_text
from gen.core.errors import GenError


def read_samples(path: str | Path, per_line: bool = False) -> list[str]:
    path = Path(path)
    if str(path) == "-":
        import sys

        text = sys.stdin.read()
        return _lines(text) if per_line else [text]
    if not path.exists():
        raise GenError(f"samples {path} do not exist: pass a .txt file, a .jsonl file or a directory")
    if path.is_dir():
        return [p.read_text(encoding="utf-8", errors="replace") for p in sorted(path.iterdir()) if p.is_file()]
    text = path.read_text(encoding="utf-8", errors="replace")
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

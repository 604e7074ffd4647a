"""Corpora a user names: `gen prepare mybook --src mybook.txt [--domain prose]`.

Their manifests live in the workspace (``manifests/NAME.toml``) beside the prepared data, so
`gen corpora`, `gen train mybook`, `gen sample mybook` and `gen eval ... --against mybook` treat
them like built-in corpora. The domain is given, or inferred from the source and said: every
domain is asked whether it claims the source (``Domain.claim``), built-in or third-party alike.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import tomllib

from gen.core.atomic import atomic_write_text
from gen.core.domain import CorpusSpec, SourceSample
from gen.core.errors import GenError
from gen.core.sources import ARCHIVE_SUFFIXES
from gen.core.workspace import check_name, corpus_dir, remove_tree, runs_dir

SNIFF_BYTES = 1 << 16  # how much of a source the inference reads


def manifests_dir(ws: Path) -> Path:
    return ws / "manifests"


def load_user_corpora(ws: Path | None) -> dict[str, CorpusSpec]:
    """The workspace's user corpora, by name (a broken manifest is skipped, not fatal)."""
    out: dict[str, CorpusSpec] = {}
    folder = manifests_dir(ws) if ws else None
    if folder is None or not folder.is_dir():
        return out
    for path in sorted(folder.glob("*.toml")):
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
            out[raw["name"]] = CorpusSpec(**raw, origin=f"workspace {path}")
        except (tomllib.TOMLDecodeError, KeyError, TypeError, UnicodeDecodeError):
            continue
    return out


def save_user_corpus(ws: Path, spec: CorpusSpec) -> Path:
    """Write the manifest of a user corpus (TOML; JSON strings are TOML basic strings)."""
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return repr(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return json.dumps(str(v), ensure_ascii=False)

    keys = ("name", "domain", "description", "src", "patterns", "separator", "split", "val_fraction")
    lines = ["# a user corpus, written by gen prepare; edit with care"]
    lines += [f"{k} = {value(getattr(spec, k))}" for k in keys]
    if spec.options:
        lines += ["", "[options]"] + [f"{k} = {value(v)}" for k, v in spec.options.items() if v is not None]
    path = manifests_dir(ws) / f"{check_name(spec.name, 'corpus name')}.toml"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def remove_user_corpus(ws: Path, spec: CorpusSpec) -> list[str]:
    """Delete a user corpus's data and manifest; returns what was deleted (runs are kept)."""
    if not spec.user:
        raise GenError(f"{spec.name!r} is a built-in corpus: only corpora you prepared under your own name "
                       f"can be removed (its data: {corpus_dir(ws, spec.name)})")
    gone = []
    data = corpus_dir(ws, spec.name)
    if data.is_dir():
        gone.append(f"{data} ({remove_tree(data) / 1e6:.1f} MB of prepared data)")
    manifest = manifests_dir(ws) / f"{spec.name}.toml"
    if manifest.is_file():
        manifest.unlink()
        gone.append(f"{manifest} (its manifest)")
    runs = runs_dir(ws, spec.name)
    if runs.is_dir() and any(runs.iterdir()):
        gone.append(f"kept: {runs} ({sum(1 for _ in runs.iterdir())} training runs; delete them yourself)")
    return gone


def sample_source(src: str) -> SourceSample:
    """What domains are shown of a --src to claim it: file names (for a folder or archive) and
    the first bytes of the first text file."""
    if src == "-":
        return SourceSample([], b"", complete=False, stdin=True)
    path = Path(src)
    if not path.exists():
        raise GenError(f"--src {src} does not exist. Pass a file, a directory, an archive or '-' for stdin.")
    if path.is_dir():
        names = []
        for root, dirs, files in os.walk(path):
            dirs.sort()
            names += [os.path.join(root, f) for f in sorted(files)]
            if len(names) > 2000:
                break
        first = next((n for n in names if not os.path.islink(n)), None)
        head = Path(first).read_bytes()[:SNIFF_BYTES] if first else b""
    elif path.name.endswith(ARCHIVE_SUFFIXES):
        import tarfile

        with tarfile.open(path) as tar:
            names, head = [m.name for m in tar.getmembers()[:2000] if m.isfile()], b""
    elif zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()[:2000]
            head = zf.read(names[0])[:SNIFF_BYTES] if names else b""
    else:
        with open(path, "rb") as fh:
            names, head = [path.name], fh.read(SNIFF_BYTES)
    return SourceSample(names, head, complete=len(head) < SNIFF_BYTES)


def new_user_spec(name: str, domain: str, src: str, default: CorpusSpec | None,
                  options: dict[str, Any]) -> CorpusSpec:
    """The manifest of a new user corpus: the domain's default corpus settings (file patterns,
    separator, split), this name and source."""
    check_name(name, "corpus name")
    base = default or CorpusSpec(name=name, domain=domain)
    where = src if src == "-" else str(Path(src).resolve())
    return CorpusSpec(name=name, domain=domain, description=f"your {domain} corpus from {where}",
                      patterns=list(base.patterns), separator=base.separator, split=base.split,
                      val_fraction=base.val_fraction, options={**base.options, **options}, src=where,
                      origin=f"workspace (new: {name})")

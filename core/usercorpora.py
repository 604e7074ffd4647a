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

from gen.core.atomic import atomic_write_text
from gen.core.domain import CorpusSpec, SourceSample
from gen.core.errors import GenError, warn_once
from gen.core.manifest import parse
from gen.core.sources import ARCHIVE_ERRORS, ARCHIVE_SUFFIXES
from gen.core.workspace import check_name, corpus_dir, remove_tree, runs_dir

SNIFF_BYTES = 1 << 16  # how much of a source the inference reads


def manifests_dir(ws: Path) -> Path:
    return ws / "manifests"


def load_user_corpora(ws: Path | None) -> dict[str, CorpusSpec]:
    """The workspace's user corpora, by name. A manifest that breaks the schema (core/manifest.py),
    or whose name is not its file's, is skipped and named on stderr (once), never fatal."""
    out: dict[str, CorpusSpec] = {}
    folder = manifests_dir(ws) if ws else None
    if folder is None or not folder.is_dir():
        return out
    for path in sorted(folder.glob("*.toml")):
        problem = manifest_problem(path)
        if isinstance(problem, str):
            warn_once(str(path), f"skipped {problem}")
        else:
            out[problem.name] = problem
    return out


def manifest_problem(path: Path) -> CorpusSpec | str:
    """The user corpus a manifest file declares, or what is wrong with it."""
    try:
        spec = parse(path.read_text(encoding="utf-8"), f"workspace {path}")
    except (GenError, OSError, UnicodeDecodeError) as exc:
        return str(exc) if isinstance(exc, GenError) else f"{path}: {exc}"
    if spec.name != path.stem:
        return f"{path}: its name {spec.name!r} is not its file's ({path.stem!r}); make them the same"
    return spec


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
    for table in ("options", "download"):  # a re-prepare keeps where the text comes from
        values = getattr(spec, table)
        if values:
            lines += ["", f"[{table}]"] + [f"{k} = {value(v)}" for k, v in values.items() if v is not None]
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
    if data.is_symlink():  # the link goes; what it points to was never gen's to delete
        target = os.path.realpath(data)
        data.unlink()
        gone.append(f"{data} (a link; its target {target} was not touched)")
    elif data.is_dir():
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
    try:
        return _sample(path)
    except ARCHIVE_ERRORS as exc:
        raise GenError(f"archive {path} is damaged or truncated ({type(exc).__name__}: {exc}); "
                       f"download or pack it again") from None


def _sample(path: Path) -> SourceSample:
    if path.is_dir():
        names = []
        for root, dirs, files in os.walk(path):
            dirs.sort()
            names += [os.path.join(root, f) for f in sorted(files)]
            if len(names) > 2000:
                break
        first = next((n for n in names if not os.path.islink(n)), None)
        head = b""
        if first:
            with open(first, "rb") as fh:
                head = fh.read(SNIFF_BYTES)
    elif path.name.endswith(ARCHIVE_SUFFIXES):
        import tarfile

        with tarfile.open(path) as tar:
            names = []
            for i, m in enumerate(tar):  # the first members only: a huge archive is not read to its end
                if i >= 2000:
                    break
                if m.isfile():
                    names.append(m.name)
            head = b""
    elif zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()[:2000]
            if names:
                with zf.open(names[0]) as fh:
                    head = fh.read(SNIFF_BYTES)
            else:
                head = b""
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

"""Corpus statistics built once: a domain's ``corpus_stats`` cached beside the prepared corpus.

What ``--against`` needs from the training text (declared names, macros, link targets, word
lists, length distributions) can take seconds to compute on a big corpus (tree-sitter over the
kernel). It is saved as JSON in the corpus folder, named after the domain, a stats version and a
digest of the corpus's own files, so a re-prepared or edited corpus is never judged with stale
figures, and later runs load it in milliseconds.

JSON, not pickle: loading a cache never runs code. Values may be None, bools, numbers, strings,
lists, tuples, sets, frozensets, dicts with string keys, and dataclasses defined in the domain's
own package (anything else is not cached: the statistics are just rebuilt each run).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from pathlib import Path
from typing import Any

from gen.core.atomic import atomic_write_text
from gen.core.workspace import CorpusDir

FORMAT = 1  # bump when the file layout changes


class Unsupported(TypeError):
    """A value the cache cannot write as JSON."""


def cache_path(data: Any, domain: Any) -> Path:
    return CorpusDir(data.path).stats(domain.name, domain.stats_version, data.digest)


def load_or_build(domain: Any, data: Any) -> Any:
    """``domain.corpus_stats(data)``, from the cache when it is there and intact."""
    path = cache_path(data, domain)
    allowed = domain.__class__.__module__.rsplit(".", 1)[0]
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("format") == FORMAT:
            return decode(doc["stats"], allowed)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, ImportError):
        pass  # missing or damaged: build it
    stats = domain.corpus_stats(data)
    try:
        text = json.dumps({"format": FORMAT, "domain": domain.name, "stats": encode(stats)}, ensure_ascii=False)
        for old in CorpusDir(data.path).stale_stats(domain.name):  # another corpus state's figures
            old.unlink(missing_ok=True)
        atomic_write_text(path, text)
    except (Unsupported, OSError):
        pass  # an uncacheable value or a read-only corpus folder: rebuilt next time
    return stats


def encode(v: Any) -> Any:
    """A JSON-ready form of ``v`` (see the module docstring for what is allowed)."""
    if v is None or isinstance(v, bool | int | float | str):
        return v
    if isinstance(v, list):
        return [encode(x) for x in v]
    if isinstance(v, tuple):
        return {"__tuple__": [encode(x) for x in v]}
    if isinstance(v, set | frozenset):
        return {"__set__": sorted((encode(x) for x in v), key=repr), "frozen": isinstance(v, frozenset)}
    if isinstance(v, dict):
        if not all(isinstance(k, str) for k in v):
            raise Unsupported("dict keys must be strings")
        return {"__dict__": {k: encode(x) for k, x in v.items()}}
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        cls = type(v)
        return {"__dataclass__": f"{cls.__module__}:{cls.__qualname__}",
                "fields": {f.name: encode(getattr(v, f.name)) for f in dataclasses.fields(v)}}
    raise Unsupported(f"cannot cache a {type(v).__name__}")


def decode(v: Any, allowed_package: str) -> Any:
    """Inverse of :func:`encode`; dataclasses only from ``allowed_package`` (the domain's own)."""
    if isinstance(v, list):
        return [decode(x, allowed_package) for x in v]
    if not isinstance(v, dict):
        return v
    if "__tuple__" in v:
        return tuple(decode(x, allowed_package) for x in v["__tuple__"])
    if "__set__" in v:
        items = {_hashable(decode(x, allowed_package)) for x in v["__set__"]}
        return frozenset(items) if v["frozen"] else items
    if "__dict__" in v:
        return {k: decode(x, allowed_package) for k, x in v["__dict__"].items()}
    if "__dataclass__" in v:
        module, _, name = v["__dataclass__"].partition(":")
        if not (module == allowed_package or module.startswith(allowed_package + ".")):
            raise ValueError(f"a cached dataclass from {module!r}, outside {allowed_package!r}")
        cls = getattr(importlib.import_module(module), name)
        if not dataclasses.is_dataclass(cls):
            raise ValueError(f"{name} is not a dataclass")
        return cls(**{k: decode(x, allowed_package) for k, x in v["fields"].items()})
    raise ValueError("not a value this cache writes")


def _hashable(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v

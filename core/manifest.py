"""What a corpus manifest may say: its schema, checked on every manifest before gen uses it.

Built-in manifests (``corpora/*.toml``) and the workspace's user manifests (``manifests/*.toml``,
written by `gen prepare NAME --src`, perhaps edited by hand) are read through :func:`parse`: a
wrong type, an unknown key, a name that is a path, or a download file name that would land
outside the workspace is a GenError that names the file and the key, before any I/O happens.
"""

from __future__ import annotations

import re
from typing import Any

import tomllib

from gen.core.domain import CorpusSpec
from gen.core.errors import GenError
from gen.core.workspace import check_name

_HEX64 = re.compile(r"[0-9a-f]{64}")
# key -> (what it must be, a check of the value)
_STR = ("a string", lambda v: isinstance(v, str))
_STRS = ("a list of strings", lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v))
_TABLE = ("a table", lambda v: isinstance(v, dict))
SCHEMA: dict[str, tuple[str, Any]] = {
    "name": _STR, "domain": _STR, "description": _STR, "patterns": _STRS, "separator": _STR,
    "split": ("\"tail\" or \"hash\"", lambda v: v in ("tail", "hash")),
    "val_fraction": ("a number between 0 and 1", lambda v: isinstance(v, int | float) and not isinstance(v, bool)
                     and 0 <= v < 1),
    "sources": _STRS, "download": _TABLE, "defaults": _TABLE, "options": _TABLE, "src": _STR,
    "license": _STR,
}
DOWNLOAD: dict[str, tuple[str, Any]] = {
    "url": ("an http(s) URL", lambda v: isinstance(v, str) and v.startswith(("http://", "https://"))),
    "sha256": ("64 lowercase hex digits", lambda v: isinstance(v, str) and _HEX64.fullmatch(v)),
    "size": ("a positive whole number", lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0),
    "file": _STR, "note": _STR,
}


def parse(text: str, origin: str) -> CorpusSpec:
    """One manifest's TOML text as a CorpusSpec, or a GenError naming ``origin`` and the key."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise GenError(f"corpus manifest {origin} is not valid TOML: {exc}") from None
    return from_dict(raw, origin)


def from_dict(raw: dict[str, Any], origin: str) -> CorpusSpec:
    """A manifest's values checked against :data:`SCHEMA` (and its download against DOWNLOAD)."""
    unknown = sorted(set(raw) - set(SCHEMA))
    if unknown or "name" not in raw or "domain" not in raw:
        raise GenError(f"corpus manifest {origin}: needs 'name' and 'domain'; unknown keys {unknown}; "
                       f"valid keys: {sorted(SCHEMA)}")
    for key, value in raw.items():
        what, ok = SCHEMA[key]
        if not ok(value):
            raise GenError(f"corpus manifest {origin}: {key} = {value!r} must be {what}")
    check_name(raw["name"], f"corpus manifest {origin}: name")
    download = raw.get("download", {})
    for key, value in download.items():
        if key not in DOWNLOAD:
            raise GenError(f"corpus manifest {origin}: [download] {key} is unknown; valid: {sorted(DOWNLOAD)}")
        what, ok = DOWNLOAD[key]
        if not ok(value):
            raise GenError(f"corpus manifest {origin}: [download] {key} = {value!r} must be {what}")
    if download:
        if "url" not in download:
            raise GenError(f"corpus manifest {origin}: [download] needs a url")
        from gen.core.download import file_name

        try:
            file_name(download)
        except GenError as exc:
            raise GenError(f"corpus manifest {origin}: [download] {exc}") from None
    return CorpusSpec(**raw, origin=origin)

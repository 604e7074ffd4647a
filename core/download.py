"""Downloading a corpus's text from where its manifest says it comes from.

Resumable (an interrupted download keeps its ``.part`` file and the next call asks the server
for the rest with an HTTP Range request), verified (SHA-256, or the size where no checksum is
pinned), cached in the workspace's ``downloads/`` folder, with a progress bar. Without a
network the error says exactly which file to fetch from where, and which ``--src`` to pass.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gen.core.errors import GenError

CHUNK = 1 << 16
TIMEOUT = 30  # seconds without a byte before a download counts as dropped


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _verify(path: Path, spec: dict[str, Any]) -> str | None:
    """None when ``path`` is the pinned file, else why not."""
    if spec.get("sha256"):
        got = sha256_of(path)
        return None if got == spec["sha256"] else f"SHA-256 {got}, expected {spec['sha256']}"
    if spec.get("size"):
        got = path.stat().st_size
        return None if got == int(spec["size"]) else f"{got:,} bytes, expected {int(spec['size']):,}"
    return None


def offline_help(corpus: str, spec: dict[str, Any]) -> str:
    pin = f" (SHA-256 {spec['sha256']})" if spec.get("sha256") else ""
    return (f"download {spec['url']}{pin} yourself, then run: gen prepare {corpus} --src "
            f"PATH/{spec.get('file') or Path(spec['url']).name}")


def fetch(corpus: str, spec: dict[str, Any], folder: Path, log: Callable[[str], None] = print,
          progress: bool = True) -> Path:
    """The verified local copy of ``spec["url"]`` in ``folder`` (downloaded or resumed if needed)."""
    dest = folder / (spec.get("file") or Path(spec["url"]).name)
    if dest.is_file() and _verify(dest, spec) is None:
        return dest
    folder.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(spec["url"], headers={"User-Agent": "gen-charrnn",
                                                           **({"Range": f"bytes={have}-"} if have else {})})
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT)  # noqa: S310 - the manifest's own URL
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise GenError(f"cannot download {corpus}: {reason}. Without a network, {offline_help(corpus, spec)}") from None
    with response:
        if have and response.status != 206:  # the server ignored the Range request: start over
            have = 0
        total = int(response.headers.get("Content-Length") or 0) + have or None
        log(f"downloading {spec['url']}" + (f" (resuming at {have:,} bytes)" if have else ""))
        _receive(response, part, have, total, progress, corpus, spec)
    problem = _verify(part, spec)
    if problem:
        part.unlink()
        raise GenError(f"the download of {spec['url']} is not the pinned file ({problem}): it was removed. "
                       f"Try again; if it persists the file changed upstream: {offline_help(corpus, spec)}")
    os.replace(part, dest)
    if not spec.get("sha256"):
        log(f"note: no checksum is pinned for {dest.name}; its SHA-256 is {sha256_of(dest)}")
    return dest


def _receive(response, part: Path, have: int, total: int | None, progress: bool, corpus: str,
             spec: dict[str, Any]) -> None:
    """Append the response body to ``part``; a dropped connection keeps what arrived."""
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, initial=have, unit="B", unit_scale=True, disable=None, leave=False)
    got = have
    try:
        with open(part, "ab" if have else "wb") as fh:
            while True:
                block = response.read(CHUNK)
                if not block:
                    break
                fh.write(block)
                got += len(block)
                if bar:
                    bar.update(len(block))
    except (OSError, urllib.error.URLError) as exc:  # dropped, reset, timed out: resumable
        raise GenError(f"the download of {corpus} stopped at {got:,} bytes ({exc}); run the same command "
                       f"again to resume it") from None
    finally:
        if bar:
            bar.close()
    if total and got < total:
        raise GenError(f"the download of {corpus} stopped at {got:,} of {total:,} bytes (the connection "
                       f"closed early); run the same command again to resume it")

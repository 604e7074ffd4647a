"""Downloading a corpus's text from where its manifest says it comes from.

Confined (the file name a manifest gives is a name, never a path: nothing is written outside
the workspace's ``downloads/CORPUS/`` folder), verified (SHA-256, or the size where no checksum
is pinned), resumable only where it can be verified (an interrupted download with a pinned
SHA-256 keeps its ``.part`` file and the next call asks for the rest with an HTTP Range request;
an unpinned one starts over, and the SHA-256 it computed is pinned beside the file, so a cached
file that changes later is fetched again), with a progress bar. Without a network the error
says exactly which file to fetch from where, and which ``--src`` to pass.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gen.core.atomic import atomic_write_text
from gen.core.errors import GenError
from gen.core.workspace import check_name

CHUNK = 1 << 16
TIMEOUT = 30  # seconds without a byte before a download counts as dropped


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_name(spec: dict[str, Any]) -> str:
    """The downloaded file's name: the manifest's ``file``, else the URL's last segment; a name,
    never a path (GenError otherwise), so it cannot land outside the download folder."""
    name = str(spec.get("file") or Path(str(spec.get("url", ""))).name)
    return check_name(name, "download file name")


def _pinned_beside(path: Path) -> Path:
    """Where the SHA-256 an unpinned download computed is kept."""
    return path.with_name(path.name + ".sha256")


def _verify(path: Path, spec: dict[str, Any]) -> str | None:
    """None when ``path`` is the pinned file, else why not."""
    pinned = spec.get("sha256")
    if not pinned and _pinned_beside(path).is_file():
        pinned = _pinned_beside(path).read_text(encoding="utf-8").strip()
    if pinned:
        got = sha256_of(path)
        return None if got == pinned else f"SHA-256 {got}, expected {pinned}"
    if spec.get("size"):
        got = path.stat().st_size
        return None if got == int(spec["size"]) else f"{got:,} bytes, expected {int(spec['size']):,}"
    return None


def offline_help(corpus: str, spec: dict[str, Any]) -> str:
    pin = f" (SHA-256 {spec['sha256']})" if spec.get("sha256") else ""
    return (f"download {spec['url']}{pin} yourself, then run: gen prepare {corpus} --src "
            f"PATH/{file_name(spec)}")


def fetch(corpus: str, spec: dict[str, Any], folder: Path, log: Callable[[str], None] = print,
          progress: bool = True) -> Path:
    """The verified local copy of ``spec["url"]`` in ``folder`` (downloaded or resumed if needed)."""
    dest = folder / file_name(spec)
    if dest.is_file() and _verify(dest, spec) is None:
        return dest
    folder.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    if part.is_file() and not spec.get("sha256"):
        part.unlink()  # nothing could verify what a resumed unpinned download kept: start over
    have = part.stat().st_size if part.is_file() else 0
    try:
        response = _open(spec["url"], have)
    except urllib.error.HTTPError as exc:
        if exc.code != 416 or not have:
            raise GenError(f"cannot download {corpus}: HTTP {exc.code} {exc.reason} from {spec['url']}") from None
        part.unlink()  # the range asked for lies past the file's end: a stale part, start over
        have, response = 0, _open_or_fail(spec, corpus, 0)
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
        digest = sha256_of(dest)
        atomic_write_text(_pinned_beside(dest), digest + "\n")
        log(f"note: no checksum is pinned for {dest.name}; its SHA-256 {digest} is now pinned beside it")
    return dest


def _open(url: str, have: int):
    headers = {"User-Agent": "gen-charrnn", **({"Range": f"bytes={have}-"} if have else {})}
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT)  # noqa: S310


def _open_or_fail(spec: dict[str, Any], corpus: str, have: int):
    try:
        return _open(spec["url"], have)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise GenError(f"cannot download {corpus}: {reason}. Without a network, {offline_help(corpus, spec)}") from None


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
                if bar is not None:
                    bar.update(len(block))
    except (OSError, urllib.error.URLError) as exc:  # dropped, reset, timed out: resumable
        raise GenError(f"the download of {corpus} stopped at {got:,} bytes ({exc}); run the same command "
                       f"again to resume it") from None
    finally:
        if bar is not None:
            bar.close()
    if total and got < total:
        raise GenError(f"the download of {corpus} stopped at {got:,} of {total:,} bytes (the connection "
                       f"closed early); run the same command again to resume it")

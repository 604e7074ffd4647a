"""Reading a --src: a file, a directory tree, an archive, stdin or a package resource.

Walks are deterministic (sorted), never follow a symlink out of the source root, skip binary
files (a NUL byte in the first 8 KB), files over a size limit and undecodable files, and count
every skip in the PrepareReport.
"""

from __future__ import annotations

import fnmatch
import io
import lzma
import os
import re
import sys
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from gen.core.errors import GenError

ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2")


class PrepareReport:
    """Counts what prepare took and skipped, and why; printed and saved in meta.json."""

    def __init__(self) -> None:
        self.files = 0
        self.documents = 0
        self.bytes_in = 0
        self.skipped: dict[str, int] = {}
        self.notes: list[str] = []
        # what a domain learns of the source at prepare for its checks (C: the header paths), saved
        # in meta.json's report and read back by the domain's corpus_stats
        self.extra: dict[str, Any] = {}

    def skip(self, reason: str, n: int = 1) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + n

    def note(self, message: str) -> None:
        self.notes.append(message)

    def to_dict(self) -> dict[str, Any]:
        return {"files": self.files, "documents": self.documents, "bytes_in": self.bytes_in,
                "skipped": dict(self.skipped), "notes": list(self.notes), **({"extra": self.extra} if self.extra else {})}


def matches(name: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(name, p) for p in patterns)


def walk_files(root: Path, patterns: list[str], report: PrepareReport) -> Iterator[Path]:
    """Files under ``root`` matching ``patterns``, sorted, symlinks out of ``root`` skipped."""
    root_real = os.path.realpath(root)
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for d in list(dirnames):  # a symlinked directory is walked only if it stays inside root
            full = os.path.join(dirpath, d)
            if os.path.islink(full):
                dirnames.remove(d)
                report.skip("symlink (not followed)")
        for fname in sorted(filenames):
            full = os.path.join(dirpath, fname)
            if not matches(fname, patterns):
                report.skip("not matching the corpus file patterns")
                continue
            if os.path.islink(full):
                target = os.path.realpath(full)
                if not (target + os.sep).startswith(root_real + os.sep) or not os.path.isfile(target):
                    report.skip("symlink pointing outside --src")
                    continue
            yield Path(full)


# signatures of files that are never text, whatever their bytes after the first few
# (ASCII-only signatures are long enough that no text starts with them by chance)
BINARY_SIGNATURES = ((b"\x7fELF", "an ELF executable"), (b"%PDF-", "a PDF"), (b"PK\x03\x04", "a ZIP archive"),
                     (b"\x89PNG\r\n", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF87a", "a GIF image"),
                     (b"GIF89a", "a GIF image"), (b"\x1f\x8b", "gzip data"), (b"\xfd7zXZ\x00", "xz data"))
_BZIP2 = re.compile(rb"BZh[1-9]1AY&SY")


def binary_reason(head: bytes) -> str | None:
    """Why the first bytes of a file say it is not text (a NUL byte, or a known signature), else None."""
    for magic, what in BINARY_SIGNATURES:
        if head.startswith(magic):
            return f"binary ({what})"
    if _BZIP2.match(head):
        return "binary (bzip2 data)"
    return "binary (NUL byte)" if b"\0" in head else None


def decode(data: bytes, name: str, report: PrepareReport, max_bytes: int | None = None) -> str | None:
    """UTF-8 text of one file, or None (counted) when it is binary, too big or undecodable."""
    if max_bytes is not None and len(data) > max_bytes:
        report.skip(f"larger than {max_bytes} bytes")
        return None
    reason = binary_reason(data[:8192])
    if reason:
        report.skip(reason)
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        report.skip("not valid UTF-8")
        return None
    report.files += 1
    report.bytes_in += len(data)
    return text.removeprefix("\ufeff")


def iter_sources(src: str | Path, patterns: list[str], report: PrepareReport,
                 max_bytes: int | None = None) -> Iterator[tuple[str, str]]:
    """(name, text) for every usable file of a --src: file, tree, tar archive or '-' (stdin)."""
    if str(src) == "-":
        data = sys.stdin.buffer.read()
        text = decode(data, "<stdin>", report)
        if text is not None:
            yield "<stdin>", text
        return
    if str(src).startswith("package:"):
        yield from _package_source(str(src)[len("package:"):], report)
        return
    path = Path(src)
    if not path.exists():
        raise GenError(f"--src {src} does not exist. Pass a file, a directory, an archive or '-' for stdin.")
    if path.is_dir():
        for f in walk_files(path, patterns, report):
            text = decode(f.read_bytes(), str(f), report, max_bytes)
            if text is not None:
                yield str(f.relative_to(path)), text
    elif path.name.endswith(ARCHIVE_SUFFIXES) or zipfile.is_zipfile(path):
        yield from _archive_source(path, patterns, report, max_bytes)
    else:
        text = decode(path.read_bytes(), str(path), report, max_bytes)
        if text is not None:
            yield path.name, text


MAX_MEMBER_BYTES = 256 << 20  # an archive member larger than this is skipped unread (one document)
HEAD_BYTES = 8192  # what is read of a member before deciding it is text
ARCHIVE_ERRORS = (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, zlib.error, lzma.LZMAError)


def _read_member(fh: IO[bytes], size: int, cap: int, report: PrepareReport) -> bytes | None:
    """A member's bytes, read in two steps so a binary or oversized member is never inflated
    whole: its declared size against ``cap``, its head for a binary signature, then the rest
    (at most ``cap`` + 1 bytes, whatever the header claimed)."""
    if size > cap:
        report.skip(f"larger than {cap} bytes")
        return None
    head = fh.read(HEAD_BYTES)
    reason = binary_reason(head)
    if reason:
        report.skip(reason)
        return None
    data = head + fh.read(cap + 1 - len(head))
    if len(data) > cap:
        report.skip(f"larger than {cap} bytes")
        return None
    return data


SORT_BUDGET = 64 << 20  # bytes of an unsorted tar's members held to hand them on sorted by name


def _archive_members(path: Path, patterns: list[str],
                     report: PrepareReport) -> Iterator[tuple[str, int, str, Callable[[], IO[bytes]]]]:
    """(name, size, kind, open) of every member of a tar or zip archive, sorted by name; kind is
    "file", "link" or "other". Nothing is extracted to disk. A zip is read in name order (its
    directory gives random access); a tar is read forward only, in one pass, since going back
    re-reads a compressed archive from its start: a sorted tar (gen's, git's, tar(1) of a sorted
    tree) as it is stored, an unsorted one through memory (its matching members, up to
    SORT_BUDGET bytes) or, beyond that, in its stored order (said in the report)."""
    if not path.name.endswith(ARCHIVE_SUFFIXES):
        with zipfile.ZipFile(path) as zf:
            for info in sorted(zf.infolist(), key=lambda i: i.filename):
                link = (info.external_attr >> 16) & 0o170000 == 0o120000  # a symlink stored in the zip
                kind = "other" if info.is_dir() else "link" if link else "file"
                yield info.filename, info.file_size, kind, lambda info=info: zf.open(info)
        return
    with tarfile.open(path, "r:*") as tar:
        members = tar.getmembers()  # one pass over the archive
        names = [m.name for m in members]
        wanted = sum(m.size for m in members if m.isfile() and matches(os.path.basename(m.name), patterns))
        held = names != sorted(names) and wanted <= SORT_BUDGET
        if names != sorted(names) and not held:
            report.note(f"{path.name}: members read in their stored order (not sorted by name: "
                        f"{wanted / 1e6:.0f} MB is more than is held to sort them)")
        entries = []
        for m in members:  # forward only: one more pass
            kind = "file" if m.isfile() else "link" if m.issym() or m.islnk() else "other"
            if held:
                data = tar.extractfile(m).read() if kind == "file" and m.size <= MAX_MEMBER_BYTES and matches(
                    os.path.basename(m.name), patterns) else b""
                entries.append((m.name, m.size, kind, lambda data=data: io.BytesIO(data)))
            else:
                yield m.name, m.size, kind, lambda m=m: tar.extractfile(m)
        yield from sorted(entries, key=lambda e: e[0])


def _archive_source(path: Path, patterns: list[str], report: PrepareReport,
                    max_bytes: int | None) -> Iterator[tuple[str, str]]:
    """The usable text members of a .tar(.gz/.xz/.bz2) or .zip: links never followed, every
    skip counted, the same rules as a folder; a damaged or truncated archive is a GenError."""
    cap = min(max_bytes, MAX_MEMBER_BYTES) if max_bytes is not None else MAX_MEMBER_BYTES
    try:
        for name, size, kind, open_member in _archive_members(path, patterns, report):
            if kind != "file":
                if kind == "link":
                    report.skip("symlink (not followed)")
                continue
            if not matches(os.path.basename(name), patterns):
                report.skip("not matching the corpus file patterns")
                continue
            with open_member() as fh:
                data = _read_member(fh, size, cap, report)
            text = decode(data, name, report, max_bytes) if data is not None else None
            if text is not None:
                yield name, text
    except ARCHIVE_ERRORS as exc:
        raise GenError(f"archive {path} is damaged or truncated ({type(exc).__name__}: {exc}); "
                       f"download or pack it again") from None


def _package_source(spec: str, report: PrepareReport) -> Iterator[tuple[str, str]]:
    """package:DIST/FILE[,FILE...]: data files shipped inside an installed Python package."""
    import importlib.resources

    pkg, _, files = spec.partition("/")
    try:
        root = importlib.resources.files(pkg)
    except ModuleNotFoundError:
        raise GenError(f"source package {pkg!r} is not installed: pip install {pkg}") from None
    for fname in files.split(","):
        data = (root / fname).read_bytes()
        text = decode(data, fname, report)
        if text is not None:
            yield fname, text


PIECE_BYTES = 1 << 20  # how much of a streamed source is read and decoded at a time


class Pieces:
    """One document read in pieces (stdin, or a single file): prepare writes them in order and
    never holds the whole text, so memory stays flat whatever the size."""

    def __init__(self, name: str, pieces: Iterator[str]) -> None:
        self.name, self._pieces = name, pieces

    def __iter__(self) -> Iterator[str]:
        return self._pieces


def stream_source(src: str | Path, report: PrepareReport) -> Pieces | None:
    """stdin ('-') or one regular file as :class:`Pieces` of UTF-8 text; None for anything else
    (a folder, an archive, a package resource), which :func:`iter_sources` reads file by file."""
    if str(src) == "-":
        return Pieces("<stdin>", _decoded(sys.stdin.buffer, "standard input", report))
    path = Path(src)
    if str(src).startswith("package:") or not path.is_file() or path.name.endswith(ARCHIVE_SUFFIXES) \
            or zipfile.is_zipfile(path):
        return None
    return Pieces(path.name, _opened(path, report))


def _opened(path: Path, report: PrepareReport) -> Iterator[str]:
    with open(path, "rb") as fh:
        yield from _decoded(fh, str(path), report)


def _decoded(fh: IO[bytes], name: str, report: PrepareReport) -> Iterator[str]:
    """The text of a byte stream, decoded a block at a time: a binary head is skipped (counted,
    as for any file), invalid UTF-8 is a GenError that says where."""
    import codecs

    head = fh.read(PIECE_BYTES)
    reason = binary_reason(head[:8192])
    if reason:
        report.skip(reason)
        return
    decoder, total, block, first = codecs.getincrementaldecoder("utf-8")(), 0, head, True
    while block:
        total += len(block)
        try:
            text = decoder.decode(block)
        except UnicodeDecodeError as exc:
            raise GenError(f"{name} is not valid UTF-8 (byte {total - len(block) + exc.start:,}): convert it "
                           f"to UTF-8 first, e.g. iconv -f LATIN1 -t UTF-8") from None
        yield text.removeprefix("\ufeff") if first else text
        first, block = False, fh.read(PIECE_BYTES)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise GenError(f"{name} is not valid UTF-8 (it ends inside a character)") from None
    report.files += 1
    report.bytes_in += total


def iter_text_files(src: str | Path, patterns: list[str], report: PrepareReport) -> Iterator[str]:
    """The default Domain.documents: one document per usable file."""
    for _name, text in iter_sources(src, patterns, report):
        yield text

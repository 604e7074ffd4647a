"""Reading MediaWiki XML dumps for the wiki domain: streamed, decompressed, cut into pages.

A dump is read as bytes in fixed-size blocks (plain, bz2, gzip, xz or zip, told apart by their
magic bytes, not their names), decoded incrementally with undecodable bytes dropped and
counted, and cut into documents without ever holding more than one page in memory:

* the header (``<mediawiki ...>`` and ``<siteinfo>``), each ``<page>...</page>``, the footer;
* each document excludes the newline that follows it: that newline is the corpus separator
  ("\\n"), so joining the documents with it gives back the raw XML byte for byte.

A page left open at the end of the input (a truncated download, or enwik8 itself, cut at 10^8
bytes) is dropped and reported. ``text_only`` yields the unescaped wikitext of each page.
"""

from __future__ import annotations

import bz2
import codecs
import gzip
import io
import lzma
import re
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from gen.core.api import (
    ARCHIVE_SUFFIXES,
    GenError,
    PrepareReport,
    binary_reason,
    iter_sources,
    matches,
    walk_files,
)

BLOCK = 1 << 20  # bytes read per step: memory stays flat whatever the dump size
MAX_PAGE_CHARS = 64 << 20  # a "page" bigger than this is a broken dump: dropped, not buffered
_SURROGATE = re.compile("[\udc80-\udcff]")  # undecodable bytes under errors="surrogateescape"
_TEXT_EL = re.compile(r"<text\b[^>]*?(?:/>|>(.*?)</text>)", re.S)
_CHARREF = re.compile(r"&(#[0-9]+|#x[0-9a-fA-F]+|lt|gt|amp|quot|apos);")
_XML_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"', "apos": "'"}


def xml_unescape(text: str) -> str:
    """Undo XML escaping: the five predefined entities and numeric references, nothing else
    (``&amp;nbsp;`` becomes the wikitext ``&nbsp;``, which is what the page's author wrote)."""
    if "&" not in text:
        return text

    def sub(m: re.Match) -> str:
        name = m.group(1)
        if name[0] != "#":
            return _XML_ENTITIES[name]
        try:
            cp = int(name[2:], 16) if name[1] in "xX" else int(name[1:])
            return chr(cp)
        except (ValueError, OverflowError):
            return m.group(0)

    return _CHARREF.sub(sub, text)


def open_stream(fh: BinaryIO, name: str) -> tuple[BinaryIO, str]:
    """Wrap ``fh`` in the decompressor its magic bytes call for; returns (stream, kind)."""
    head = fh.peek(8)[:8] if hasattr(fh, "peek") else b""
    if head.startswith(b"BZh"):
        return bz2.BZ2File(fh), "bz2"
    if head.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=fh), "gzip"
    if head.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(fh), "xz"
    return fh, "plain"


def decoded_blocks(stream: BinaryIO, name: str, report: PrepareReport) -> Iterator[str]:
    """UTF-8 text of a byte stream in blocks; undecodable bytes are dropped and counted."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="surrogateescape")
    first = True
    bad = 0
    # read1: a decompressor returns what it has decoded so far, so a stream cut short loses
    # only its last partial block, not the whole read
    read = getattr(stream, "read1", stream.read)
    try:
        while True:
            data = read(BLOCK)
            if first and (reason := binary_reason(data[:8192])):  # an executable, a PDF ...: not a dump
                report.skip(reason)
                report.note(f"{name}: skipped whole, it is {reason.removeprefix('binary ')}, not XML text")
                return
            final = not data
            report.bytes_in += len(data)
            text = decoder.decode(data, final=final)
            if _SURROGATE.search(text):
                n = len(_SURROGATE.findall(text))
                bad += n
                text = _SURROGATE.sub("", text)
            if first and text:
                text = text.removeprefix("\ufeff")
                first = False
            if text:
                yield text
            if final:
                break
    except (OSError, EOFError, lzma.LZMAError, zipfile.BadZipFile) as exc:
        # a truncated .bz2/.gz/.xz ends in an error: keep what came before, say why it stopped
        report.skip("compressed stream cut short or corrupt (rest of the file unread)")
        report.note(f"{name}: stopped reading at byte {report.bytes_in}: {exc}")
    if bad:
        report.skip("undecodable bytes dropped (not UTF-8)", bad)
        report.note(f"{name}: dropped {bad} bytes that were not valid UTF-8")


def split_pages(blocks: Iterator[str], name: str, report: PrepareReport) -> Iterator[str]:
    """Cut decoded text into header, pages and footer (see the module docstring)."""
    buf = ""
    pos = 0  # start of the not-yet-emitted text in buf
    header_done = False
    for block in blocks:
        buf = buf[pos:] + block
        pos = 0
        while True:
            if not header_done:
                start = buf.find("<page>", pos)
                if start < 0:
                    break
                nl = buf.rfind("\n", pos, start)
                if nl >= 0:
                    yield buf[pos:nl]  # the header (may be "" when a page comes first)
                    pos = nl + 1
                header_done = True
            end = buf.find("</page>", pos)
            if end < 0:
                break
            end += len("</page>")
            nl = buf.find("\n", end)
            if nl < 0:
                if len(buf) - end < 4096:
                    break  # the newline may be in the next block
                nl = end  # minified XML: no newline after </page>; one is inserted
            elif buf[end:nl].strip():
                nl = end  # something else on the same line: cut right after </page>
            if nl - pos > MAX_PAGE_CHARS:  # whole but oversized: skipped whole
                report.skip(f"document larger than {MAX_PAGE_CHARS:,} characters (broken dump?)")
            else:
                yield buf[pos:nl]
            pos = nl + 1 if nl < len(buf) and buf[nl] == "\n" else nl
        if len(buf) - pos > MAX_PAGE_CHARS:  # skipped whole: nothing of it is kept
            report.skip(f"document larger than {MAX_PAGE_CHARS:,} characters (broken dump?)")
            buf, pos = _skip_oversized(buf[pos:], blocks, header_done), 0
    rest = buf[pos:]
    if not header_done:
        if rest.strip():
            if "<mediawiki" not in rest:
                report.note(f"{name}: no <page> and no <mediawiki> element: is this a MediaWiki dump?")
            yield rest.removesuffix("\n")
        return
    open_page = rest.find("<page>")
    if open_page >= 0:
        report.skip("page cut off at the end of the input (truncated dump)")
        report.note(f"{name}: the input ends inside a <page>; kept every whole page before it")
        nl = rest.rfind("\n", 0, open_page)
        rest = rest[:nl] if nl >= 0 else ""
    if rest.strip():
        yield rest.removesuffix("\n")


def _skip_oversized(buf: str, blocks: Iterator[str], header_done: bool) -> str:
    """Drop an oversized document to its end (after ``</page>``, or before the next ``<page>``
    when it is header text), reading on through ``blocks``; returns the text after it."""
    marker = "</page>" if header_done else "<page>"
    while True:
        cut = buf.find(marker)
        if cut >= 0:
            return buf[cut + len(marker):] if header_done else buf[cut:]
        tail = buf[-len(marker):]  # a marker may straddle two blocks
        block = next(blocks, None)
        if block is None:
            return ""
        buf = tail + block


def page_wikitext(page: str) -> str | None:
    """The unescaped wikitext of one page document, or None when it has no <text> element."""
    m = _TEXT_EL.search(page)
    if m is None:
        return None
    return xml_unescape(m.group(1) or "")


def _streams(src: str | Path, patterns: list[str], report: PrepareReport) -> Iterator[tuple[str, BinaryIO]]:
    """(name, byte stream) for every dump file of a --src: file, tree, zip, tar or stdin."""
    if str(src) == "-":
        yield "<stdin>", open_stream(sys.stdin.buffer, "<stdin>")[0]
        return
    path = Path(src)
    if not path.exists():
        raise GenError(f"--src {src} does not exist. Pass a MediaWiki XML dump (.xml, .xml.bz2, .gz, "
                       f".xz, .zip), a directory of them, or '-' for stdin.")
    files = list(walk_files(path, patterns, report)) if path.is_dir() else [path]
    for f in files:
        if f.name.endswith(ARCHIVE_SUFFIXES):  # tar: the core walker (whole members in memory)
            for member, text in iter_sources(f, patterns, report):
                data = text.encode("utf-8")
                report.files -= 1  # counted again as it is read below
                report.bytes_in -= len(data)
                yield member, io.BytesIO(data)
            continue
        if zipfile.is_zipfile(f):
            with zipfile.ZipFile(f) as zf:
                names = sorted(n for n in zf.namelist() if not n.endswith("/"))
                picked = [n for n in names if matches(Path(n).name, patterns)] or names
                for n in picked:
                    with zf.open(n) as member:  # ZipExtFile streams and has peek()
                        yield f"{f.name}:{n}", open_stream(member, n)[0]
            continue
        with open(f, "rb") as raw:
            yield str(f), open_stream(raw, str(f))[0]


def iter_documents(src: str | Path, patterns: list[str], report: PrepareReport,
                   text_only: bool = False) -> Iterator[str]:
    """The documents of a --src (see the module docstring)."""
    for name, stream in _streams(src, patterns, report):
        report.files += 1
        for doc in split_pages(decoded_blocks(stream, name, report), name, report):
            if not text_only:
                yield doc
                continue
            if "<page>" not in doc:
                continue  # header / footer: not wikitext
            text = page_wikitext(doc)
            if text is None or not text.strip():
                report.skip("page without wikitext (text_only)")
                continue
            # a blank line between pages: with the "\n" separator each page ends in "\n\n"
            yield text.rstrip("\n") + "\n"

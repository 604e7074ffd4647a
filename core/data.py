"""Prepared corpora: streaming prepare into memory-mapped token files, and TBPTT batches.

``prepare`` makes two passes with flat memory, whatever the source size:
  1. stream the domain's documents into temporary UTF-8 files (train/val when the split is
     per document, one file when it is the tail of the stream), counting characters per chunk;
  2. build the vocabulary, then re-read the text in chunks and write ids to train.bin/val.bin.
The finished folder replaces the old one only at the end, so a failed prepare loses nothing.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import os
import random
import re
import shutil
import tempfile
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gen.core.atomic import atomic_write_text
from gen.core.domain import CorpusSpec, Domain
from gen.core.errors import GenError
from gen.core.sources import Pieces, PrepareReport
from gen.core.vocab import Vocab
from gen.core.workspace import CorpusDir, remove_tree

if TYPE_CHECKING:
    import torch

CHUNK_CHARS = 1 << 22  # 4M characters per encode step: bounded memory, numpy-speed encoding
FORMAT = 1


def _count_chars(text: str, counts: dict[int, int]) -> None:
    """Add ``text``'s code point counts to ``counts``, a slice of CHUNK_CHARS at a time: the
    UTF-32 copy and bincount's int64 copy of one huge line would otherwise be 12x its size."""
    for i in range(0, len(text), CHUNK_CHARS):
        cps = np.frombuffer(text[i:i + CHUNK_CHARS].encode("utf-32-le"), dtype=np.uint32)
        top = int(cps.max())
        if top < 1 << 17:  # the usual case: bincount is ~2x faster than unique
            hist = np.bincount(cps, minlength=top + 1)
            uniq = np.nonzero(hist)[0]
            n = hist[uniq]
        else:
            uniq, n = np.unique(cps, return_counts=True)
        for cp, k in zip(uniq.tolist(), n.tolist(), strict=True):
            counts[cp] = counts.get(cp, 0) + k


class _TextSink:
    """Buffers text, counts its characters and appends it to a UTF-8 file."""

    def __init__(self, path: Path, counts: dict[int, int]) -> None:
        self.fh = open(path, "w", encoding="utf-8", newline="")
        self.counts, self.buf, self.size, self.chars = counts, [], 0, 0

    def write(self, text: str) -> None:
        self.buf.append(text)
        self.size += len(text)
        if self.size >= CHUNK_CHARS:
            self.flush()

    def flush(self) -> None:
        if self.buf:
            text = "".join(self.buf)
            _count_chars(text, self.counts)
            self.fh.write(text)
            self.chars += len(text)
            self.buf, self.size = [], 0

    def close(self) -> None:
        self.flush()
        self.fh.close()


def _read_chunks(path: Path, limit: int | None = None) -> Iterator[str]:
    with open(path, encoding="utf-8", newline="") as fh:
        yield from _read_chunks_from(fh, limit)


def _read_chunks_from(fh, limit: int | None = None) -> Iterator[str]:
    """At most ``limit`` characters of an open text file, CHUNK_CHARS at a time."""
    left = limit
    while left is None or left > 0:
        chunk = fh.read(CHUNK_CHARS if left is None else min(CHUNK_CHARS, left))
        if not chunk:
            return
        if left is not None:
            left -= len(chunk)
        yield chunk


def _encode_to(path: Path, chunks: Iterator[str], vocab: Vocab) -> int:
    n = 0
    with open(path, "wb") as out:
        for chunk in chunks:
            ids = vocab.encode_array(chunk)
            out.write(ids.tobytes())
            n += len(ids)
    return n


DATA_MIN_CHARS = 4096  # shorter documents are never called data
DATA_SHARE = 0.8  # of the non-space characters: digits, commas and hex literal letters
_DATA_CHARS = frozenset("0123456789,xXabcdefABCDEF")


def looks_like_data(doc: str) -> bool:
    """A document that is mostly numeric literals and commas (a generated table), not text of
    any domain: at least DATA_SHARE of its non-space characters are digits, commas or hex
    letters, and a third are digits."""
    if len(doc) < DATA_MIN_CHARS:
        return False
    head = doc[:1 << 16]  # a table is a table from its start: the first 64 K characters decide
    solid = len(head) - sum(head.count(c) for c in " \t\n\r")
    digits = sum(head.count(c) for c in "0123456789")
    return solid > 0 and digits >= solid / 3 and sum(head.count(c) for c in _DATA_CHARS) >= DATA_SHARE * solid


def _stream_documents(spec: CorpusSpec, domain: Domain, src: str, options: dict[str, Any],
                      report: PrepareReport, work: CorpusDir, counts: dict[int, int]) -> tuple[int, _Docs | None]:
    """Pass 1: the domain's documents into work/train.txt, joined by the separator, counting
    characters; for a per-document split, where each document ends and its checksum (the split
    is chosen once every size is known). Returns (characters, the index or None)."""
    sink = _TextSink(work.text("train"), counts)
    docs = _Docs() if spec.split == "hash" else None
    written, data_docs, data_chars = 0, 0, 0
    # '-' (stdin) and 'package:...' are not paths; everything else is
    source = src if src == "-" or src.startswith("package:") else Path(src)
    try:
        for doc in domain.documents(source, spec, options, report):
            if isinstance(doc, str) and looks_like_data(doc):
                if options.get("skip_data"):
                    report.skip("looks like data: mostly numbers and commas (--skip-data)")
                    continue
                data_docs, data_chars = data_docs + 1, data_chars + len(doc)
            size, crc = 0, 0
            for piece in (doc if isinstance(doc, Pieces) else (doc,)):  # Pieces: too big to hold
                if piece:
                    sink.write(piece)
                    size += len(piece)
                    crc = zlib.crc32(piece.encode("utf-8", "surrogatepass"), crc) if docs is not None else 0
            if not size:
                continue
            report.documents += 1
            sink.write(spec.separator)
            written += size + len(spec.separator)
            if docs is not None:
                docs.ends.append(written)
                docs.crcs.append(crc)
    finally:
        sink.close()
    if data_docs:
        report.note(f"{data_docs} document(s), {data_chars:,} characters, look like data rather than text (mostly "
                    f"numbers and commas: generated tables?); prepare again with --skip-data to leave them out")
    return sink.chars, docs


@dataclass
class _Docs:
    """A per-document split's index: where each document (with its separator) ends in the stream."""

    ends: list[int] = field(default_factory=list)
    crcs: list[int] = field(default_factory=list)


SHARE_TOLERANCE = 0.2  # a per-document split's validation share stays within 20% of the asked one


def choose_val(sizes: list[int], crcs: list[int], fraction: float) -> list[bool] | None:
    """Which documents validate. Each document's checksum decides, as it always has (about
    ``fraction`` of the documents), when that comes within 20% of the asked share of the
    characters; otherwise (a few huge documents drew the lot, or none) documents are taken in
    checksum order, a fixed shuffle, while the validation characters stay under the asked share
    plus 20%, until they reach it. None when whole documents cannot come within 20% of it."""
    total, low, high = sum(sizes), 1 - SHARE_TOLERANCE, 1 + SHARE_TOLERANCE
    target = fraction * total
    val = [crc % 10_000 < int(fraction * 10_000) for crc in crcs]
    got = sum(s for s, v in zip(sizes, val, strict=True) if v)
    if 0 < got and low * target <= got <= high * target:
        return val
    val, got = [False] * len(sizes), 0
    for i in sorted(range(len(sizes)), key=lambda i: (crcs[i], i)):
        if got >= target:
            break
        if got + sizes[i] <= high * target:
            val[i], got = True, got + sizes[i]
    return val if 0 < got and got >= low * target else None


def _encode_splits(work: CorpusDir, vocab: Vocab, chars: int, docs: _Docs | None, fraction: float,
                   report: PrepareReport) -> tuple[int, int]:
    """Pass 2: text -> ids in work/train.bin and val.bin, in chunks (bounded memory): whole
    documents to validation for a per-document split (said in the report), else the stream's tail."""
    val = None
    if docs is not None:
        sizes = [e - b for b, e in zip([0, *docs.ends[:-1]], docs.ends, strict=True)]
        val = choose_val(sizes, docs.crcs, fraction)
        if val is None:
            report.note(f"no set of whole documents makes a {fraction:.0%} validation split (the largest is "
                        f"{max(sizes, default=0):,} of {sum(sizes):,} characters): validation is the stream's tail")
        else:
            n_val = sum(v for v in val)
            share = sum(s for s, v in zip(sizes, val, strict=True) if v) / max(1, sum(sizes))
            report.note(f"validation: {n_val:,} of {len(val):,} documents, {share:.1%} of the characters "
                        f"(asked {fraction:.0%})")
    if val is not None:
        n_train, n_val = _route(work, vocab, docs.ends, val)
    else:
        cut = max(1, int(chars * (1 - fraction)))
        n_train = _encode_to(work.ids("train"), _read_chunks(work.text("train"), cut), vocab)
        with open(work.text("train"), encoding="utf-8", newline="") as fh:
            for _ in _read_chunks_from(fh, cut):  # skip the train part, a chunk at a time
                pass
            n_val = _encode_to(work.ids("val"), iter(lambda: fh.read(CHUNK_CHARS), ""), vocab)
    os.unlink(work.text("train"))
    return n_train, n_val


def _route(work: CorpusDir, vocab: Vocab, ends: list[int], val: list[bool]) -> tuple[int, int]:
    """The stream's documents to train.bin or val.bin, in order, a chunk at a time."""
    counts = [0, 0]
    with open(work.text("train"), encoding="utf-8", newline="") as fh, open(work.ids("train"), "wb") as t_out, \
            open(work.ids("val"), "wb") as v_out:
        outs, offset, d = (t_out, v_out), 0, 0
        for chunk in _read_chunks_from(fh):
            parts: tuple[list[str], list[str]] = ([], [])
            i = 0
            while i < len(chunk) and d < len(ends):
                stop = min(len(chunk), ends[d] - offset)
                parts[val[d]].append(chunk[i:stop])
                i = stop
                if offset + i == ends[d]:
                    d += 1
            offset += len(chunk)
            for k in (0, 1):
                if parts[k]:
                    ids = vocab.encode_array("".join(parts[k]))
                    outs[k].write(ids.tobytes())
                    counts[k] += len(ids)
    return counts[0], counts[1]


def _swap_in(work: CorpusDir, out: CorpusDir) -> None:
    """Replace the corpus folder by the finished one; the previous one survives until this point."""
    old = None
    with out.swap_lock(shared=False):  # readers take a generation under the shared side
        if out.path.exists():
            old = out.replaced()
            os.replace(out.path, old)
        os.replace(work.path, out.path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def prepare(spec: CorpusSpec, domain: Domain, src: str, out: CorpusDir,
            options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Prepare corpus ``spec`` from ``src`` into the folder ``out``; returns the metadata written.

    One prepare per corpus at a time (a lock beside the folder); under the lock, temporary
    folders that a killed prepare left are removed first (and reported)."""
    out = CorpusDir(out)
    with out.lock():
        report = PrepareReport()
        for orphan in out.orphans():
            size = remove_tree(orphan)
            report.note(f"removed {orphan.name} ({size / 1e6:.1f} MB), left by an interrupted prepare")
        return _prepare(spec, domain, src, out, {**spec.options, **(options or {})}, report)


def _prepare(spec: CorpusSpec, domain: Domain, src: str, out: CorpusDir, options: dict[str, Any],
             report: PrepareReport) -> dict[str, Any]:
    t0 = time.perf_counter()
    work = CorpusDir(tempfile.mkdtemp(prefix=out.work_prefix, dir=out.path.parent))
    try:
        counts: dict[int, int] = {}
        chars, docs = _stream_documents(spec, domain, src, options, report, work, counts)
        if chars == 0:
            raise GenError(f"no text found in --src {src} for corpus {spec.name!r} "
                           f"(patterns {spec.patterns}; skipped: {report.skipped or 'nothing'}). "
                           f"Check the path and that it holds {', '.join(spec.patterns)} files.")
        vocab = Vocab((chr(c) for c in counts), {chr(c): n for c, n in counts.items()})
        n_train, n_val = _encode_splits(work, vocab, chars, docs, spec.val_fraction, report)
        seconds = time.perf_counter() - t0
        meta = {
            "format": FORMAT, "corpus": spec.name, "domain": spec.domain, "src": str(src),
            "separator": spec.separator, "split": spec.split, "val_fraction": spec.val_fraction,
            "options": options, "vocab_size": len(vocab), "dtype": vocab.dtype.name,
            "train_chars": n_train, "val_chars": n_val, "seconds": round(seconds, 3),
            "mb_per_s": round(report.bytes_in / 1e6 / max(seconds, 1e-9), 2),
            "report": report.to_dict(), "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        vocab.save(work.vocab)
        atomic_write_text(work.meta, json.dumps(meta, indent=2, ensure_ascii=False))
        _swap_in(work, out)
        return meta
    except BaseException:
        shutil.rmtree(work.path, ignore_errors=True)
        raise


class CorpusData:
    """A prepared corpus folder: vocab, metadata and memory-mapped train/val ids."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.folder = CorpusDir(self.path)
        # one generation of the corpus: metadata, vocabulary and both splits are taken together
        # while no prepare can swap the folder (it swaps under the exclusive side of this lock);
        # the mapped splits stay readable after a later swap, so this object never mixes two
        with self.folder.swap_lock(shared=True):
            if not self.folder.meta.is_file():
                raise GenError(f"{self.path} is not a prepared corpus (no meta.json). "
                               f"Run: gen prepare {self.path.name} --src PATH")
            self.meta = json.loads(self.folder.meta.read_text(encoding="utf-8"))
            self._vocab_bytes = self.folder.vocab.read_bytes()
            self.vocab = Vocab.from_dict(json.loads(self._vocab_bytes.decode("utf-8")))
            self._ids = {split: self._map(split) for split in CorpusDir.SPLITS}
        self.name = self.meta["corpus"]
        self.separator = self.meta.get("separator", "\n")
        self._digest: str | None = None

    def _map(self, split: str) -> np.ndarray:
        path = self.folder.ids(split)
        if path.stat().st_size == 0:
            return np.zeros(0, dtype=self.vocab.dtype)
        return np.memmap(path, dtype=self.vocab.dtype, mode="r")

    def ids(self, split: str) -> np.ndarray:
        return self._ids[split]

    @property
    def digest(self) -> str:
        """sha256 over this generation's splits and vocabulary, the key of every cache derived
        from the corpus (the same bytes as the files CorpusDir.digested names)."""
        if self._digest is None:
            h = hashlib.sha256()
            for part in (self._ids["train"], self._ids["val"]):
                h.update(memoryview(np.ascontiguousarray(part)).cast("B"))
                h.update(b"\0")
            h.update(self._vocab_bytes)
            h.update(b"\0")
            self._digest = h.hexdigest()[:20]
        return self._digest

    def text(self, split: str, max_chars: int | None = None) -> str:
        ids = self.ids(split)
        return self.vocab.decode(ids[:max_chars] if max_chars else ids)

    def iter_text(self, split: str, chunk: int = CHUNK_CHARS, max_chars: int | None = None) -> Iterator[str]:
        """A split's text in chunks (each decoded by one numpy table lookup)."""
        ids = self.ids(split)
        if max_chars is not None:
            ids = ids[:max_chars]
        for i in range(0, len(ids), chunk):
            yield self.vocab.decode(ids[i:i + chunk])

    def documents(self, split: str) -> Iterator[str]:
        """The documents of a split, streamed (cut at the corpus separator)."""
        sep, rest = self.separator or "\n", ""  # an empty separator joins nothing: fall back to lines
        for chunk in self.iter_text(split):
            parts = (rest + chunk).split(sep)
            rest = parts.pop()
            yield from (p for p in parts if p)
        if rest:
            yield rest

    def val_windows(self, lengths: list[int], rng: random.Random, split: str = "val") -> list[str]:
        """Windows of real held-out text with the given lengths, starting after a separator."""
        ids = self.ids(split)
        if len(ids) == 0:
            ids, split = self.ids("train"), "train"
        text = self.vocab.decode(ids[: max(4 * sum(lengths), 1 << 20)])
        sep = self.separator or "\n"
        starts = [0] + [m.end() for m in re.finditer(re.escape(sep), text) if m.end() < len(text)]
        out = []
        for n in lengths:
            # windows start at a document (or line) boundary, like a sample starts after the separator
            last = bisect.bisect_right(starts, len(text) - n)
            s = starts[rng.randrange(last)] if last else 0
            out.append(text[s:s + n])
        return out


class StreamBatches:
    """Batches for stateful truncated BPTT.

    The token array is cut into ``world * batch_size`` contiguous streams; this rank owns
    ``batch_size`` of them. Batch ``pos`` of an epoch is the ``pos``-th window of length
    ``seq_len`` in every stream, so the hidden state after batch ``pos`` is the right initial
    state for batch ``pos + 1`` (carried, detached). Position is all the data state there is:
    ``epoch = step // steps_per_epoch`` and ``pos = step % steps_per_epoch``.
    """

    def __init__(self, ids: np.ndarray, batch_size: int, seq_len: int, rank: int = 0, world: int = 1) -> None:
        self.steps_per_epoch = self.check(len(ids), batch_size, seq_len, world)
        stream_len = (len(ids) - 1) // (batch_size * world)
        self.ids, self.seq_len = ids, seq_len
        starts = (np.arange(batch_size) + rank * batch_size) * stream_len
        self._offsets = starts[:, None] + np.arange(seq_len + 1)[None, :]  # (B, T+1)

    @staticmethod
    def check(n_ids: int, batch_size: int, seq_len: int, world: int = 1) -> int:
        """Steps per epoch of ``n_ids`` characters, or a GenError that says how to fix it."""
        n_streams = batch_size * world
        steps = (n_ids - 1) // n_streams // seq_len
        if steps < 1:
            raise GenError(f"the data has {n_ids} characters, too few for {n_streams} streams of "
                           f"{seq_len} (needs {n_streams * seq_len + 1}). Lower --batch-size or --seq-len, "
                           "or use more text.")
        return steps

    def get(self, pos: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets ``(B, T)`` for window ``pos`` of the epoch."""
        import torch  # here, not at the top: reading a prepared corpus (gen eval --against) needs no torch

        idx = self._offsets + (pos % self.steps_per_epoch) * self.seq_len
        chunk = torch.from_numpy(np.asarray(self.ids[idx], dtype=np.int64))  # (B, T+1)
        return chunk[:, :-1], chunk[:, 1:]

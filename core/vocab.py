"""Characters <-> ids over every Unicode character of a corpus, with an unknown-character policy.

Ids are assigned in code-point order, so a vocabulary is a pure function of its character set.
Text containing characters the corpus never had (a priming string, an eval file) still
encodes, by this policy, applied per unseen character:

1. its compatibility decomposition with accents stripped, if that is in the vocabulary
   (``é`` -> ``e``, ``ﬁ`` -> ``fi`` -> first char ``f``; ``“`` -> ``"`` via a small table);
2. otherwise the vocabulary's fallback character: space if present, else the most frequent
   character of the corpus.

``encode`` records every mapping in ``Vocab.mapped`` so callers can tell the user.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable

import numpy as np

# typographic characters whose NFKD form is not their plain ASCII look-alike
_ASCII_LOOKALIKE = {"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-",
                    "\u2026": ".", "\u00a0": " ", "\u2212": "-", "\t": " ", "\r": "\n"}


def code_points(text: str) -> np.ndarray:
    """A string's code points as uint32, per character in numpy; lone surrogates are kept (a
    sample is untrusted text and must never make a check raise)."""
    return np.frombuffer(text.encode("utf-32-le", errors="surrogatepass"), dtype=np.uint32)


def from_code_points(cps: np.ndarray) -> str:
    """The string of these code points (any integer array; read in place when uint32)."""
    return str(np.ascontiguousarray(cps, dtype=np.uint32), "utf-32-le", "surrogatepass")


class Vocab:
    def __init__(self, chars: Iterable[str], counts: dict[str, int] | None = None) -> None:
        self.chars: list[str] = sorted(set(chars))
        if not self.chars:
            raise ValueError("a vocabulary needs at least one character (is the corpus empty?)")
        self.stoi: dict[str, int] = {c: i for i, c in enumerate(self.chars)}
        self.counts = counts or {}
        if " " in self.stoi:
            self.fallback = " "
        elif self.counts:
            self.fallback = max(self.counts, key=self.counts.get)
        else:
            self.fallback = self.chars[0]
        self.mapped: dict[str, str] = {}  # unseen char -> char it was encoded as
        # dense code point -> id table for fast numpy encoding of in-vocabulary text
        self._cps = np.array([ord(c) for c in self.chars], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.chars)

    @property
    def dtype(self) -> np.dtype:
        """Smallest unsigned dtype that holds every id (data files use it)."""
        n = len(self.chars)
        return np.dtype(np.uint8 if n <= 256 else np.uint16 if n <= 65536 else np.uint32)

    def map_unknown(self, ch: str) -> str:
        """The in-vocabulary character an unseen ``ch`` is encoded as (see module docstring)."""
        if ch in self.mapped:
            return self.mapped[ch]
        cand = _ASCII_LOOKALIKE.get(ch)
        if cand is None:
            decomposed = unicodedata.normalize("NFKD", ch)
            stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
            cand = stripped[:1] if stripped else None
        for option in (cand, cand.lower() if cand else None, cand.upper() if cand else None):
            if option and option in self.stoi:
                self.mapped[ch] = option
                return option
        self.mapped[ch] = self.fallback
        return self.fallback

    def encode(self, text: str) -> list[int]:
        stoi = self.stoi
        out = []
        for ch in text:
            i = stoi.get(ch)
            if i is None:
                i = stoi[self.map_unknown(ch)]
            out.append(i)
        return out

    def encode_array(self, text: str) -> np.ndarray:
        """Vectorised encode for large chunks: a dense code point -> id table, one gather per chunk
        (unknown characters, marked -1, go through the policy)."""
        cps = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        lut = self._lut()
        inside = cps < len(lut)
        ids = lut[np.where(inside, cps, 0)]
        bad = (ids < 0) | ~inside
        if bad.any():
            for pos in np.nonzero(bad)[0]:
                ids[pos] = self.stoi[self.map_unknown(chr(cps[pos]))]
        return ids.astype(self.dtype)

    def _lut(self) -> np.ndarray:
        if getattr(self, "_lut_cache", None) is None:
            lut = np.full(int(self._cps.max()) + 1, -1, dtype=np.int32)
            lut[self._cps] = np.arange(len(self._cps), dtype=np.int32)
            self._lut_cache = lut
        return self._lut_cache

    def decode(self, ids: Iterable[int]) -> str:
        if isinstance(ids, np.ndarray):  # megabytes of ids: one table lookup, no Python loop
            # the ids index the table as they are (uint8/16: no int64 copy) and str() reads the
            # gathered code points in place: no per-character Python (evals/BENCHMARKS.md)
            return str(self._cps.astype(np.uint32, copy=False)[ids], "utf-32-le")
        chars = self.chars
        return "".join(chars[int(i)] for i in ids)

    def describe_mapped(self) -> str:
        return ", ".join(f"{k!r}->{v!r}" for k, v in sorted(self.mapped.items()))

    # ---- persistence (plain JSON; also stored inside every checkpoint) ---------------------
    def to_dict(self) -> dict:
        return {"chars": self.chars, "fallback": self.fallback, "counts": [self.counts.get(c, 0) for c in self.chars]}

    @classmethod
    def from_dict(cls, d: dict) -> Vocab:
        counts = dict(zip(d["chars"], d.get("counts") or [0] * len(d["chars"]), strict=False))
        v = cls(d["chars"], counts)
        v.fallback = d.get("fallback", v.fallback)
        return v

    def save(self, path) -> None:
        from gen.core.atomic import atomic_write_text

        atomic_write_text(path, json.dumps(self.to_dict(), ensure_ascii=False))

    @classmethod
    def load(cls, path) -> Vocab:
        with open(path, encoding="utf-8") as f:
            return cls.from_dict(json.load(f))

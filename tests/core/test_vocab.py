"""Vocabulary: every Unicode character, round trips, and the unseen-character policy."""

from __future__ import annotations

import numpy as np
import pytest

from gen.core.vocab import Vocab


def test_round_trip_unicode():
    text = "naïve café — 東京 🙂 \t tab"
    v = Vocab(text)
    assert v.decode(v.encode(text)) == text
    assert list(v.encode_array(text)) == v.encode(text)
    assert v.mapped == {}


def test_unseen_characters_follow_the_policy():
    v = Vocab("abcdefghijklmnopqrstuvwxyz \"'-")
    ids = v.encode("é“x”—☃")
    assert v.decode(ids) == 'e"x"- '
    assert v.mapped == {"é": "e", "“": '"', "”": '"', "—": "-", "☃": " "}
    assert v.decode(v.encode_array("ñ☃")) == "n "


def test_fallback_without_space_is_most_frequent():
    v = Vocab("abc", counts={"a": 1, "b": 9, "c": 2})
    assert v.decode(v.encode("☃")) == "b"


def test_uppercase_unseen_maps_to_case_variant():
    v = Vocab("abc ")
    assert v.decode(v.encode("Á")) == "a"


def test_json_round_trip(tmp_path):
    v = Vocab("hello wörld", counts={"l": 3})
    v.save(tmp_path / "v.json")
    w = Vocab.load(tmp_path / "v.json")
    assert w.chars == v.chars and w.fallback == v.fallback and w.counts["l"] == 3


@pytest.mark.parametrize("n,dtype", [(200, np.uint8), (300, np.uint16), (70000, np.uint32)])
def test_dtype_fits_vocabulary(n, dtype):
    v = Vocab(chr(0x100 + i) for i in range(n))
    assert v.dtype == dtype


def test_empty_vocabulary_is_an_error():
    with pytest.raises(ValueError, match="at least one character"):
        Vocab("")

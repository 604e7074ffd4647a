"""Corpus statistics built once and cached beside the corpus as JSON (core/statscache.py)."""

from __future__ import annotations

import json

from gen.core import statscache
from gen.core.corpora import load_corpus
from gen.core.domain import EvalContext
from gen.core.registry import get_domain


def _stats_files(ws, corpus):
    return sorted((ws / "corpora" / corpus).glob("stats-*.json"))


def test_stats_are_built_once_then_loaded(ws, names_file, run, monkeypatch):
    run("prepare", "nm", "--domain", "names", "--src", str(names_file))
    data = load_corpus("nm", ws)[1]
    domain = get_domain("names")
    built = EvalContext(domain, data).stats
    (path,) = _stats_files(ws, "nm")
    assert json.loads(path.read_text())["domain"] == "names"

    def refuse(*_a):
        raise AssertionError("rebuilt although cached")

    monkeypatch.setattr(type(domain), "corpus_stats", refuse)
    loaded = EvalContext(domain, data).stats
    assert loaded == built and isinstance(loaded["names"], set)


def test_a_changed_corpus_gets_fresh_stats(ws, names_file, tmp_path, run):
    run("prepare", "nm", "--domain", "names", "--src", str(names_file))
    domain = get_domain("names")
    first = EvalContext(domain, load_corpus("nm", ws)[1]).stats
    other = tmp_path / "other.txt"
    other.write_text("Zed\nYara\nXena\n" * 20, encoding="utf-8")
    run("prepare", "nm", "--domain", "names", "--src", str(other))
    again = EvalContext(domain, load_corpus("nm", ws)[1]).stats
    assert again["names"] and again["names"] <= {"Zed", "Yara", "Xena"} and not again["names"] & first["names"]
    assert len(_stats_files(ws, "nm")) == 1  # the stale file is gone


def test_prose_dataclass_round_trips_and_a_tampered_cache_is_rebuilt(ws, tmp_path, run):
    src = tmp_path / "play.txt"
    src.write_text("KING:\nWe go now, my lord.\n\nQUEEN:\nAnd we shall stay.\n\n" * 200, encoding="utf-8")
    run("prepare", "pl", "--domain", "prose", "--src", str(src))
    data = load_corpus("pl", ws)[1]
    domain = get_domain("prose")
    built = EvalContext(domain, data).stats
    assert EvalContext(domain, data).stats == built  # from the cache: the same dataclass
    (path,) = _stats_files(ws, "pl")
    doc = json.loads(path.read_text())
    doc["stats"]["__dataclass__"] = "subprocess:Popen"  # a cache must never build anything else
    path.write_text(json.dumps(doc))
    assert EvalContext(domain, data).stats == built


def test_encode_decode_values():
    v = {"a": (1, "x"), "s": {"b", "a"}, "f": frozenset({3}), "l": [None, True, 2.5]}
    assert statscache.decode(statscache.encode(v), "gen.plugins") == v
    try:
        statscache.encode({1: "not a string key"})
    except statscache.Unsupported:
        pass
    else:
        raise AssertionError("a non-string key must be refused")

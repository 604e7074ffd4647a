"""Samples in, records out: lone surrogates never crash a write, and a samples folder follows
the rules of `gen prepare` (no symlink out of it, binary files skipped, every skip said)."""

from __future__ import annotations

import json


def test_a_lone_surrogate_is_recorded_not_a_crash(run, ws, tmp_path):
    samples = tmp_path / "s.jsonl"
    samples.write_text('{"text": "bad \\ud800 char (x"}\n{"text": "fine (y)"}\n')
    out = run("eval", "prose", str(samples), "--json", "--out", str(tmp_path / "e")).output
    assert json.loads(out.split("\nwrote")[0])["n"] == 2
    records = [json.loads(line) for line in (tmp_path / "e" / "records.jsonl").read_text().splitlines()]
    assert len(records) == 2 and records[0]["length"] == len("bad \ud800 char (x")
    json.loads((tmp_path / "e" / "summary.json").read_text())  # valid JSON, written at the end


def test_samples_folder_follows_the_prepare_rules(run, ws, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-LINE\n")
    folder = tmp_path / "samples"
    folder.mkdir()
    (folder / "a.txt").write_text("int main(void) { return 0; }\n")
    (folder / "b.bin").write_bytes(b"\x7fELF\x02\x01\x01" + bytes(100))
    (folder / "latin1.txt").write_bytes("caf\xe9 {\n".encode("latin-1"))  # bad bytes are data
    (folder / "escape.txt").symlink_to(secret)
    out = run("eval", "c", str(folder), "--json", "--out", str(tmp_path / "e")).output
    assert "skipped 1 file(s)" in out and "symlink pointing outside --src" in out and "ELF" in out
    assert json.loads(out.split("\n", 2)[-1].split("\nwrote")[0])["n"] == 2
    assert "TOP-SECRET" not in (tmp_path / "e" / "records.jsonl").read_text()

"""Your own text under its own name, and the well-known corpora downloaded, verified and resumed
(against a local HTTP server: the tests need no network)."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
from pathlib import Path

import pytest
from conftest import make_names

from gen.core.api import CorpusSpec, hookimpl
from gen.core.plugins import register_plugin, unregister_plugin
from gen.core.registry import infer_domain

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--layers", "1", "--hidden", "32", "--embd", "8", "--batch-size", "4", "--seq-len", "32",
         "--eval-every", "20", "--quiet", "--device", "cpu"]

LYRICS = "\n".join(f"Verse {i}: we sing (of the {['sea', 'sky', 'road'][i % 3]}) and \"call\" your name" for i in
                   range(400)) + "\n"


def test_my_own_text_end_to_end(run, ws, tmp_path):
    book = tmp_path / "lyrics.txt"
    book.write_text(LYRICS)
    out = run("prepare", "mybook", "--src", str(book)).output
    assert "new corpus 'mybook': domain text" in out and "prepared mybook (text)" in out
    listing = run("corpora").output
    row = next(line for line in listing.splitlines() if line.startswith("mybook *"))
    assert "text" in row and "prepared" in row and str(book) in row and "M chars" in row
    manifest = (ws / "manifests" / "mybook.toml").read_text()
    assert 'domain = "text"' in manifest and str(book) in manifest
    run("train", "mybook", *SMALL, "--max-time", "5s")
    samples = tmp_path / "s.txt"
    run("sample", "mybook", "-n", "1", "-l", "300", "--seed", "1", "--out", str(samples))
    out = run("eval", "text", str(samples), "--against", "mybook", "--json", "--out", str(tmp_path / "e")).output
    summary = json.loads(out.split("\nwrote")[0])
    assert summary["against"] == "mybook" and summary["metrics"]["known_words"]["value"] is not None
    # real held-out lyrics use known words (all but the verse numbers), their damaged copy fewer
    assert summary["baseline"]["known_words"] > 0.85 > summary["corrupted"]["known_words"]


def test_built_in_corpora_take_only_their_own_text(run, ws, tmp_path):
    book = tmp_path / "mybook.txt"
    book.write_text(LYRICS)
    for name in ("shakespeare", "prose"):  # the corpus, or its domain meaning the default corpus
        out = run("prepare", name, "--src", str(book), code=1).output
        assert "is a built-in corpus" in out and f"gen prepare mybook --domain prose --src {book}" in out
    assert not (ws / "corpora" / "shakespeare").exists()
    out = run("prepare", "shakespeare", "--domain", "c", "--src", str(book), code=1).output
    assert "built-in prose corpus" in out


def test_reprepare_remove_and_rules(run, ws, tmp_path):
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text(LYRICS)
    second.write_text(LYRICS.replace("sing", "hum"))
    run("prepare", "song", "--src", str(first))
    out = run("prepare", "song", "--src", str(second)).output
    assert f"re-preparing 'song' from a new source: {second} (was {first})" in out
    assert "prepared song" in run("prepare", "song").output  # again from its saved source
    out = run("corpora", "--remove", "song").output
    assert "deleted" in out and "prepared data" in out and "its manifest" in out
    assert not (ws / "corpora" / "song").exists() and not (ws / "manifests" / "song.toml").exists()
    assert "is a built-in corpus" in run("corpora", "--remove", "names", code=1).output
    assert "not a valid name" in run("prepare", "../up", "--src", str(first), code=1).output
    assert "unknown domain 'klingon'" in run("prepare", "x", "--domain", "klingon", "--src", str(first),
                                             code=1).output


def test_domain_inference(tmp_path):
    c = tmp_path / "proj"
    c.mkdir()
    for i in range(3):
        (c / f"m{i}.c").write_text("int f(void) { return 0; }\n")
    (c / "README").write_text("hello\n")
    tex = tmp_path / "paper.tex"
    tex.write_text("\\documentclass{article}\n")
    wiki = tmp_path / "dump.xml"
    wiki.write_text('<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/">\n<page><title>A</title>')
    names = tmp_path / "people.txt"
    names.write_text("\n".join(make_names(100)) + "\n")
    prose = tmp_path / "story.txt"
    prose.write_text("It was a dark and stormy night; the rain fell in torrents, except at occasional "
                     "intervals, when it was checked by a violent gust of wind.\n" * 30)
    assert [infer_domain(str(p))[0] for p in (c, tex, wiki, names, prose)] == ["c", "latex", "wiki", "names", "text"]
    assert infer_domain("-")[0] == "text"


def test_no_product_file_points_at_the_development_corpora():
    product = [*ROOT.glob("core/**/*.py"), *ROOT.glob("plugins/**/*.py"), *ROOT.glob("evals/**/*.py"),
               *ROOT.glob("corpora/*.toml"), ROOT / "README.md", ROOT / "pyproject.toml"]
    bad = [str(p.relative_to(ROOT)) for p in product if "../shared" in p.read_text() or "{shared}" in p.read_text()
           or "GEN_SHARED_CORPORA" in p.read_text()]
    assert not bad, bad


# ---- downloads, against a local HTTP server ---------------------------------------------------

PAYLOAD = ("\n".join(make_names(3000, seed=5)) + "\n").encode()


class _Server(http.server.BaseHTTPRequestHandler):
    """Serves PAYLOAD with Range support; ``drop_after`` bytes then a dropped connection once."""

    requests: list[str] = []
    drop_after: int | None = None

    def do_GET(self):  # noqa: N802 - the http.server API
        type(self).requests.append(self.headers.get("Range") or "full")
        start = int(self.headers["Range"].split("=")[1].rstrip("-")) if self.headers.get("Range") else 0
        body = PAYLOAD[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if type(self).drop_after is not None:
            cut, type(self).drop_after = type(self).drop_after, None
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.connection.shutdown(2)  # the connection drops half-way
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    _Server.requests, _Server.drop_after = [], None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Server)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _corpus_plugin(url: str, sha256: str):
    class Plugin:
        @hookimpl
        def register_corpora(self, register):
            register(CorpusSpec(name="remote", domain="names", patterns=["*.txt"], split="hash",
                                download={"url": f"{url}/people.txt", "sha256": sha256, "file": "people.txt"}))

    return Plugin()


def test_download_verified_cached_and_resumed(run, ws, server):
    good = hashlib.sha256(PAYLOAD).hexdigest()
    register_plugin(_corpus_plugin(server, good), name="remote-corpus")
    try:
        _Server.drop_after = len(PAYLOAD) // 2
        out = run("prepare", "remote", code=1).output
        assert "stopped at" in out and "run the same command again to resume" in out
        part = ws / "downloads" / "remote" / "people.txt.part"
        assert part.is_file() and part.stat().st_size == len(PAYLOAD) // 2
        out = run("prepare", "remote").output  # resumes with a Range request, verifies, prepares
        assert "resuming at" in out and "prepared remote (names)" in out and "3,000 documents" in out
        assert _Server.requests == ["full", f"bytes={len(PAYLOAD) // 2}-"]
        run("prepare", "remote")  # the verified copy is cached: no request
        assert len(_Server.requests) == 2
        # a built-in corpus with a pinned download accepts that file as --src too
        assert "prepared remote" in run("prepare", "remote", "--src",
                                        str(ws / "downloads" / "remote" / "people.txt")).output
    finally:
        unregister_plugin("remote-corpus")


def test_download_with_the_wrong_checksum_is_refused(run, ws, server):
    register_plugin(_corpus_plugin(server, "0" * 64), name="remote-corpus")
    try:
        out = run("prepare", "remote", code=1).output
        assert "is not the pinned file" in out and "expected 0000" in out
        assert not list((ws / "downloads" / "remote").glob("people.txt*"))  # nothing unverified kept
        assert not (ws / "corpora" / "remote").exists()
    finally:
        unregister_plugin("remote-corpus")


def test_no_network_says_what_to_download(run, ws):
    register_plugin(_corpus_plugin("http://127.0.0.1:9", "ab" * 32), name="remote-corpus")  # nothing listens
    try:
        out = run("prepare", "remote", code=1).output
        assert "Without a network, download http://127.0.0.1:9/people.txt" in out
        assert "gen prepare remote --src PATH/people.txt" in out
    finally:
        unregister_plugin("remote-corpus")

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
    chunked = False  # no Content-Length: the body ends when the connection closes

    def do_GET(self):  # noqa: N802 - the http.server API
        type(self).requests.append(self.headers.get("Range") or "full")
        start = int(self.headers["Range"].split("=")[1].rstrip("-")) if self.headers.get("Range") else 0
        if start >= len(PAYLOAD) and start:
            self.send_response(416)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = PAYLOAD[start:]
        self.send_response(206 if start else 200)
        if type(self).chunked:
            self.send_header("Connection", "close")
            self.close_connection = True
        else:
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
    _Server.requests, _Server.drop_after, _Server.chunked = [], None, False
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


def _user_manifest(ws: Path, name: str, url: str, file: str, sha256: str | None = None) -> None:
    (ws / "manifests").mkdir(parents=True, exist_ok=True)
    pin = f'sha256 = "{sha256}"\n' if sha256 else ""
    (ws / "manifests" / f"{name}.toml").write_text(
        f'name = "{name}"\ndomain = "names"\n[download]\nurl = "{url}"\nfile = "{file}"\n{pin}')


@pytest.mark.parametrize("file", ["OUTSIDE", "../../escaped.txt", "sub/dir.txt"])
def test_a_manifest_cannot_write_outside_the_workspace(run, ws, server, tmp_path, file):
    outside = tmp_path / "outside.txt"
    file = str(outside) if file == "OUTSIDE" else file
    _user_manifest(ws, "x", f"{server}/a.txt", file, hashlib.sha256(PAYLOAD).hexdigest())
    out = run("prepare", "x", code=1).output
    assert "download file name" in out and "not a valid name" in out
    assert not outside.exists() and not (tmp_path / "escaped.txt").exists() and _Server.requests == []


def test_a_download_without_content_length_and_a_stale_part(run, ws, server):
    good = hashlib.sha256(PAYLOAD).hexdigest()
    _user_manifest(ws, "ch", f"{server}/people.txt", "people.txt", good)
    _Server.chunked = True
    assert "prepared ch (names)" in run("prepare", "ch").output
    folder = ws / "downloads" / "ch"
    (folder / "people.txt").unlink()
    (folder / "people.txt.part").write_bytes(PAYLOAD + b"more than the file has")  # longer than the file
    out = run("prepare", "ch").output  # HTTP 416 for the range: the part is dropped, the file fetched anew
    assert "prepared ch (names)" in out and _Server.requests[-2:] == [f"bytes={len(PAYLOAD) + 22}-", "full"]


def test_an_unpinned_download_never_keeps_an_unverified_part(run, ws, server):
    _user_manifest(ws, "up", f"{server}/people.txt", "people.txt")
    folder = ws / "downloads" / "up"
    folder.mkdir(parents=True)
    (folder / "people.txt.part").write_bytes(b"EVIL\n")
    out = run("prepare", "up").output
    assert _Server.requests == ["full"] and "is now pinned beside it" in out
    assert (folder / "people.txt").read_bytes() == PAYLOAD  # EVIL never reached the corpus
    meta = json.loads((ws / "corpora" / "up" / "meta.json").read_text())
    assert meta["train_chars"] + meta["val_chars"] == len(PAYLOAD.decode())
    pinned = (folder / "people.txt.sha256").read_text().strip()
    assert pinned == hashlib.sha256(PAYLOAD).hexdigest()
    (folder / "people.txt").write_bytes(b"changed\n")  # a cached file that changed is fetched again
    run("prepare", "up")
    assert _Server.requests == ["full", "full"] and (folder / "people.txt").read_bytes() == PAYLOAD


@pytest.mark.parametrize("text, why", [
    ('name = "n"\ndomain = ["a"]\n', "domain = ['a'] must be a string"),
    ('name = "../x"\ndomain = "names"\n', "is not a valid name"),
    ('name = "n"\ndomain = "names"\nval_fraction = true\n', "val_fraction = True must be a number"),
    ('name = "n"\ndomain = "names"\ncolour = "red"\n', "unknown keys ['colour']"),
    ('name = "other"\ndomain = "names"\n', "its name 'other' is not its file's ('n')"),
    ('name = "n"\ndomain = "names"\n[download]\nurl = "http://x/a"\nfile = "/etc/passwd"\n', "not a valid name"),
])
def test_a_broken_manifest_is_named_and_skipped(run, ws, names_file, text, why):
    run("prepare", "good", "--domain", "names", "--src", str(names_file))
    (ws / "manifests" / "n.toml").write_text(text)
    result = run("corpora")  # every corpus command still works
    assert "good *" in result.output and why in result.output and "n.toml" in result.output
    out = run("prepare", "n", "--src", str(names_file), code=1).output  # never overwritten silently
    assert why in out and "Fix or delete" in out
    assert (ws / "manifests" / "n.toml").read_text() == text


def test_a_manifest_named_after_a_domain_does_not_take_it_over(run, ws, names_file):
    run("prepare", "good", "--domain", "names", "--src", str(names_file))
    (ws / "manifests" / "prose.toml").write_text((ws / "manifests" / "good.toml").read_text()
                                                 .replace('name = "good"', 'name = "prose"'))
    out = run("corpora").output
    assert "'prose' is the name of a built-in domain" in out
    assert "a built-in" in run("prepare", "prose", "--src", str(names_file), code=1).output

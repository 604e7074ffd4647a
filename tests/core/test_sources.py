"""Reading --src: deterministic walks, skips counted, archives, stdin, flat prepare output."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

from gen.core.domain import PrepareReport
from gen.core.sources import iter_sources


def _tree(root: Path) -> Path:
    (root / "b").mkdir(parents=True)
    (root / "a.txt").write_text("alpha")
    (root / "b" / "c.txt").write_text("gamma")
    (root / "b" / "bin.txt").write_bytes(b"\x00\x01binary")
    (root / "b" / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    (root / "skip.md").write_text("not a txt")
    outside = root.parent / "secret.txt"
    outside.write_text("outside the tree")
    os.symlink(outside, root / "b" / "link.txt")
    return root


def test_walk_is_sorted_and_counts_every_skip(tmp_path):
    root = _tree(tmp_path / "src")
    report = PrepareReport()
    got = list(iter_sources(root, ["*.txt"], report))
    assert got == [("a.txt", "alpha"), ("b/c.txt", "gamma")]
    assert report.skipped == {"binary (NUL byte)": 1, "not valid UTF-8": 1, "symlink pointing outside --src": 1,
                              "not matching the corpus file patterns": 1}
    assert report.files == 2 and report.bytes_in == 10


def test_size_limit(tmp_path):
    root = _tree(tmp_path / "src")
    report = PrepareReport()
    assert list(iter_sources(root, ["*.txt"], report, max_bytes=4)) == []
    assert report.skipped["larger than 4 bytes"] == 3  # alpha, gamma and the binary


def test_tar_archive(tmp_path):
    root = _tree(tmp_path / "src")
    archive = tmp_path / "src.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root, arcname="src")
    report = PrepareReport()
    got = [text for _, text in iter_sources(archive, ["*.txt"], report)]
    assert got == ["alpha", "gamma"] and report.skipped["symlink (not followed)"] == 1


def test_zip_archive_follows_the_same_rules(tmp_path):
    import zipfile

    archive = tmp_path / "src.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("src/b/gamma.txt", "gamma")
        zf.writestr("src/a/alpha.txt", "alpha")
        zf.writestr("src/notes.md", "not matching")
        zf.writestr("src/bin.txt", b"\x7fELF\x02\x01")
        link = zipfile.ZipInfo("src/link.txt")
        link.external_attr = (0o120777 << 16)  # a symlink member
        zf.writestr(link, "/etc/shadow")
    report = PrepareReport()
    got = [text for _, text in iter_sources(archive, ["*.txt"], report)]
    assert got == ["alpha", "gamma"]
    assert report.skipped == {"symlink (not followed)": 1, "not matching the corpus file patterns": 1,
                              "binary (an ELF executable)": 1}


def test_prepare_from_stdin(ws, run):
    out = run("prepare", "people", "--domain", "names", "--src", "-", input="Ada\nBob\nCy\n" * 50).output
    assert "150 documents" in out
    # a built-in corpus pinned to its own file cannot be checked against stdin: refused with the fix
    out = run("prepare", "names", "--src", "-", input="Ada\n", code=1).output
    assert "gen prepare MYNAME --domain names" in out

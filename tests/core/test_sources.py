"""Reading --src: deterministic walks, skips counted, archives, stdin, flat prepare output."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest

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


def _peak_rss_mb(code: str) -> float:
    """Peak RSS growth (MB) of a fresh Python process running ``code`` after its imports."""
    import subprocess
    import sys

    prog = ("import resource, gen.core.sources as S\n"
            "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n" + code +
            "\nprint((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024)")
    out = subprocess.run([sys.executable, "-c", prog], capture_output=True, text=True, check=True, timeout=300)
    return float(out.stdout.strip().splitlines()[-1])


def test_archive_members_are_never_inflated_whole_when_refused(tmp_path):
    import zipfile

    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("zeros.txt", "w") as fh:  # 200 MB of zeros: binary, under the size cap
            block = b"\0" * (1 << 20)
            for _ in range(200):
                fh.write(block)
        with zf.open("big.txt", "w", force_zip64=True) as fh:  # 300 MB of text: over the cap
            block = b"a" * (1 << 20)
            for _ in range(300):
                fh.write(block)
        zf.writestr("ok.txt", "fine")
    grew = _peak_rss_mb(f"r = S.PrepareReport(); got = list(S.iter_sources({str(archive)!r}, ['*.txt'], r))\n"
                        "assert [t for _, t in got] == ['fine'], got\n"
                        "assert r.skipped == {'binary (NUL byte)': 1, f'larger than {S.MAX_MEMBER_BYTES} bytes': 1}")
    assert grew < 100, f"{grew:.0f} MB"


@pytest.mark.parametrize("kind", ["tar.gz", "zip"])
def test_a_damaged_archive_is_one_line(tmp_path, run, ws, kind):
    root = _tree(tmp_path / "src")
    archive = tmp_path / f"src.{kind}"
    if kind == "zip":
        import zipfile

        with zipfile.ZipFile(archive, "w") as zf:
            zf.writestr("src/a.txt", "alpha " * 5000)
        data = archive.read_bytes()
        archive.write_bytes(data[:40] + b"\xff" * 60 + data[100:])  # a damaged member
    else:
        with tarfile.open(archive, "w:gz") as tar:
            for i in range(30):
                info = tarfile.TarInfo(f"src/f{i}.txt")
                body = (f"file {i} " * 4000).encode()
                info.size = len(body)
                import io

                tar.addfile(info, io.BytesIO(body))
        archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])  # truncated
    out = run("prepare", "mine", "--domain", "text", "--src", str(archive), code=1).output
    assert "is damaged or truncated" in out and "Traceback" not in out and "Aborted" not in out
    assert root.is_dir()


def test_an_unsorted_tar_is_read_in_one_pass(tmp_path, monkeypatch):
    import io

    from gen.core import sources

    archive = tmp_path / "u.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name in ("b.txt", "a.txt", "c.txt"):
            info = tarfile.TarInfo(name)
            info.size = len(name)
            tar.addfile(info, io.BytesIO(name.encode()))
    report = PrepareReport()  # small: held in memory and handed on sorted by name
    assert [t for _, t in iter_sources(archive, ["*.txt"], report)] == ["a.txt", "b.txt", "c.txt"]
    assert not report.notes
    monkeypatch.setattr(sources, "SORT_BUDGET", 5)  # more than is held: its stored order, said
    report = PrepareReport()
    assert [t for _, t in iter_sources(archive, ["*.txt"], report)] == ["b.txt", "a.txt", "c.txt"]
    assert "not sorted by name" in report.notes[0]


def test_a_per_document_split_holds_its_share_of_the_characters(tmp_path):
    """Documents go to validation whole and deterministically, and validation gets the asked
    share of the characters within 20%, whatever the sizes: a data file bigger than the rest,
    which the checksum rule sends to validation, does not become most of the split."""
    import shutil
    import zlib

    from gen.core.data import CorpusData, choose_val, prepare
    from gen.core.domain import CorpusSpec, Domain

    root = tmp_path / "src"
    root.mkdir()
    for i in range(60):
        (root / f"f{i:02}.c").write_text(f"int f{i}(void) {{ return {i}; }}\n" * 40)
    rest = sum(p.stat().st_size for p in root.iterdir())
    table = next(t for k in range(10_000) if zlib.crc32((t := f"/* {k} */\n" + "0x1f, 0x2e,\n" * 20_000)
                                                           .encode()) % 10_000 < 1_000)
    (root / "table.c").write_text(table)  # the checksum rule alone would put it, and most characters, in validation
    assert len(table) > rest
    spec = CorpusSpec(name="tiny", domain="c", split="hash", val_fraction=0.1, patterns=["*.c"])
    splits = []
    for _ in range(2):  # the same split every time
        shutil.rmtree(tmp_path / "corpus", ignore_errors=True)
        prepare(spec, Domain(), str(root), tmp_path / "corpus")
        data = CorpusData(tmp_path / "corpus")
        n_val, n_train = len(data.ids("val")), len(data.ids("train"))
        assert 0.08 <= n_val / (n_val + n_train) <= 0.12, n_val / (n_val + n_train)
        assert "validation:" in " ".join(data.meta["report"]["notes"])
        splits.append(bytes(data.ids("val")))
    assert splits[0] == splits[1]
    # the rule: the checksum rule kept when it lands within 20%, balanced when not, None for one document
    assert choose_val([100] * 10, [0, 5000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 9000], 0.1) == \
        [True] + [False] * 9
    assert choose_val([5000], [0], 0.1) is None


def test_documents_that_look_like_data_are_flagged_and_can_be_left_out(run, ws, tmp_path):
    from gen.core.data import looks_like_data

    root = tmp_path / "proj"
    root.mkdir()
    for i in range(20):
        (root / f"f{i}.c").write_text(f"int f{i}(int a) {{\n\treturn a * {i} + 0x1f;\n}}\n" * 60)
    (root / "table_inc.h").write_text("static const int t[] = {\n" + "0,505,0,0x1f,506,\n" * 3000 + "};\n")
    out = run("prepare", "proj", "--src", str(root)).output
    assert "1 document(s)" in out and "look like data" in out and "--skip-data" in out
    out = run("prepare", "proj", "--src", str(root), "--skip-data").output
    assert "skipped 1: looks like data" in out and "20 documents" in out
    assert "skip_data = true" in (ws / "manifests" / "proj.toml").read_text()  # remembered for the next prepare
    assert not looks_like_data("The year 1999 had 365 days, 52 weeks and a few more. " * 200)

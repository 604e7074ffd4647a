"""Shared fixtures: an isolated workspace and tiny corpora written by the tests themselves."""

from __future__ import annotations

import itertools
import os
import random
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from gen.core.cli import cli

ONSETS = ["b", "d", "k", "l", "m", "n", "r", "s", "t", "v", "z", "ch", "th"]
VOWELS = ["a", "e", "i", "o", "u", "ia", "ee"]
CODAS = ["", "n", "l", "r", "s", "th"]


def make_names(n: int = 400, seed: int = 0) -> list[str]:
    """Synthetic names from syllables: a tiny, license-free fixture."""
    rng = random.Random(seed)
    sylls = ["".join(p) for p in itertools.product(ONSETS, VOWELS, CODAS)]
    out = set()
    while len(out) < n:
        out.add("".join(rng.choice(sylls) for _ in range(rng.randint(1, 3))).capitalize())
    return sorted(out)


@pytest.fixture
def ws(tmp_path: Path, monkeypatch) -> Path:
    path = tmp_path / "ws"
    monkeypatch.setenv("GEN_HOME", str(path))
    return path


@pytest.fixture
def names_file(tmp_path: Path) -> Path:
    path = tmp_path / "names.txt"
    path.write_text("\n".join(make_names()) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def run():
    """Invoke the CLI in-process; fails the test with the output when the exit code differs."""
    runner = CliRunner()

    def _run(*args: str, code: int = 0, input: str | None = None):
        result = runner.invoke(cli, list(args), input=input, catch_exceptions=False)
        assert result.exit_code == code, f"gen {' '.join(args)} -> {result.exit_code}\n{result.output}"
        return result

    return _run


def shared_corpora_dir() -> Path | None:
    """The development corpora, ../shared/corpora beside the project root (CI has them too; a
    user's machine does not, and the product never looks there). $GEN_SHARED_CORPORA overrides."""
    if os.environ.get("GEN_SHARED_CORPORA"):
        return Path(os.environ["GEN_SHARED_CORPORA"])
    path = Path(__file__).resolve().parents[2] / "shared" / "corpora"
    return path if path.is_dir() else None


@pytest.fixture
def shared() -> Path:
    path = shared_corpora_dir()
    if path is None:
        pytest.skip("../shared/corpora is not present")
    return path


# the system Chromium the browser tests drive (headless, or through Playwright's executable_path)
CHROMIUM = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")

TINY = ["--layers", "1", "--hidden", "32", "--embd", "8", "--batch-size", "4", "--seq-len", "16",
        "--eval-every", "10", "--quiet", "--device", "cpu"]


def pytest_configure(config) -> None:
    """Training tests run in fp32 on every CPU (the same losses on any machine, and no probe per
    test); tests/core/test_precision.py unsets this to exercise the real probe."""
    os.environ.setdefault("GEN_PRECISION_PROBE", "fp32")

"""Fill the folder the GPU check carries to a lent GPU machine (developers only, not in the wheel).

The device tool's machines hold python 3.12 with a CUDA torch and most of gen's dependencies but
reach no package registry (the device tool's KINDS.md lists what they hold). This downloads here,
for python 3.12 manylinux x86-64, the wheels of the dependencies they lack (packages published
only as source are built here into pure-Python wheels), and copies tiny Shakespeare beside
them, so evals/dev/gpucheck.py can install gen and train offline there::

    python evals/dev/gpu_wheels.py                 # -> .whl/ (git-ignored), then carry it
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# gen's dependencies (pyproject.toml) that the GPU image does not hold
MISSING = ("pylatexenc>=2.10", "tree-sitter>=0.25", "tree-sitter-c>=0.24", "mwparserfromhell>=0.6",
           "defusedxml>=0.7", "names>=0.3")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64",
             "manylinux_2_5_x86_64")
BUILD = ("setuptools>=74.1",)  # builds gen from the tree there (pyproject's ext-modules need 74.1)
CORPUS = ROOT.parent / "shared" / "corpora" / "prose" / "tinyshakespeare.txt"
CORPUS_NAME = "tinyshakespeare.txt"


def download(spec: str, out: Path) -> str:
    """A python-3.12 wheel of ``spec`` in ``out``: the registry's binary one, else built here
    from source (only pure-Python packages build to a wheel that runs there)."""
    pip = [sys.executable, "-m", "pip"]
    binary = [*pip, "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
              "--implementation", "cp", *[f"--platform={p}" for p in PLATFORMS], "-d", str(out), spec]
    if subprocess.run(binary, capture_output=True, text=True).returncode == 0:
        return "downloaded"
    built = subprocess.run([*pip, "wheel", "-q", "--no-deps", "-w", str(out), spec], capture_output=True, text=True)
    if built.returncode != 0:
        raise SystemExit(f"{spec}: no python-3.12 wheel and no pure build: {built.stderr.strip()[-300:]}")
    return "built (pure Python)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / ".whl", help="the folder to fill (carried as is)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for spec in MISSING:
        print(f"{spec}: {download(spec, args.out)}")
    (args.out / "build").mkdir(exist_ok=True)
    for spec in BUILD:
        print(f"{spec}: {download(spec, args.out / 'build')} (build/: used to build gen, not installed with it)")
    if CORPUS.is_file():
        shutil.copyfile(CORPUS, args.out / CORPUS_NAME)
        print(f"{CORPUS_NAME}: copied (the 3-minute training's corpus)")
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file()) / 1e6
    print(f"{args.out}: {size:.1f} MB (the device tool carries at most 64 MB with the tree)")


if __name__ == "__main__":
    main()

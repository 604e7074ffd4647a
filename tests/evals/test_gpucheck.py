"""The GPU check's dry run (issue 31): every step that needs no CUDA runs here, offline, so the
script a lent GPU will run cannot rot: installing gen and a wheel folder into a target folder,
the environment, preparing the corpus, the JSON and the table, and each CUDA step's skip."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import shared_corpora_dir

ROOT = Path(__file__).resolve().parents[2]


def test_the_gpu_check_dry_run(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    probe = tmp_path / "probe"  # a tiny pure wheel, built here offline, stands for the carried ones
    (probe / "genprobe").mkdir(parents=True)
    (probe / "genprobe" / "__init__.py").write_text("VALUE = 1\n")
    (probe / "pyproject.toml").write_text('[build-system]\nrequires = ["setuptools"]\n'
                                          'build-backend = "setuptools.build_meta"\n'
                                          '[project]\nname = "genprobe"\nversion = "0.1"\n')
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "-w", str(wheels), str(probe)], check=True, capture_output=True, timeout=300)
    corpus = shared_corpora_dir()
    if corpus is not None:
        shutil.copyfile(corpus / "prose" / "tinyshakespeare.txt", wheels / "tinyshakespeare.txt")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(ROOT / "evals" / "dev" / "gpucheck.py"), "--dry-run", "--out", str(out),
                           "--wheels", str(wheels), "--target", str(tmp_path / "site"), "--budget", "400"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((out / "gpucheck.json").read_text())
    steps = report["steps"]
    assert report["dry_run"] and steps["install"]["status"] == "ok"
    assert steps["install"]["wheels"] == ["genprobe-0.1-py3-none-any.whl"]
    assert list((tmp_path / "site").rglob("genprobe/__init__.py"))  # the carried wheel went in
    assert (tmp_path / "site" / "gen" / "core" / "cli.py").is_file()  # and gen, built from the tree
    assert steps["environment"]["status"] == "ok" and "torch" in steps["environment"]
    for name in ("cuda_tests", "bench", "train"):
        assert steps[name] == {"status": "skipped", "seconds": 0, "why": "dry run: no CUDA step runs"}
    assert steps["sampling"]["why"] == "needs train, which did not succeed"
    assert steps["serve"]["status"] == "skipped"
    assert steps["prepare"]["status"] == ("ok" if corpus is not None else "skipped")
    assert "gen GPU check (dry run)" in proc.stdout and "cuda_tests" in proc.stdout

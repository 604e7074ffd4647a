"""The built wheel installs only `gen/` (no top-level core/plugins/evals) and runs on its own."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_layout_and_import(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True, timeout=300)
    wheel = next(tmp_path.glob("*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        zf.extractall(tmp_path / "site")
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"gen"}, top  # nothing generic like `core` lands in site-packages
    assert "gen/corpora/census.toml" in names and "gen/core/cli.py" in names
    # every domain package and the page templates ship; developer-only tools do not
    assert {"gen/plugins/latex/tracker.py", "gen/plugins/c/sem.py", "gen/plugins/wiki/source.py",
            "gen/evals/inspect/templates/viz.html", "gen/evals/inspect/templates/viz.js",
            "gen/evals/inspect/templates/run.html", "gen/evals/bench/measure.py"} <= set(names)
    assert not [n for n in names if n.startswith("gen/evals/dev/")]
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "names = gen.plugins.names" in zipfile.ZipFile(wheel).read(entry_points).decode()
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "site"), GEN_HOME=str(tmp_path / "ws"))
    code = "import gen.core, gen.plugins.names; print(gen.core.__file__)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip().startswith(str(tmp_path / "site"))
    out = subprocess.run([sys.executable, "-m", "gen.core.cli", "corpora"], env=env, capture_output=True,
                         text=True, check=True)
    assert "census" in out.stdout and "package:names" in out.stdout
    samples = tmp_path / "s.txt"
    samples.write_text("\\begin{lemma} x \\end{proof}\n")
    out = subprocess.run([sys.executable, "-m", "gen.core.cli", "eval", "latex", str(samples), "--json",
                          "--out", str(tmp_path / "e")], env=env, capture_output=True, text=True, check=True)
    assert '"env_mismatched"' in out.stdout

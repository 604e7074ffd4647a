"""Do gen's LaTeX checks agree with pdflatex on bare fragments? (``python -m gen.evals.agreement latex SRC``)

Units are environment blocks (``lemma``, ``proof``, ``equation``, ``itemize`` ...; 80-1,500
characters) cut from the ``.tex`` files under SRC, kept when pdflatex compiles them wrapped in
gen's minimal document (the reference run here is the harness's own, not gen's code). Each
unit is copied once per fault family with one fault; pdflatex judges every copy as written, and
so does gen three ways: the structure check in window mode (the default for text without
``\\documentclass``; an environment left open or closed from before the window counts as a
flag here, though the summary files it under ``env_open_at_end``, not as an error), the same
check in document mode (``--latex-mode document``), and ``--compile``'s headline ``compile_ok``.

Fault families:
* ``unclosed_env``: the unit's ``\\end{X}`` deleted;
* ``stray_end``: an extra ``\\end{X}`` after the unit;
* ``mismatched_env``: the unit's ``\\end{X}`` renamed ``\\end{Y}``;
* ``dropped_brace``: one ``}`` of a group deleted;
* ``unclosed_math``: one ``$`` deleted;
* ``left_without_right``: one ``\\right`` deleted.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import tempfile
from collections import defaultdict
from pathlib import Path

from gen.core.domain import EvalContext
from gen.core.sources import PrepareReport, walk_files
from gen.core.table import fmt_share as pct
from gen.core.table import render
from gen.plugins.latex import LatexDomain
from gen.plugins.latex.compile import MINIMAL, SHIMS
from gen.plugins.latex.scan import scan

ENVS = ("lemma", "proposition", "theorem", "definition", "remark", "example", "proof", "equation", "align",
        "align*", "itemize", "enumerate")
FAMILIES = ("unclosed_env", "stray_end", "mismatched_env", "dropped_brace", "unclosed_math", "left_without_right")
_BEGIN = re.compile(r"\\begin\{(" + "|".join(re.escape(e) for e in ENVS) + r")\}")
MIN_CHARS, MAX_CHARS = 80, 1500


def units_of(text: str) -> list[tuple[str, str]]:
    """(environment name, block text) of every listed environment block, outermost only."""
    out, pos = [], 0
    while True:
        m = _BEGIN.search(text, pos)
        if m is None:
            return out
        name = m.group(1)
        depth, i = 1, m.end()
        pat = re.compile(r"\\(begin|end)\{" + re.escape(name) + r"\}")
        while depth:
            e = pat.search(text, i)
            if e is None:
                return out
            depth += 1 if e.group(1) == "begin" else -1
            i = e.end()
        block = text[m.start():i]
        if MIN_CHARS <= len(block) <= MAX_CHARS:
            out.append((name, block))
        pos = i


def inject(name: str, unit: str, family: str, rng: random.Random) -> str | None:
    end = f"\\end{{{name}}}"
    if family == "unclosed_env":
        return unit[:-len(end)]
    if family == "stray_end":
        return unit + "\n" + end
    if family == "mismatched_env":
        other = "proof" if name != "proof" else "lemma"
        return unit[:-len(end)] + f"\\end{{{other}}}"
    if family == "dropped_brace":
        spots = [i for i, ch in enumerate(unit) if ch == "}" and not re.search(r"\\(?:begin|end)\{[^{}]*$", unit[:i])]
    elif family == "unclosed_math":
        spots = [i for i, ch in enumerate(unit) if ch == "$" and (i == 0 or unit[i - 1] != "\\")]
    elif family == "left_without_right":
        spots = [m.start() for m in re.finditer(r"\\right(?![a-zA-Z])", unit)]
        if spots:
            i = rng.choice(spots)
            return unit[:i] + unit[i + len("\\right"):]
        return None
    else:
        raise ValueError(family)
    if not spots:
        return None
    i = rng.choice(spots)
    return unit[:i] + unit[i + 1:]


def pdflatex_ok(engine: str, body: str, timeout: float = 30.0) -> bool:
    """The reference: pdflatex on the fragment as written inside the minimal document."""
    doc = MINIMAL + SHIMS + "\\begin{document}\n" + body + "\n\\end{document}\n"
    env = {**os.environ, "openin_any": "p", "openout_any": "p", "shell_escape": "f"}
    with tempfile.TemporaryDirectory(prefix="gen-agree-") as tmp:
        Path(tmp, "u.tex").write_text(doc, encoding="utf-8")
        try:
            r = subprocess.run([engine, "-no-shell-escape", "-halt-on-error", "-interaction=nonstopmode",
                                "-draftmode", "u.tex"], cwd=tmp, env=env, stdin=subprocess.DEVNULL,
                               capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
    return r.returncode == 0


def _flags(text: str) -> tuple[int, int]:
    """(window-mode errors + what is left open or closed from before, document-mode errors)."""
    w = scan(text, document=False)
    return w.errors + len(w.open_frames) + len(w.outer), scan(text, document=True).errors


def run(src: Path, max_files: int, max_units: int, seed: int, log=print) -> dict:
    engine = shutil.which("pdflatex")
    if engine is None:
        raise RuntimeError("pdflatex is not installed (Debian: apt-get install texlive-latex-base)")
    rng = random.Random(seed)
    files = list(walk_files(src, ["*.tex"], PrepareReport()))[:max_files]
    pool = []
    for path in files:
        units = units_of(path.read_text(encoding="utf-8", errors="replace"))
        rng.shuffle(units)
        pool += units[:max_units * 3]  # extra candidates: some do not compile alone
    rng.shuffle(pool)
    kept = []
    for name, unit in pool:
        if len(kept) >= max_units * max(1, len(files)):
            break
        if pdflatex_ok(engine, unit):
            kept.append((name, unit))
    log(f"{len(kept)} of {len(pool)} candidate blocks compile alone")
    cases = [(None, unit, unit) for _, unit in kept]  # (family, clean unit, text judged): clean ones first
    for name, unit in kept:
        for family in FAMILIES:
            bad = inject(name, unit, family, rng)
            if bad is not None:
                cases.append((family, unit, bad))
    ctx = EvalContext(domain=LatexDomain(), options={"compile": True, "compile_workers": 2})
    results = LatexDomain().check_many([text for _, _, text in cases], ctx)
    tallies: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    base_flags = {unit: _flags(unit) for _, unit in kept}
    for (family, unit, text), res in zip(cases, results, strict=True):
        ref = pdflatex_ok(engine, text)
        head = res.metrics.get("compile_ok")
        t = tallies[family or "clean"]
        t["n"] += 1
        t["pdflatex_rejects"] += not ref
        t["compile_agrees"] += head is not None and bool(head) == ref
        if family is None:
            win, doc = _flags(text)
            t["window_flags"] += win > 0
            t["document_flags"] += doc > 0
            continue
        bw, bd = base_flags[unit]
        win, doc = _flags(text)
        t["window_flags"] += win > bw
        t["document_flags"] += doc > bd
    return {"src": str(src), "files": len(files), "candidates": len(pool), "units": len(kept),
            "families": {k: dict(v) for k, v in tallies.items()}}


def table(res: dict, markdown: bool = False) -> str:
    rows = []
    for fam, t in res["families"].items():
        n = t["n"]
        rows.append([fam, n, pct(t["pdflatex_rejects"], n), pct(t["window_flags"], n), pct(t["document_flags"], n),
                     pct(t["compile_agrees"], n)])
    head = [["fault family", "units", "pdflatex rejects", "gen flags (window)", "gen flags (document)",
             "compile_ok agrees with pdflatex"]]
    return render(rows, head, "<>>>>>", markdown=markdown)

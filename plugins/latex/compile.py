"""Second and third opinions on LaTeX samples: pylatexenc's strict parse and a real pdflatex run.

Both judge the *completed* sample (``ScanResult.complete``): a sample starts and stops
mid-document, so the environments and math it closes from before get their openers prepended
and what it leaves open gets closed, exactly as the stack matcher read it. A sample that compiles
after that is a piece of a document that compiles.

pdflatex runs in a temporary directory with ``-no-shell-escape``, ``-halt-on-error``,
``-interaction=nonstopmode``, paranoid file access (``openin_any=p``/``openout_any=p``) and a
timeout, two at a time on a thread pool: ``LatexDomain.check_many`` submits every sample's compile
job while it scans the rest, then collects the results.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from gen.core.api import Issue, excerpt

from .scan import ScanResult, scan

INSTALL_HINT = "Debian/Ubuntu: apt-get install texlive-latex-base"
_DEFINITION = re.compile(
    r"^\\(?:[gex]?def\\[a-zA-Z@]+|newtheorem|theoremstyle|numberwithin|newenvironment|renewenvironment"
    r"|(?:re)?newcommand|providecommand|DeclareMathOperator|documentclass|usepackage)\b[^\n]*$", re.M)
_PACKAGE = re.compile(r"^\\usepackage(?:\[[^\]]*\])?\{([^{}]+)\}")
_CLASS = re.compile(r"^\\documentclass(?:\[[^\]]*\])?\{([^{}]+)\}")
# document-level commands a sample may contain that must not reach the wrapped body
_NEUTRALIZE = re.compile(r"\\(?:documentclass|usepackage)(?:\[[^\]\n]*\])?\{[^{}\n]*\}"
                         r"|\\(?:input|include|bibliography|bibliographystyle|externaldocument|includeonly)"
                         r"(?:\[[^\]\n]*\])?\{[^{}\n]*\}"
                         r"|\\(?:begin|end)\{document\}|\\xyoption\{[^{}\n]*\}|\\UseAllTwocells")
# commands of packages texlive-latex-base lacks (xy) and of hyperref, made harmless if undefined
SHIMS = r"""\makeatletter
\@ifundefined{xymatrix}{\def\xymatrix#1#{\@gobble}}{}
\@ifundefined{phantomsection}{\def\phantomsection{}}{}
\@ifundefined{hyperref}{\def\hyperref[#1]#2{#2}}{}
\@ifundefined{externaldocument}{\def\externaldocument[#1]#2{}}{}
\makeatother
"""
# packages that only change the look (fonts, links, page): skipped, they double the compile time
PRESENTATION = frozenset({"lmodern", "fontenc", "inputenc", "hyperref", "xr-hyper", "xr", "microtype",
                          "geometry", "fullpage", "bookmark", "hyperxmp", "color", "xcolor", "graphicx"})
MINIMAL = ("\\documentclass{article}\n\\usepackage{amsmath}\n\\usepackage{amssymb}\n\\usepackage{amsthm}\n"
           + "".join(f"\\newtheorem{{{e}}}{{{e.title()}}}\n" for e in (
               "theorem", "lemma", "proposition", "corollary", "definition", "example", "exercise", "remark",
               "remarks", "situation", "conjecture")))


def definition_lines(text: str) -> list[str]:
    """Preamble material from corpus text: one-line, brace-balanced definitions and packages."""
    out = []
    for m in _DEFINITION.finditer(text):
        line = m.group().split("%", 1)[0].rstrip()
        r = scan(line, document=False)
        if r.errors == 0 and not r.open_frames and not r.outer:
            out.append(line)
    return out


def _available(name: str, ext: str, cache: dict[str, bool] = {}) -> bool:  # noqa: B006 - a cache
    key = f"{name}.{ext}"
    if key not in cache:
        try:
            r = subprocess.run(["kpsewhich", key], capture_output=True, text=True, timeout=20)
            cache[key] = r.returncode == 0 and bool(r.stdout.strip())
        except (OSError, subprocess.SubprocessError):
            cache[key] = False
    return cache[key]


def first_error(log: str) -> tuple[str, int | None]:
    """The first TeX error of a log (``! ...`` and its ``l.N`` context) and its line number."""
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("! "):
            msg, lineno = line[2:].strip(), None
            for follow in lines[i + 1:i + 12]:
                m = re.match(r"l\.(\d+) ?(.*)", follow)
                if m:
                    lineno = int(m.group(1))
                    msg += f" (at: {m.group(2).strip()[-40:]})" if m.group(2).strip() else ""
                    break
            return msg, lineno
    return "pdflatex failed without a ! error line (see the log)", None


class Compiler:
    """pdflatex with one validated preamble and a small pool of workers."""

    def __init__(self, definitions: list[str] | None, preamble_file: str | None = None,
                 workers: int = 2, timeout: float = 20.0) -> None:
        self.engine = shutil.which("pdflatex")
        self.timeout = timeout
        self.note = ""
        self.seconds = 0.0
        self.compiled = 0
        if self.engine is None:
            self.note = f"pdflatex not found: compile rate not measured ({INSTALL_HINT})"
            return
        self.preamble = self._choose_preamble(definitions or [], preamble_file)
        self.pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="pdflatex")

    def _choose_preamble(self, definitions: list[str], preamble_file: str | None) -> str:
        candidates = []
        if preamble_file:
            text = Path(preamble_file).read_text(encoding="utf-8", errors="replace")
            candidates.append(text.split("\\begin{document}")[0] + SHIMS)
        if definitions:
            cls = next((c for c in (_CLASS.match(d) for d in definitions) if c and _available(c.group(1), "cls")),
                       None)
            head = [f"\\documentclass{{{cls.group(1) if cls else 'article'}}}",
                    "\\usepackage{amsmath}", "\\usepackage{amssymb}", "\\usepackage{amsthm}"]
            for d in definitions:
                p = _PACKAGE.match(d)
                names = [x.strip() for x in p.group(1).split(",")] if p else []
                if names and not PRESENTATION & set(names) and all(_available(x, "sty") for x in names):
                    head.append(d)
            body = [d for d in definitions if not d.startswith(("\\usepackage", "\\documentclass"))]
            candidates.append("\n".join(dict.fromkeys(head)) + "\n" + SHIMS + "\n".join(body) + "\n")
        candidates.append(MINIMAL + SHIMS)
        for pre in candidates:  # the first preamble that compiles an empty document wins
            ok, err, _ = self._run(pre, "")
            if ok:
                return pre
            self.note = f"preamble rejected ({err}); using a simpler one"
        self.engine, self.note = None, f"pdflatex cannot compile even a minimal document: {err}"
        return ""

    def _run(self, preamble: str, body: str, document: bool = False) -> tuple[bool, str, int | None]:
        doc = body if document else preamble + "\\begin{document}\n" + body + "\n\\end{document}\n"
        env = {**os.environ, "openin_any": "p", "openout_any": "p", "shell_escape": "f"}
        with tempfile.TemporaryDirectory(prefix="gen-latex-") as tmp:
            Path(tmp, "s.tex").write_text(doc, encoding="utf-8")
            cmd = [self.engine, "-no-shell-escape", "-halt-on-error", "-interaction=nonstopmode",
                   "-draftmode", "s.tex"]
            try:
                r = subprocess.run(cmd, cwd=tmp, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                                   timeout=self.timeout)
            except subprocess.TimeoutExpired:
                return False, f"timeout after {self.timeout:g} s", None
            if r.returncode == 0:
                return True, "", None
            log = Path(tmp, "s.log")
            text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else r.stdout.decode(
                "utf-8", "replace")
            msg, lineno = first_error(text)
            first_body_line = 1 if document else preamble.count("\n") + 2
            return False, msg, None if lineno is None else lineno - first_body_line

    def compile(self, sample: str, res: ScanResult | None = None, repair: bool = True) -> tuple[bool, Issue | None]:
        """Compile one sample. ``repair``: as a window of a document (the frames it opens or
        closes completed first); else as written: a full document (``\\documentclass``) as it
        is, anything else wrapped in the minimal document around it, nothing added inside."""
        res = res if res is not None else scan(sample)
        completed, prefix = res.complete(sample) if repair else (sample, "")
        t0 = time.perf_counter()
        if not repair and "\\documentclass" in sample:
            ok, msg, line = self._run("", sample, document=True)
        else:
            ok, msg, line = self._run(self.preamble, _NEUTRALIZE.sub("", completed))
        self.seconds += time.perf_counter() - t0
        self.compiled += 1
        if ok:
            return True, None
        off = -1
        if line is not None:  # body line -> offset in the sample (the prefix adds lines)
            line -= prefix.count("\n")
            off = 0 if line <= 0 else _line_offset(sample, line)
        kind = "compile_error" if not repair else "compile_error_repaired"
        return False, Issue(kind, msg, off, excerpt(sample, off) if off >= 0 else "")


def _line_offset(text: str, line: int) -> int:
    off = 0
    for _ in range(line):
        nxt = text.find("\n", off)
        if nxt < 0:
            return len(text)
        off = nxt + 1
    return off


def pylatexenc_opinion(sample: str, res: ScanResult) -> tuple[bool | None, Issue | None]:
    """Strict pylatexenc parse of the completed sample: (parsed?, issue). Its default tolerant
    mode silently drops unclosed braces and environments, so strict mode it is."""
    from pylatexenc.latexwalker import LatexWalker, LatexWalkerError

    completed, prefix = res.complete(sample)
    try:
        LatexWalker(completed, tolerant_parsing=False).get_latex_nodes()
        return True, None
    except LatexWalkerError as exc:
        pos = getattr(exc, "pos", None)
        off = -1 if pos is None else min(max(pos - len(prefix), 0), len(sample))
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return False, Issue("pylatexenc_error", msg, off, excerpt(sample, off) if off >= 0 else "")
    except (RecursionError, Exception) as exc:  # noqa: BLE001 - pylatexenc itself broke: no opinion
        return None, Issue("pylatexenc_crash", f"{type(exc).__name__}: {exc}"[:200])

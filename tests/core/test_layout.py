"""The layout's import rules, checked on the source so the shape stays (ISSUE: one-way layers).

* core/ imports nothing from gen.evals or gen.plugins (evals and domains arrive through hooks);
* a plugin imports gen.core.api and nothing else of gen: no other core module, no evals, no
  other plugin (its own package's modules by relative import only), and not click (its option
  types are gen's own);
* core names no built-in domain or corpus: what a domain does, the domain says;
* no import cycle inside core/ or inside a plugin package, hidden in a function or not;
* the plugin API module lists what it exports.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"api": "gen", "core": "gen.core", "plugins": "gen.plugins", "evals": "gen.evals"}


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    parts[0] = PACKAGES[parts[0]]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) for every import in a file, function-local ones included (but not
    those under ``if TYPE_CHECKING:``, which exist for annotations and never run)."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                   and isinstance(block.test, ast.Name) and block.test.id == "TYPE_CHECKING"
                   for stmt in block.body for n in ast.walk(stmt)}  # annotations only: never run
    out = []
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from pkg import mod` imports pkg.mod when mod is a module: count both
            out.append((node.lineno, base))
            out += [(node.lineno, f"{base}.{a.name}") for a in node.names]
    return out


def _files(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def _gen_modules() -> set[str]:
    return {_module_name(p) for top in PACKAGES for p in _files(top)}


def test_core_never_imports_evals_or_plugins():
    bad = [f"{p.relative_to(ROOT)}:{line} imports {mod}" for p in _files("core") for line, mod in _imports(p)
           if mod.startswith(("gen.evals", "gen.plugins"))]
    assert not bad, "\n".join(bad)


def test_plugins_import_only_the_public_api():
    known = _gen_modules()
    bad = []
    for p in _files("plugins"):
        own = _module_name(p).split(".")[:3]  # gen.plugins.<domain>: its own package
        for line, mod in _imports(p):
            if not mod.startswith("gen.") or mod.startswith("gen.core.api") or mod not in known | {"gen.core"}:
                continue  # third-party, the API, or a name imported from a module (not a module)
            if mod.split(".")[:3] == own and len(own) == 3 and (ROOT / "plugins" / own[2]).is_dir():
                continue  # a module of the plugin's own package
            bad.append(f"{p.relative_to(ROOT)}:{line} imports {mod}")
    assert not bad, "plugins may import only gen.core.api:\n" + "\n".join(bad)


def test_plugins_do_not_import_click():
    bad = [f"{p.relative_to(ROOT)}:{line}" for p in _files("plugins") for line, mod in _imports(p)
           if mod == "click" or mod.startswith("click.")]
    assert not bad, "plugins declare options with gen's own types (gen.core.api Choice, Range, PathValue):\n" + \
        "\n".join(bad)


def _builtin_names() -> set[str]:
    domains = {p.stem for p in (ROOT / "plugins").iterdir()
               if (p.suffix == ".py" or p.is_dir()) and not p.name.startswith("_")}
    return domains | {p.stem for p in (ROOT / "corpora").glob("*.toml")}


def test_core_names_no_builtin_domain():
    """A built-in domain or corpus name as a string in core is a rule core should ask a domain
    for (a JSON field that happens to share the name, a dict key or a subscript, is not)."""
    names, bad = _builtin_names(), []
    for p in _files("core"):
        tree = ast.parse(p.read_text(encoding="utf-8"))
        fields = {id(k) for n in ast.walk(tree) if isinstance(n, ast.Dict) for k in n.keys if k is not None}
        fields |= {id(n.slice) for n in ast.walk(tree) if isinstance(n, ast.Subscript)}
        fields |= {id(a) for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
                   and n.func.attr == "get" for a in n.args[:1]}
        bad += [f"{p.relative_to(ROOT)}:{n.lineno} {n.value!r}" for n in ast.walk(tree)
                if isinstance(n, ast.Constant) and n.value in names and id(n) not in fields]
    assert not bad, "core names built-in domains or corpora:\n" + "\n".join(bad)


def _graph(folder: str) -> dict[str, set[str]]:
    known = _gen_modules()
    return {_module_name(p): {m for _, m in _imports(p) if m in known and m != _module_name(p)}
            for p in _files(folder)}


@pytest.mark.parametrize("folder", ["core", "plugins", "evals"])
def test_no_import_cycles(folder):
    graph = _graph(folder)
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt.rpartition(".")[0] == node or node.rpartition(".")[0] == nxt and nxt not in graph.get(node, ()):
                continue
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*path[path.index(nxt):], nxt]) if nxt in path else f"{node} -> {nxt}")
            elif nxt in graph and state.get(nxt) is None:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    # a package's __init__ importing its own modules is not a cycle unless a module imports it back
    assert not cycles, "\n".join(cycles)


def test_api_module_lists_its_exports():
    from gen.core import api

    assert api.__all__ and all(hasattr(api, name) for name in api.__all__)
    from gen.core.domain import Domain

    assert api.Domain is Domain


def test_files_stay_readable():
    long = [f"{p.relative_to(ROOT)} ({n} lines)" for top in PACKAGES for p in _files(top)
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 450]
    assert not long, "split these by job: " + ", ".join(long)


_MOD_ROLE = re.compile(r":mod:`([\w.]+)`")
_DOTTED = re.compile(r"\bgen(?:\.\w+)+")
_PATH = re.compile(r"\b((?:api|core|plugins|evals|tests|corpora|docs)/[\w./-]*\w\.(?:py|c|md|toml|html|js|png))\b")


def _texts(tree: ast.AST, source: str) -> list[tuple[int, str]]:
    """(line, text) of every docstring and comment of a module."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                out.append((node.body[0].lineno, doc))
    out += [(i, line.split("#", 1)[1]) for i, line in enumerate(source.splitlines(), 1) if "#" in line]
    return out


def _resolves(dotted: str) -> bool:
    """A module, or an attribute of the longest importable prefix."""
    parts = dotted.rstrip(".").split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def test_docstrings_and_comments_name_modules_that_exist():
    """A module, dotted name or file a docstring or comment names exists (:mod:`.x` relative to
    the file's package), so the prose cannot drift from the layout."""
    bad = []
    for top in PACKAGES:
        for p in _files(top):
            source = p.read_text(encoding="utf-8")
            package = _module_name(p) if p.name == "__init__.py" else _module_name(p).rpartition(".")[0]
            for line, text in _texts(ast.parse(source), source):
                for ref in _MOD_ROLE.findall(text):
                    full = package + ref if ref.startswith(".") else ref
                    if not _resolves(full):
                        bad.append(f"{p.relative_to(ROOT)}:{line} :mod:`{ref}`")
                bad += [f"{p.relative_to(ROOT)}:{line} {ref}" for ref in _DOTTED.findall(text) if not _resolves(ref)]
                bad += [f"{p.relative_to(ROOT)}:{line} {ref}" for ref in _PATH.findall(text)
                        if not (ROOT / ref).exists()]
    assert not bad, "these name what does not exist:\n" + "\n".join(sorted(set(bad)))

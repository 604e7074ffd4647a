"""Which corpus a name means, and preparing it: `gen prepare NAME [--src PATH] [--domain D]`.

A name is a built-in corpus (prepared from its own text only), a user corpus (re-prepared,
perhaps from a new source) or a new user corpus, whose domain is given or inferred from the
source (every domain is asked: core/registry.py infer_domain). The prepared data is read back
by :func:`load_corpus` for training, sampling with guidance, and ``gen eval --against``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gen.core.data import CorpusData, prepare
from gen.core.domain import CorpusSpec
from gen.core.download import fetch, sha256_of
from gen.core.errors import GenError
from gen.core.registry import all_corpora, default_source, get_domain, infer_domain, resolve_corpus
from gen.core.usercorpora import manifest_problem, manifests_dir, new_user_spec, save_user_corpus
from gen.core.workspace import CorpusDir, downloads_dir


def corpus_to_prepare(name: str, src: str | None, ws: Path, domain: str | None = None, log=print) -> CorpusSpec:
    """The corpus `gen prepare NAME` means: a built-in one (from its own text only), a user
    corpus (re-prepared, perhaps from a new source), or a new user corpus named NAME."""
    try:
        spec = resolve_corpus(name, ws)
    except GenError:
        if src is None:
            raise
        broken = manifests_dir(ws) / f"{name}.toml"
        if broken.is_file():  # a hand-edited manifest that does not load: never overwritten silently
            problem = manifest_problem(broken)
            why = problem if isinstance(problem, str) else (f"{broken} declares a {problem.domain!r} corpus gen "
                                                            "cannot use now (no such domain is loaded)")
            raise GenError(f"{why}. Fix or delete {broken}, then run this again") from None
        dom, why = (domain, "as given") if domain else infer_domain(src)
        default = all_corpora(ws).get(get_domain(dom).default_corpus)  # an unknown --domain lists the valid ones
        log(f"new corpus {name!r}: domain {dom} ({why})")
        return new_user_spec(name, dom, src, default, {})
    if spec.user:
        if domain and domain != spec.domain:
            log(f"corpus {spec.name!r}: domain {spec.domain} -> {domain}")
            spec.domain = domain
        if src and src != "-" and str(Path(src).resolve()) != spec.src:
            log(f"re-preparing {spec.name!r} from a new source: {Path(src).resolve()} (was {spec.src})")
            spec.src = str(Path(src).resolve())
        return spec
    if domain and domain != spec.domain:
        raise GenError(f"{spec.name!r} is a built-in {spec.domain} corpus; for your own {domain} text: "
                       f"gen prepare MYNAME --domain {domain} --src {src or 'PATH'}")
    pinned = spec.download.get("sha256")
    if src and pinned and (src == "-" or (Path(src).is_file() and sha256_of(Path(src)) != pinned)):
        raise GenError(f"{spec.name!r} is a built-in corpus ({spec.description}) whose text is {spec.download['url']}; "
                       f"{'standard input' if src == '-' else src} is other text (or cannot be checked). Prepare yours under "
                       f"its own name: gen prepare "
                       f"{'MYNAME' if src == '-' else _suggest_name(src)} --domain {spec.domain} --src {src}")
    return spec


def _suggest_name(src: str) -> str:
    stem = "".join(c if c.isalnum() or c in "._-" else "-" for c in Path(src).stem).strip(".-_") or "mytext"
    return stem if stem[0].isalnum() else "my" + stem


def prepare_corpus(name: str, src: str | None, ws: Path, options: dict[str, Any] | None = None,
                   domain: str | None = None, log=print, spec: CorpusSpec | None = None) -> dict[str, Any]:
    """Prepare a corpus into the workspace; ``options`` are the domain's prepare options. With
    no ``src``: a package's resource, or the manifest's download (fetched and verified).
    ``spec``: what :func:`corpus_to_prepare` already said NAME means."""
    spec = spec or corpus_to_prepare(name, src, ws, domain, log)
    dom = get_domain(spec.domain)
    if src is None and spec.user:
        src = spec.src
    src = src or default_source(spec)
    if src is None and spec.download:
        src = str(fetch(spec.name, spec.download, downloads_dir(ws, spec.name), log))
    if src is None:
        raise GenError(f"corpus {spec.name!r} needs --src PATH (its manifest names no download)")
    meta = prepare(spec, dom, str(src), CorpusDir.of(ws, spec.name), options or {})
    if spec.user:
        spec.options = {**spec.options, **(options or {})}
        save_user_corpus(ws, spec)
    return meta


def load_corpus(name: str, ws: Path) -> tuple[CorpusSpec, CorpusData]:
    """A prepared corpus by name (or domain name), or a GenError that says how to prepare it."""
    spec = resolve_corpus(name, ws)
    folder = CorpusDir.of(ws, spec.name)
    if not folder.is_prepared():
        hint = "" if spec.sources else " --src PATH"
        raise GenError(f"corpus {spec.name!r} is not prepared in workspace {ws}. "
                       f"Run: gen prepare {spec.name}{hint}")
    return spec, CorpusData(folder.path)

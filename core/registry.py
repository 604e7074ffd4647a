"""Name lookups: domains, corpora and generic metrics gathered from all loaded plugins.

A new user corpus's domain is the one whose ``claim`` of the source is strongest
(:func:`infer_domain`). Corpora come from the TOML manifests shipped in ``corpora/`` (package ``gen.corpora``) and from
plugins' ``register_corpora`` hooks. A CORPUS argument may be a corpus name or a domain name
(meaning that domain's default corpus). Unknown names raise GenError listing the valid ones.
"""

from __future__ import annotations

import importlib.resources
import sys
from dataclasses import dataclass, field
from pathlib import Path

from gen.core import plugins
from gen.core.domain import CorpusSpec, Domain, SampleMetric
from gen.core.errors import GenError, warn_once
from gen.core.manifest import parse
from gen.core.plugins import load_plugins, origins


@dataclass
class Registry:
    domains: dict[str, Domain] = field(default_factory=dict)
    domain_origin: dict[str, str] = field(default_factory=dict)
    corpora: dict[str, CorpusSpec] = field(default_factory=dict)
    metrics: list[SampleMetric] = field(default_factory=list)


_registry: Registry | None = None
_generation = -1  # plugins.generation the registry was built for


def _call_each(hook_name: str, collect) -> None:
    """Call a hook through pluggy once per plugin (a subset caller holding that plugin alone),
    so we know which plugin registered what."""
    pm = load_plugins()
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        others = [p for name, p in pm.list_name_plugin() if name != impl.plugin_name]
        pm.subset_hook_caller(hook_name, remove_plugins=others)(
            register=lambda obj, _p=impl.plugin_name: collect(obj, _p))


def _builtin_manifests() -> list[CorpusSpec]:
    specs = []
    for entry in sorted(importlib.resources.files("gen.corpora").iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".toml"):
            specs.append(parse(entry.read_text(encoding="utf-8"), f"corpora/{entry.name}"))
    return specs


def get_registry() -> Registry:
    global _registry, _generation
    if _registry is not None and _generation == plugins.generation:
        return _registry
    reg = Registry()

    def add_domain(domain: Domain, plugin: str) -> None:
        if not isinstance(domain, Domain) or not domain.name:
            raise GenError(f"plugin {plugin!r} registered {domain!r}, which is not a named gen Domain")
        reg.domains[domain.name] = domain
        reg.domain_origin[domain.name] = f"{plugin}: {origins.get(plugin, 'plugin')}"

    def add_corpus(spec: CorpusSpec, plugin: str) -> None:
        spec.origin = spec.origin or f"plugin {plugin}"
        reg.corpora[spec.name] = spec

    _call_each("register_domains", add_domain)
    for spec in _builtin_manifests():
        if spec.domain in reg.domains:  # a manifest of a domain whose plugin is not loaded stays hidden
            reg.corpora[spec.name] = spec
    _call_each("register_corpora", add_corpus)
    _call_each("register_metrics", lambda m, _p: reg.metrics.append(m))
    _registry, _generation = reg, plugins.generation
    return reg


def get_domain(name: str) -> Domain:
    reg = get_registry()
    if name not in reg.domains:
        valid = ", ".join(sorted(reg.domains)) or "(none loaded: check GEN_PLUGINS)"
        raise GenError(f"unknown domain {name!r}. Valid domains: {valid}")
    return reg.domains[name]


def all_corpora(ws: Path | None = None) -> dict[str, CorpusSpec]:
    """Built-in corpora, and the user corpora of workspace ``ws``."""
    from gen.core.usercorpora import load_user_corpora

    reg = get_registry()
    user = {}
    for name, spec in load_user_corpora(ws).items():
        if name in reg.domains or name in reg.corpora:
            warn_once(spec.origin, f"skipped {spec.origin}: {name!r} is the name of a built-in "
                                   f"{'domain' if name in reg.domains else 'corpus'}; rename the file and its name")
        elif spec.domain in reg.domains:
            user[name] = spec
    return {**user, **reg.corpora}


def resolve_corpus(name: str, ws: Path | None = None) -> CorpusSpec:
    """A corpus name (built-in, or a user corpus of workspace ``ws``), or a domain name meaning
    that domain's default corpus."""
    reg = get_registry()
    corpora = all_corpora(ws)
    if name in corpora:
        return corpora[name]
    if name in reg.domains:
        default = reg.domains[name].default_corpus
        if default in reg.corpora:
            return reg.corpora[default]
        raise GenError(f"domain {name!r} has no default corpus; name one of: "
                       f"{', '.join(c for c, s in corpora.items() if s.domain == name) or '(none)'}")
    raise GenError(f"unknown corpus or domain {name!r}. Corpora: {', '.join(sorted(corpora)) or '(none)'}; "
                   f"domains: {', '.join(sorted(reg.domains)) or '(none)'}. To prepare your own text under "
                   f"this name: gen prepare {name} --src PATH [--domain DOMAIN]")


def infer_domain(src: str, domains: dict[str, Domain] | None = None) -> tuple[str, str]:
    """(domain, why) for a --src: every domain (default: every loaded one) is asked whether it
    claims the source, and the strongest claim wins (a domain whose claim raises is passed
    over, and said)."""
    from gen.core.usercorpora import sample_source

    domains = get_registry().domains if domains is None else domains
    source = sample_source(src)
    claims: list[tuple[float, str, str]] = []
    for name, domain in sorted(domains.items()):
        try:
            claim = domain.claim(source)
        except Exception as exc:  # noqa: BLE001 - a third-party domain's bug must not stop prepare
            print(f"gen: warning: domain {name!r} failed to look at {src}: {exc}", file=sys.stderr)
            continue
        if claim is not None:
            claims.append((claim.strength, name, claim.reason))
    if not claims:
        raise GenError(f"no domain claims {src}; name one with --domain ({', '.join(sorted(domains))})")
    strength, name, why = max(claims, key=lambda c: c[0])  # equal strengths: the first name
    return name, why


def default_source(spec: CorpusSpec) -> str | None:
    """The --src a corpus has without one: a package resource (package:NAME), else None."""
    return next((s for s in spec.sources if s.startswith("package:")), None)

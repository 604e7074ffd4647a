"""Plugin manager: loads every plugin, built-in or third-party, from the `gen` entry points.

The built-ins are the entry points gen's own distribution declares (pyproject.toml's
``[project.entry-points.gen]`` table is their one list), loaded exactly like a third-party
package's, so there is one loading path. Built-ins always load; ``GEN_PLUGINS``
(comma-separated entry-point names) limits which third-party plugins load, and
``GEN_PLUGINS=`` (empty) loads none of them.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
from types import ModuleType

import pluggy

from gen.core import hookspecs

ENTRY_POINT_GROUP = "gen"
ENV_LIMIT = "GEN_PLUGINS"
DISTRIBUTION = "gen-charrnn"  # the entry points this distribution declares are the built-ins

pm = pluggy.PluginManager("gen")
pm.add_hookspecs(hookspecs)

_loaded = False
# plugin name -> where it came from ("entry point gen.plugins.names (dist gen-charrnn 0.1.0)")
origins: dict[str, str] = {}
# bumped whenever the set of plugins changes, so lookups built from them know to rebuild
generation = 0


def _allowed() -> set[str] | None:
    raw = os.environ.get(ENV_LIMIT)
    if raw is None:
        return None
    return {name.strip() for name in raw.split(",") if name.strip()}


def load_plugins() -> pluggy.PluginManager:
    """Load entry-point plugins once (respecting GEN_PLUGINS) and return the manager."""
    global _loaded
    if _loaded:
        return pm
    _loaded = True
    allowed = _allowed()
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if allowed is not None and ep.name not in allowed and not is_builtin(ep):
            continue
        if pm.get_plugin(ep.name) is not None:
            continue
        try:
            module = ep.load()
        except Exception as exc:  # a broken third-party plugin must not take the CLI down
            print(f"gen: warning: plugin {ep.name!r} ({ep.value}) failed to load: {exc}", file=sys.stderr)
            continue
        pm.register(module, name=ep.name)
        dist = f" (dist {ep.dist.name} {ep.dist.version})" if ep.dist else ""
        origins[ep.name] = f"entry point {ep.value}{dist}"
    return pm


def is_builtin(ep: importlib.metadata.EntryPoint) -> bool:
    """An entry point of gen's own distribution: loaded whatever GEN_PLUGINS says."""
    return ep.dist is not None and ep.dist.name == DISTRIBUTION


def builtins() -> tuple[str, ...]:
    """The names of the built-in plugins, in the order they load."""
    return tuple(ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP) if is_builtin(ep))


def register_plugin(module: ModuleType | object, name: str) -> None:
    """Register a plugin object at run time (tests, notebooks). Undo with unregister_plugin."""
    global generation
    load_plugins()
    pm.register(module, name=name)
    origins[name] = f"registered at run time ({getattr(module, '__name__', type(module).__name__)})"
    generation += 1


def unregister_plugin(name: str) -> None:
    global generation
    plugin = pm.get_plugin(name)
    if plugin is not None:
        pm.unregister(plugin)
    origins.pop(name, None)
    generation += 1

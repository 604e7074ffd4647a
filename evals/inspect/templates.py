"""The Jinja2 environment of the inspection pages: templates/ beside this file, autoescaped.

Every value a page shows passes through autoescape, so text from samples or corpora (a
``<script>`` inside a sample) always shows as text. JSON for a page script goes in with
:func:`script_json`, which is safe inside ``<script>``.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import jinja2


@cache
def environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.PackageLoader("gen.evals.inspect", "templates"),
                              autoescape=jinja2.select_autoescape(("html",), default_for_string=True),
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def render(name: str, **values: Any) -> str:
    return environment().get_template(name).render(asset=asset, **values)


@cache
def asset(name: str) -> jinja2.utils.markupsafe.Markup:
    """A CSS/JS file of templates/ inlined as it is (our own code: not a template, not escaped)."""
    env = environment()
    return jinja2.utils.markupsafe.Markup(env.loader.get_source(env, name)[0])


def script_json(obj: Any) -> str:
    """JSON that is safe inside <script>: no '</script>', '<!--' or line separators can form."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    for raw, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                     ("\u2029", "\\u2029")):
        text = text.replace(raw, esc)
    return text

"""The model card of an export (README.md): Hugging Face's format, YAML front matter then Markdown.

What the model is, how it was trained, its validation loss, samples, the commands that
reproduce and sample it, and the sections plugins register (``register_card_sections``: the
eval side adds the `gen eval` table of 20 samples beside real held-out text). The text is a
Jinja2 template (core/templates/model_card.jinja); the front matter is written with a YAML
dumper-free subset (strings quoted as JSON, which YAML reads) so no YAML library is needed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from gen.core.config import SampleOptions
from gen.core.errors import GenError
from gen.core.models import Loaded

CARD_SAMPLES = 20  # drawn once, scored by the registered sections, three shown as excerpts
CARD_SAMPLE_CHARS = 600  # per sample (a name ends at its newline first)
EXCERPTS, EXCERPT_CHARS = 3, 400
CARD_SEED = 0


def card_license(ws: Path, corpus: str) -> str:
    """The training corpus's licence from its manifest ("" where unknown or the corpus is gone)."""
    from gen.core.registry import resolve_corpus

    try:
        return resolve_corpus(corpus, ws).license
    except GenError:
        return ""


def front_matter(config: dict[str, Any], license_: str) -> str:
    """YAML front matter: library, tags, licence, and the validation loss as a model-index metric."""
    t = config["training"]
    q = json.dumps  # a JSON string is a valid YAML scalar
    lines = ["---", "library_name: gen", "pipeline_tag: text-generation", "tags:"]
    lines += [f"- {q(tag)}" for tag in ("gen", "char-rnn", "character-level", config["model_args"]["cell"],
                                          config["domain"])]
    if license_.startswith("other:"):
        lines += ["license: other", f"license_name: {q(license_[6:].split(' ')[0])}"]
    elif license_:
        lines.append(f"license: {q(license_)}")
    if t.get("best_val_loss_nats") is not None:
        lines += ["model-index:", f"- name: {q(config['corpus'] + '-' + config['model_args']['cell'])}",
                  "  results:", "  - task:", "      type: text-generation",
                  "    dataset:", f"      name: {q(config['corpus'])}", f"      type: {q(config['corpus'])}",
                  "      split: validation", "    metrics:",
                  "    - type: loss", "      name: validation loss (nats per character)",
                  f"      value: {t['best_val_loss_nats']:.4f}",
                  "    - type: bpc", "      name: bits per character", f"      value: {t['best_val_bpc']:.4f}"]
    return "\n".join(lines + ["---", ""])


def card_samples(loaded: Loaded, ws: Path) -> list[str]:
    """CARD_SAMPLES samples at the default temperature, seeded: the same card on every export."""
    per_line = loaded.domain.samples_per_line
    opts = SampleOptions(n=CARD_SAMPLES, length=None if per_line else CARD_SAMPLE_CHARS, seed=CARD_SEED)
    return loaded.generate(ws, opts)[0]


def sections(loaded: Loaded, samples: list[str], ws: Path) -> list[str]:
    """The Markdown sections plugins registered (register_card_sections), in load order."""
    from gen.core.plugins import load_plugins

    makers: list = []
    load_plugins().hook.register_card_sections(register=makers.append)
    return [text for make in makers if (text := make(loaded, samples, ws))]


def write_card(loaded: Loaded, config: dict[str, Any], path: Path, ws: Path) -> list[str]:
    """Write README.md; returns notes for the user (e.g. a section that could not be made)."""
    import jinja2

    from gen.core.atomic import atomic_write_text

    samples = card_samples(loaded, ws)
    license_ = card_license(ws, config["corpus"])
    env = jinja2.Environment(loader=jinja2.PackageLoader("gen.core", "templates"), autoescape=False,
                             keep_trailing_newline=True)
    a = config["model_args"]
    text = env.get_template("model_card.jinja").render(
        c=config, t=config["training"], a=a, license=license_ or "unknown (a corpus of your own)",
        params=loaded.model.num_params(), excerpts=[s[:EXCERPT_CHARS] for s in samples[:EXCERPTS]],
        fence="`" * max(3, 1 + max((_longest_backticks(s) for s in samples[:EXCERPTS]), default=0)),
        sections=sections(loaded, samples, ws), n_samples=len(samples), sample_chars=CARD_SAMPLE_CHARS,
        seed=CARD_SEED, temperature=SampleOptions.temperature)
    atomic_write_text(path, front_matter(config, license_) + text)
    return [] if license_ else [f"the card names no licence: corpus {config['corpus']!r} has no 'license' "
                                "in its manifest"]


def _longest_backticks(text: str) -> int:
    return max(map(len, re.findall("`+", text)), default=0)

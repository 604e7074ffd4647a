"""The eval section of an exported model card: `gen eval`'s table for the card's samples.

Registered through ``register_card_sections`` (core never imports evals): the samples are scored
by the domain's checks beside real and corrupted held-out text of the training corpus when it is
prepared here, else on their own, and the table is shown as `gen eval` prints it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gen.core.hookspecs import hookimpl
from gen.core.workspace import CorpusDir


def eval_section(loaded: Any, samples: list[str], ws: Path) -> str | None:
    """Markdown: the eval table of ``samples`` (with the held-out columns where the corpus is here)."""
    from gen.evals.harness import score_texts
    from gen.evals.records import format_table

    corpus = loaded.ckpt["corpus"]
    against = corpus if CorpusDir.of(ws, corpus).is_prepared() else None
    report = score_texts(loaded.ckpt["domain"], samples, against, ws)
    where = (f"beside real and corrupted held-out text of `{corpus}`" if against else
             f"on their own (corpus `{corpus}` was not prepared where this was exported)")
    return (f"## Domain eval\n\n`gen eval {loaded.ckpt['domain']}` on the {len(samples)} samples above, {where}:\n\n"
            f"```text\n{format_table(report)}\n```\n")


@hookimpl
def register_card_sections(register) -> None:
    register(eval_section)

"""The one table renderer of every command that prints a table (eval, sweep, guided, neurons,
bench): columns padded to their widest cell, a rule under the header, or a Markdown table."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def fmt_num(v: float | None, digits: int = 4) -> str:
    """A metric value for a table: '-' when missing, ``digits`` significant digits, else grouped."""
    if v is None or v != v:  # None or NaN
        return "-"
    return f"{v:.{digits}g}" if abs(v) < 1e4 else f"{v:,.0f}"


def fmt_share(a: int, b: int) -> str:
    """``a`` of ``b`` as a percentage with the counts (``97% (92/95)``); '-' when ``b`` is 0."""
    return f"{a / b:.0%} ({a}/{b})" if b else "-"


def render(rows: Sequence[Sequence[Any]], header: Sequence[Sequence[Any]] = (), align: str = "",
           rule: str = "-", markdown: bool = False) -> str:
    """Rows of cells (anything with ``str``) as aligned text.

    ``header``: rows shown above the rule. ``align``: one character per column, ``<`` left or
    ``>`` right (missing columns: left). ``rule``: the character of the line under the header
    ("" for none). ``markdown``: a GitHub table instead (``align`` gives ``---:`` columns)."""
    body = [[str(c) for c in r] for r in rows]
    head = [[str(c) for c in r] for r in header]
    ncol = max((len(r) for r in [*head, *body]), default=0)
    align = (align + "<" * ncol)[:ncol]
    if markdown:
        lines = [f"| {' | '.join(r)} |" for r in head]
        lines.append("|" + "|".join("---:" if a == ">" else "---" for a in align) + "|")
        return "\n".join(lines + [f"| {' | '.join(r)} |" for r in body])
    widths = [max((len(r[i]) for r in [*head, *body] if i < len(r)), default=0) for i in range(ncol)]

    def line(r: list[str]) -> str:
        cells = [(c.rjust(w) if a == ">" else c.ljust(w)) for c, w, a in zip(r, widths, align, strict=False)]
        return "  ".join(cells).rstrip()

    lines = [line(r) for r in head]
    if head and rule:
        lines.append("  ".join(rule * w for w in widths))
    return "\n".join(lines + [line(r) for r in body])

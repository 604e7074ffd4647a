"""The LaTeX tracker's modes and frame tables, shared by the tracker and the closing text."""

import re
import string
from collections.abc import Iterable

from .scan import PLAIN_FORMULA

NORMAL, CMD, COMMENT, VERBATIM, VERB, AWAIT_BRACE, ENVNAME, TEXT_AWAIT = range(8)
LETTERS = frozenset(string.ascii_letters + "@")
TEXT_CMDS = frozenset({"text", "textrm", "textit", "textbf", "texttt", "textsf", "textsc", "textup", "textmd",
                       "textsl", "textnormal", "mbox", "hbox", "fbox", "intertext"})
# environments that may begin inside math (anything else there is banned by the math constraint)
MATH_INNER_ENVS = ("matrix", "pmatrix", "bmatrix", "Bmatrix", "vmatrix", "Vmatrix", "smallmatrix", "array",
                   "cases", "aligned", "alignedat", "gathered", "split", "subarray", "CD", "xy")
MATH_KINDS = ("$", "$$", "\\[", "\\(")
CLOSER = {"{": "}", "T{": "}", "$": "$", "$$": "$$", "\\[": "\\]", "\\(": "\\)", "left": "\\right."}

PLAIN_RUN = re.compile(r"[^\\{}$%\n]+")
LETTER_RUN = re.compile(r"[a-zA-Z@]+")
FORMULA = re.compile(PLAIN_FORMULA).match
NAME = re.compile(r"([^{}\\%$\n]*)\}").match
NAME_BAN = frozenset("{\\%$\n")
BRACES = ("{", "T{")
CMD_SPECIAL = frozenset({"begin", "end", "left", "right", "verb"}) | TEXT_CMDS


def prefix_table(names: Iterable[str]) -> dict[str, frozenset[str]]:
    """prefix -> characters that continue it into one of ``names`` ('}' when it is complete)."""
    table: dict[str, set[str]] = {}
    for name in names:
        for i in range(len(name)):
            table.setdefault(name[:i], set()).add(name[i])
        table.setdefault(name, set()).add("}")
    return {k: frozenset(v) for k, v in table.items()}


MATH_BEGIN = prefix_table(MATH_INNER_ENVS)

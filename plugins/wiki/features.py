"""Per-character structural features of wiki text, for finding interpretable cells.

in_link (inside ``[[ ]]``), in_template (``{{ }}``), in_url, in_xml_tag (inside ``<...>``
markup), in_text_element (content of ``<text>``), line_position (column), in_heading (on a
``== heading ==`` line). The XML and bracket state comes from the guided-sampling tracker, fed
in runs: characters that cannot change the state are filled in one numpy slice.
"""

from __future__ import annotations

import re

import numpy as np

from gen.core.api import code_points

from .tracker import DATA, PLAIN, WikiTracker

_HEADING = re.compile(r"(?:^|(?<=>))=[^\n]*=[ \t]*$", re.M)  # a page's first line follows <text ...>
_URL = re.compile(r"\b(?:https?|ftp)://[^\s\[\]<>\"{}|]+", re.I)


def wiki_features(text: str) -> dict[str, np.ndarray]:
    """Per-character structure of ``text``: inside a link, template, URL, XML tag, <text>,
    heading line; and the position in the line."""
    n = len(text)
    feats = {k: np.zeros(n, dtype=np.float32) for k in
             ("in_link", "in_template", "in_url", "in_xml_tag", "in_text_element", "line_position", "in_heading")}
    t = WikiTracker(enabled=())
    link, tpl, tag, txt = feats["in_link"], feats["in_template"], feats["in_xml_tag"], feats["in_text_element"]
    i = 0
    while i < n:
        if t.mode == DATA:
            m = PLAIN.match(text, i)
            if m:  # the state holds for the whole run
                t._plain_run(m.group())
                j = m.end()
                link[i:j], tpl[i:j] = t.n_link > 0, t.n_tpl > 0
                txt[i:j] = bool(t.stack) and t.stack[-1] == "text"
                i = j
                continue
        ch = text[i]
        before_link, before_tpl, before_tag = t.n_link, t.n_tpl, t.in_tag
        t._step(ch)
        # a character belongs to a link if one is open before or after it ("[[" and "]]" count)
        link[i] = before_link > 0 or t.n_link > 0 or t.pend == "["
        tpl[i] = before_tpl > 0 or t.n_tpl > 0 or t.pend == "{"
        tag[i] = t.in_tag or before_tag
        txt[i] = bool(t.stack) and t.stack[-1] == "text" and not tag[i]
        i += 1
    for m in _URL.finditer(text):
        feats["in_url"][m.start():m.end()] = 1.0
    if n:
        codes = code_points(text)  # lone surrogates kept: a sample is untrusted text
        idx = np.arange(n)
        nl_at = np.where(codes == 10, idx, -1)
        prev_nl = np.concatenate([[-1], np.maximum.accumulate(nl_at)[:-1]])  # last newline before i
        feats["line_position"][:] = idx - prev_nl - 1
        for m in _HEADING.finditer(text):
            feats["in_heading"][m.start():m.end()] = 1.0
    return feats

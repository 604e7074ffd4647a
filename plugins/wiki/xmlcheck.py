"""The XML layer of a wiki sample: the dump's elements, their nesting, and where wikitext lies.

A sample is a fragment: it may start inside a page (``...</text></revision></page>``) and stop
inside one. Close tags met with nothing open are "pre-context" closes and are fine as long as
they follow the dump's schema (``</text>`` then ``</revision>`` then ``</page>``); elements still
open at the end were cut, not left unclosed. What is counted:

* mismatched: a close tag for an element that is not open (or one the schema rules out);
* unclosed: an element skipped over by the close of an outer one (``<title>a</page>``);
* bad nesting: an element the dump schema does not allow where it was opened;
* well-formed: no such errors, and the fragment, closed at both ends, parses with expat
  guarded as defusedxml guards it (no DTD, no entity declaration, no external reference: a
  sample can be an entity bomb); a DTD is refused before the parser even sees the sample.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from xml.parsers import expat

from defusedxml.common import DefusedXmlException, DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden

# the MediaWiki export schema: element -> the elements it may appear in. Export 0.3 (enwik8)
# plus the few elements later export versions added, so newer dumps check the same way.
# "" stands for the document level (the parent of <mediawiki>).
PARENTS: dict[str, frozenset[str]] = {k: frozenset(v) for k, v in {
    "mediawiki": ("",), "siteinfo": ("mediawiki",), "sitename": ("siteinfo",), "dbname": ("siteinfo",),
    "base": ("siteinfo",), "generator": ("siteinfo",), "case": ("siteinfo",),
    "namespaces": ("siteinfo",), "namespace": ("namespaces",), "page": ("mediawiki",),
    "title": ("page",), "ns": ("page",), "id": ("page", "revision", "contributor"),
    "redirect": ("page",), "restrictions": ("page",), "revision": ("page",),
    "parentid": ("revision",), "timestamp": ("revision",), "contributor": ("revision",),
    "username": ("contributor",), "ip": ("contributor",), "minor": ("revision",),
    "comment": ("revision",), "model": ("revision",), "format": ("revision",),
    "text": ("revision",), "sha1": ("revision",), "origin": ("revision",),
}.items()}
ELEMENTS = frozenset(PARENTS)

_MARKUP = re.compile(r"<(/?)([A-Za-z_][\w.:-]*)([^<>]*)>")
_DTD = re.compile(r"<!(?:DOCTYPE|ENTITY|ELEMENT|ATTLIST)\b", re.I)
_ALT = "|".join(sorted(ELEMENTS))
_HAS_DUMP_TAG = re.compile(rf"</?(?:{_ALT})[\s/>]|<!(?:DOCTYPE|ENTITY)\b", re.I)
_TRAILING_PARTIAL = re.compile(r"(?:<[^<>]*|&[#\w]*)\Z")  # applied to the last 300 characters
_LEADING_DECL = re.compile(r"\A\s*<\?xml[^>]*\?>")
MAX_ISSUES = 12  # per kind and sample: enough to see the pattern, small records


def has_xml(sample: str) -> bool:
    """Whether a sample contains the dump's XML (any of its elements, or a DTD)."""
    return _HAS_DUMP_TAG.search(sample) is not None


@dataclass
class XmlScan:
    well_formed: bool = True
    mismatched: int = 0
    unclosed: int = 0
    bad_nesting: int = 0
    # (start, end, cut_start, cut_end) of each stretch of <text> content (wikitext, escaped)
    segments: list[tuple[int, int, bool, bool]] = field(default_factory=list)
    values: dict[str, list[tuple[int, str]]] = field(default_factory=dict)  # timestamp/id contents
    problems: list[tuple[str, str, int]] = field(default_factory=list)  # (kind, message, offset)
    open_at_end: list[str] = field(default_factory=list)
    per_kind: dict[str, int] = field(default_factory=dict)

    def problem(self, kind: str, message: str, offset: int) -> None:
        n = self.per_kind.get(kind, 0)
        if n < MAX_ISSUES:
            self.problems.append((kind, message, offset))
        self.per_kind[kind] = n + 1


def scan_xml(sample: str) -> XmlScan:
    """Tag-stack scan of a sample that contains the dump's XML (see the module docstring)."""
    res = XmlScan()
    m = _DTD.search(sample) if "<!" in sample else None
    if m:
        res.well_formed = False
        res.problem("xml_dtd", "DTD or entity declaration: a dump has none (never expanded)", m.start())
    stack: list[tuple[str, int, int]] = []  # (name, tag start, content start)
    pre_closed: list[str] = []  # pre-context closes, innermost first
    # the elements that may hold the stack-empty level, once tags have told us (None: unknown)
    context: frozenset[str] | None = None
    first_tag = True
    for m in _MARKUP.finditer(sample):
        slash, name, attrs = m.groups()
        was_first, first_tag = first_tag, False
        if not slash:
            ok = name in ELEMENTS
            if not ok:
                res.problem("xml_bad_nesting", f"<{name}> is not an element of the dump", m.start())
            elif stack:
                ok = stack[-1][0] in PARENTS[name]
                if not ok:
                    res.problem("xml_bad_nesting", f"<{name}> inside <{stack[-1][0]}>", m.start())
            elif context is None:
                context = PARENTS[name]
            elif context & PARENTS[name]:
                context = context & PARENTS[name]
            else:
                ok = False
                res.problem("xml_bad_nesting", f"<{name}> where the closes before it leave "
                            f"<{'/'.join(sorted(context)) or 'top level'}> open", m.start())
            res.bad_nesting += not ok
            if not attrs.endswith("/"):
                stack.append((name, m.start(), m.end()))
            elif name in ("timestamp", "id"):
                res.values.setdefault(name, []).append((m.start(), ""))
            continue
        if stack and stack[-1][0] == name:
            _, start, content = stack.pop()
            _closed(res, sample, name, start, content, m.start())
        elif any(s[0] == name for s in stack):
            while stack[-1][0] != name:  # the elements above it were never closed
                skipped = stack.pop()
                res.unclosed += 1
                res.problem("xml_unclosed", f"<{skipped[0]}> is never closed (</{name}> closes its parent)",
                            skipped[1])
            _, start, content = stack.pop()
            _closed(res, sample, name, start, content, m.start())
        elif not stack and name in ELEMENTS and (context is None or name in context):
            # closes an element opened before the sample started
            if name == "text" and was_first:
                res.segments.append((0, m.start(), True, False))
            pre_closed.append(name)
            context = PARENTS[name]
        else:
            res.mismatched += 1
            if stack:
                why = f"<{stack[-1][0]}> is open"
            elif name not in ELEMENTS:
                why = "the dump has no such element"
            else:
                why = f"the tags before it leave <{'/'.join(sorted(context or ())) or 'top level'}> open"
            res.problem("xml_mismatched", f"</{name}> but {why}", m.start())
    for name, _start, content in stack:
        if name == "text":
            res.segments.append((content, len(sample), False, True))
    res.segments = _disjoint(res.segments)
    res.open_at_end = [s[0] for s in stack]
    if res.mismatched or res.unclosed or res.bad_nesting:
        res.well_formed = False
    if res.well_formed:
        _parse_closed(res, sample, pre_closed, [s[0] for s in stack])
    return res


def _disjoint(segments: list[tuple[int, int, bool, bool]]) -> list[tuple[int, int, bool, bool]]:
    """Sorted segments clipped so that none overlaps (nested <text> in a broken sample would
    otherwise check the same text again and again)."""
    out, end = [], 0
    for a, b, cut_start, cut_end in sorted(segments):
        a = max(a, end)
        if a < b:
            out.append((a, b, cut_start, cut_end))
        end = max(end, b)
    return out


def _closed(res: XmlScan, sample: str, name: str, start: int, content: int, close: int) -> None:
    if name == "text":
        res.segments.append((content, close, False, False))
    elif name in ("timestamp", "id"):
        res.values.setdefault(name, []).append((content, sample[content:close]))


def _refuse_dtd(name, *_):
    raise DTDForbidden(name, None, None)


def _refuse_entity(name, *_):
    raise EntitiesForbidden(name, None, None, None, None, None)


def _refuse_external(context, base, system_id, public_id):
    raise ExternalReferenceForbidden(context, base, system_id, public_id)


def safe_parse(doc: str) -> None:
    """Parse ``doc`` with expat, refusing DTDs, entity declarations and external references
    with defusedxml's exceptions (the guards defusedxml installs, on a bare parser: no tree
    is built, several times faster: evals/BENCHMARKS.md, "Design measurements"). Raises ExpatError or a DefusedXmlException when bad."""
    p = expat.ParserCreate()
    p.StartDoctypeDeclHandler = _refuse_dtd
    p.EntityDeclHandler = _refuse_entity
    p.UnparsedEntityDeclHandler = _refuse_entity
    p.ExternalEntityRefHandler = _refuse_external
    p.Parse(doc, True)


def _parse_closed(res: XmlScan, sample: str, pre_closed: list[str], open_at_end: list[str]) -> None:
    """Close the fragment at both ends and parse it; a parse error makes it not well-formed."""
    body = _LEADING_DECL.sub("", sample, count=1)
    shift = len(sample) - len(body)
    end = body[-300:]  # a tag or entity cut by the sample's end (searching only the end is fast)
    body = body[:len(body) - len(end)] + _TRAILING_PARTIAL.sub("", end)
    head = "<r>" + "".join(f"<{n}>" for n in reversed(pre_closed))
    tail = "".join(f"</{n}>" for n in reversed(open_at_end)) + "</r>"
    try:
        safe_parse(head + body + tail)
    except expat.ExpatError as exc:
        res.well_formed = False
        offset = _offset(head + body, exc.lineno, exc.offset) - len(head) + shift
        offset = min(max(offset, 0), len(sample))
        res.problem("xml_not_well_formed", f"XML parser: {expat.errors.messages[exc.code]}", offset)
    except (DefusedXmlException, ValueError, RecursionError) as exc:
        res.well_formed = False
        res.problem("xml_not_well_formed", f"XML parser refused: {type(exc).__name__}", 0)


def _offset(text: str, line: int, col: int) -> int:
    pos = 0
    for _ in range(line - 1):
        nl = text.find("\n", pos)
        if nl < 0:
            break
        pos = nl + 1
    return pos + col

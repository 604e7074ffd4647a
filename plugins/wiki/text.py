"""Wikitext checks for wiki samples: bracket balance, emphasis, headings, tables, refs, invention.

Each check runs on "segments" of wikitext: the content of ``<text>`` elements (still
XML-escaped: brackets, quotes and ``=`` are unaffected, ``<ref>`` appears as ``&lt;ref&gt;``, so
offsets stay exact) or, for a sample without XML, the whole sample. A segment may be cut at its
start (the sample began inside it) and at its end (the sample stopped inside it); a check never
blames what a cut explains: a ``]]`` on the first line of a cut start, a ``[[`` still open on the
last line of a cut end. Everything is regex-driven (no per-character Python loop) for speed.

Scores are shares of units that are right (links, templates, refs, tables: tokens that pair;
emphasis and headings: lines), None when a sample has none of that unit.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

from .source import xml_unescape

MAX_ISSUES = 12

# regions whose content is not wikitext markup: comments, nowiki, math, pre, source (raw or escaped)
_OPAQUE_TOK = re.compile(r"(?:<|&lt;)(?:(!--)|(/?)(nowiki|math|pre|source|code|timeline)\b[^<>\n]{0,200}?"
                         r"(?:>|&gt;))|(--(?:>|&gt;))", re.I)
_BLANK = re.compile(r"[^\n]")
_OPAQUE_HINTS = ("!--", "owiki", "math", "pre", "ource", "code", "imeline", "OWIKI", "MATH", "PRE", "CODE")
_OPAQUE_START = re.compile(r"(?:<|&lt;)(?:!--|nowiki|math|pre|source|code|timeline)", re.I)
# innermost well-formed links / templates: removing them repeatedly settles balanced text fast
_LINK_PAIR = re.compile(r"\[\[[^\[\]\n]*\]\]")
_TPL_PAIR = re.compile(r"\{\{[^{}]*\}\}")
_LINK_TOK = re.compile(r"\[\[|\]\]|\n")
_TPL_TOK = re.compile(r"\{\{|\}\}|\n")
_EMPH_RUN = re.compile(r"'{2,}")
_HEADING = re.compile(r"^=[^\n]*", re.M)
_TABLE_TOK = re.compile(r"^[ \t:]*(\{\||\|\}(?!\}))", re.M)  # "|}}" ends a template parameter
_REF_TOK = re.compile(r"(?:<|&lt;)(/?)ref\b((?:(?!&gt;)[^<>\n]){0,300}?)(/?)(?:>|&gt;)", re.I)  # bounded: linear
# a line inside a block template: "| param", "}}", a nested template, or "name = value"
_TPL_CONTINUES = re.compile(r"[ \t]*(?:\||\}\}|\{\{|!|<|&lt;|\n|[^\n=|{}\[\]]{1,60}=)")
_PARAM = re.compile(r"[^\n=|{}\[\]]{1,60}=")
_LINK = re.compile(r"\[\[([^\[\]|\n]{1,255}?)(?:\|[^\[\]\n]*?)?\]\]")
_URL = re.compile(r"\b(?:https?|ftp)://[^\s\[\]<>\"{}|]+", re.I)
_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}\.?|"
                   r"\d{1,3}(?:\.\d{1,3}){3}|localhost")
_URL_PARTS = re.compile(r"(?:https?|ftp)://(?:[^@/?#]*@)?([^:/?#]*)(?::([^/?#]*))?([/?#].*)?", re.I | re.S)
_URL_CHARS = re.compile(r"[A-Za-z0-9\-._~:/?#@!$&'()*+,;=%]*")
_BAD_PCT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_TIMESTAMP = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})Z")
FIRST_EDIT = datetime(2001, 1, 1, tzinfo=timezone.utc)  # Wikipedia started on 2001-01-15


@dataclass
class Tally:
    """Counts for one sample: (ok, total) per unit, and the issues found."""

    units: dict[str, list[int]] = field(default_factory=dict)
    issues: list[tuple[str, str, int]] = field(default_factory=list)
    per_kind: dict[str, int] = field(default_factory=dict)

    def add(self, unit: str, ok: int, total: int) -> None:
        u = self.units.setdefault(unit, [0, 0])
        u[0] += ok
        u[1] += total

    def issue(self, kind: str, message: str, offset: int) -> None:
        n = self.per_kind.get(kind, 0)
        if n < MAX_ISSUES:
            self.issues.append((kind, message, offset))
        self.per_kind[kind] = n + 1

    def share(self, unit: str) -> float | None:
        ok, total = self.units.get(unit, (0, 0))
        return ok / total if total else None


def mask_opaque(view: str) -> str:
    """Blank out comments, nowiki, math, pre ... (same length, newlines kept). Openers and
    closers are paired in one linear pass: no backtracking over unclosed regions."""
    if not any(k in view for k in _OPAQUE_HINTS) or not _OPAQUE_START.search(view):
        return view
    spans = []
    want, start = "", -1  # the closer we wait for, and where its region began
    for m in _OPAQUE_TOK.finditer(view):
        if not want:
            if m.group(1) == "!--":
                want, start = "-->", m.start()
            elif m.group(2) == "" and m.group(3):
                want, start = m.group(3).lower(), m.start()
        elif (want == "-->" and m.group(4)) or (m.group(2) == "/" and (m.group(3) or "").lower() == want):
            spans.append((start, m.end()))
            want = ""
    if not spans:
        return view
    parts, pos = [], 0
    for a, b in spans:
        parts.append(view[pos:a])
        parts.append(_BLANK.sub(" ", view[a:b]))
        pos = b
    parts.append(view[pos:])
    return "".join(parts)


def check_wikitext(view: str, base: int, cut_start: bool, cut_end: bool, tally: Tally) -> None:
    """All structural checks on one segment ``view`` (found at offset ``base`` of the sample)."""
    view = mask_opaque(view)
    last_nl = view.rfind("\n")
    first_line_end = view.find("\n") if "\n" in view else len(view)
    # the last line is partial when the segment was cut at its end without a final newline
    partial_from = last_nl + 1 if cut_end and not view.endswith("\n") else len(view) + 1
    _links(view, base, cut_start, first_line_end, partial_from, tally)
    _templates(view, base, cut_start, cut_end, first_line_end, tally)
    _emphasis(view, base, partial_from, tally)
    _headings(view, base, partial_from, tally)
    _tables(view, base, cut_start, cut_end, tally)
    _refs(view, base, cut_start, cut_end, tally)


def _pairs_only(view: str, pair: re.Pattern[str], opener: str, closer: str) -> int | None:
    """The number of pairs when removing innermost pairs leaves no stray bracket, else None
    (then the token scan finds what is wrong, and where)."""
    n = view.count(opener)
    if n == view.count(closer) and len(pair.findall(view)) == n:
        return n  # every pair is flat: the common case, settled in one pass
    n = 0
    for _ in range(6):  # deeper nesting (or a pathological sample) goes to the linear scan
        view, k = pair.subn("", view)
        if not k:
            return None if opener in view or closer in view else n
        n += k
    return None


def _links(view: str, base: int, cut_start: bool, first_end: int, partial_from: int, t: Tally) -> None:
    if "[[" not in view and "]]" not in view:
        return
    n = _pairs_only(view, _LINK_PAIR, "[[", "]]")
    if n is not None:
        t.add("links", n, n)
        return
    opens: list[int] = []
    ok = bad = 0
    for m in _LINK_TOK.finditer(view):
        g, p = m.group(), m.start()
        if g == "[[":
            opens.append(p)
        elif g == "]]":
            if opens:
                opens.pop()
                ok += 1
            elif not (cut_start and p < first_end):
                bad += 1
                t.issue("link_unbalanced", "]] closes no [[ on its line", base + p)
        elif opens:  # links do not span lines (bar a few image captions)
            bad += len(opens)
            t.issue("link_unbalanced", "[[ not closed on its line", base + opens[0])
            opens = []
    if opens and opens[0] < partial_from:
        bad += len(opens)
        t.issue("link_unbalanced", "[[ not closed on its line", base + opens[0])
    t.add("links", ok, ok + bad)


def _templates(view: str, base: int, cut_start: bool, cut_end: bool, first_end: int, t: Tally) -> None:
    if "{{" not in view and "}}" not in view:
        return
    n = _pairs_only(view, _TPL_PAIR, "{{", "}}")
    if n is not None:
        t.add("templates", n, n)
        return
    stack: list[tuple[int, bool]] = []  # (offset, its line has ended)
    ok = bad = 0
    for m in _TPL_TOK.finditer(view):
        g, p = m.group(), m.start()
        if g == "{{":
            stack.append((p, False))
        elif g == "}}":
            if stack:
                stack.pop()
                ok += 1
                continue
            line_start = view.rfind("\n", 0, p) + 1
            before = view[line_start:p].lstrip()
            # a block template's "}}" (alone on its line, or after a "| param = value")
            if (cut_start and p < first_end) or not before or before[0] in "|}" or _PARAM.match(before):
                continue
            bad += 1
            t.issue("template_unbalanced", "}} closes no {{", base + p)
        else:
            # a template still open at a line end must continue as a block template:
            # the next line starts with "|", "}}" ... ; otherwise its "}}" is missing
            fresh = [i for i, (_, ended) in enumerate(stack) if not ended]
            if not fresh:
                continue
            nxt = m.end()
            if nxt >= len(view) or _TPL_CONTINUES.match(view, nxt) or view.startswith("}}", nxt):
                stack = [(o, True) for o, _ in stack]
                continue
            for i in reversed(fresh):
                bad += 1
                t.issue("template_unbalanced", "{{ not closed (the next line does not continue it)",
                        base + stack[i][0])
                del stack[i]
            stack = [(o, True) for o, _ in stack]
    if stack and not cut_end:
        bad += len(stack)
        t.issue("template_unbalanced", "{{ never closed", base + stack[0][0])
    t.add("templates", ok, ok + bad)


def _emphasis(view: str, base: int, partial_from: int, t: Tally) -> None:
    if "''" not in view:
        return
    ok = total = 0
    start = 0
    for line in view.split("\n"):
        if "''" in line and start < partial_from:
            italic = bold = 0
            for run in _EMPH_RUN.findall(line):
                n = len(run)
                italic += n == 2 or n >= 5
                bold += n in (3, 4) or n >= 5
            total += 1
            # both odd is fine: MediaWiki then reads one bold run as an apostrophe + italic
            if italic % 2 == bold % 2:
                ok += 1
            else:
                t.issue("emphasis_unpaired", "unpaired '' or ''' on the line", base + start)
        start += len(line) + 1
    t.add("emphasis", ok, total)


def _headings(view: str, base: int, partial_from: int, t: Tally) -> None:
    if "=" not in view:
        return
    ok = total = 0
    for m in _HEADING.finditer(view):
        if m.start() >= partial_from:
            continue
        line = m.group().rstrip()
        left = len(line) - len(line.lstrip("="))
        right = len(line) - len(line.rstrip("="))
        total += 1
        if left == right and left <= 6 and line.strip("= \t"):
            ok += 1
        else:
            t.issue("heading_unbalanced", f"heading with {left} '=' before and {right} after", base + m.start())
    t.add("headings", ok, total)


def _tables(view: str, base: int, cut_start: bool, cut_end: bool, t: Tally) -> None:
    if "{|" not in view and "|}" not in view:
        return
    depth = ok = bad = 0
    open_at = -1
    for m in _TABLE_TOK.finditer(view):
        if m.group(1) == "{|":
            depth += 1
            open_at = m.start(1)
        elif depth:
            depth -= 1
            ok += 1
        elif not cut_start:  # tables nest: a cut start may be several tables deep
            bad += 1
            t.issue("table_unbalanced", "|} closes no {|", base + m.start(1))
    if depth and not cut_end:
        bad += depth
        t.issue("table_unbalanced", "{| never closed", base + open_at)
    t.add("tables", ok, ok + bad)


def _refs(view: str, base: int, cut_start: bool, cut_end: bool, t: Tally) -> None:
    if "ref" not in view and "REF" not in view:
        return
    open_at = -1
    seen_open = False
    ok = bad = 0
    for m in _REF_TOK.finditer(view):
        if m.group(3):  # <ref name="x" />: complete on its own
            continue
        if not m.group(1):
            if open_at >= 0:
                bad += 1
                t.issue("ref_unbalanced", "<ref> not closed before the next <ref>", base + open_at)
            open_at, seen_open = m.start(), True
        elif open_at >= 0:
            ok += 1
            open_at = -1
        elif not (cut_start and not seen_open):
            bad += 1
            t.issue("ref_unbalanced", "</ref> closes no <ref>", base + m.start())
    if open_at >= 0 and not cut_end:
        bad += 1
        t.issue("ref_unbalanced", "<ref> never closed", base + open_at)
    t.add("refs", ok, ok + bad)


# ---- invention ----------------------------------------------------------------------------

# namespaces and interwiki prefixes: such links name no article of the corpus
_NAMESPACES = frozenset("""media special talk user wikipedia image file mediawiki template help category
portal project wiktionary wikiquote wikisource wikibooks wikinews wikispecies wikt meta commons w q s b n
simple""".split())
_LANG = re.compile(r"[a-z]{2,3}(?:-[a-z]+)*")


@functools.lru_cache(maxsize=1 << 16)
def normalize_title(title: str) -> str:
    """A link target or page title as MediaWiki compares them: no anchor, spaces for
    underscores, collapsed whitespace, first letter upper case."""
    title = xml_unescape(title).split("#", 1)[0].replace("_", " ")
    title = " ".join(title.split())
    return title[:1].upper() + title[1:]


@functools.lru_cache(maxsize=1 << 16)
def article_target(raw: str) -> str:
    """The normalized title a link's target names, or "" for a namespace or interwiki link."""
    if ":" in raw:
        prefix = raw.split(":", 1)[0].strip().lower()
        if not prefix or prefix.split()[0] in _NAMESPACES or _LANG.fullmatch(prefix) \
                or prefix.endswith(" talk"):
            return ""
    return normalize_title(raw)


def link_raw_targets(view: str) -> list[str]:
    """The target part of every [[link]] of a segment, as written."""
    return _LINK.findall(view)


def link_targets(view: str) -> list[tuple[int, str]]:
    """(offset, normalized target) of the article links of a segment."""
    out = []
    for m in _LINK.finditer(view):
        target = article_target(m.group(1))
        if target:
            out.append((m.start(1), target))
    return out


def url_ok(url: str) -> bool:
    """A well-formed http(s)/ftp URL: valid host, port 0-65535, RFC 3986 characters."""
    m = _URL_PARTS.fullmatch(url)
    if m is None:
        return False
    host, port, rest = m.group(1), m.group(2), m.group(3) or ""
    if not _HOST.fullmatch(host) or (port is not None and not (port.isdigit() and int(port) < 65536)):
        return False
    return _URL_CHARS.fullmatch(rest) is not None and not _BAD_PCT.search(rest)


def check_urls(view: str, base: int, sample_len: int, tally: Tally) -> None:
    if "://" not in view:
        return
    ok = total = 0
    for m in _URL.finditer(view):
        url = m.group()
        for stop in ("&lt;", "&gt;", "&quot;"):  # escaped markup after a URL is not part of it
            url = url.split(stop, 1)[0]
        url = url.rstrip(".,;:!?)'")
        if base + m.start() + len(m.group()) >= sample_len:
            continue  # cut by the sample's end
        total += 1
        if url_ok(url):
            ok += 1
        else:
            tally.issue("url_malformed", f"malformed URL {url[:80]!r}", base + m.start())
    tally.add("urls", ok, total)


def check_values(values: dict[str, list[tuple[int, str]]], tally: Tally, now: datetime) -> None:
    """<timestamp> holds a real date-time between 2001 and now; <id> holds a number."""
    stamps = values.get("timestamp", [])
    ok = 0
    for off, text in stamps:
        try:
            m = _TIMESTAMP.fullmatch(text)
            if not m:
                raise ValueError("not YYYY-MM-DDTHH:MM:SSZ")
            when = datetime(*map(int, m.groups()), tzinfo=timezone.utc)  # ValueError if no such date
            if not FIRST_EDIT <= when <= now:
                raise ValueError("outside 2001..now")
            ok += 1
        except ValueError as exc:
            tally.issue("timestamp_invalid", f"timestamp {text[:40]!r}: {exc}", off)
    tally.add("timestamps", ok, len(stamps))
    ids = values.get("id", [])
    ok = 0
    for off, text in ids:
        if text.isascii() and text.isdigit():
            ok += 1
        else:
            tally.issue("id_not_number", f"<id> holds {text[:40]!r}", off)
    tally.add("ids", ok, len(ids))

"""Structure tracker for wiki text (guided sampling; :mod:`.features` reuses it for neurons).

The tracker is a small state machine fed one character at a time. It follows two layers:

* XML: the stack of open dump elements. Inside ``<text>`` (whose wikitext is XML-escaped, so a
  raw ``<`` never occurs there in a real dump) a ``<`` may only start ``</text>``; after ``</``
  only the characters continuing the innermost open element's name are allowed (no
  ``</title>`` inside ``<text>``); after ``&`` only a valid XML entity may follow. A close met
  with nothing open (the sample began inside a page) must follow the dump schema.
* wikitext (inside ``<text>``, or everywhere before any XML is seen, as in ``--text-only``
  corpora): a stack of ``[[`` and ``{{``; a ``]]`` may not close a ``{{`` and a ``}}`` may not
  close a ``[[``. Comments, ``<math>``, ``<nowiki>``, ``<pre>`` ... are skipped.

``closing()`` completes a cut tag or entity, closes the wikitext brackets innermost first,
then the XML elements, indented as in a dump. Constraints are cached per state, so
``constraint()`` is a few attribute reads and a dict lookup.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from gen.core.api import FREE, Constraint, Tracker

from .xmlcheck import ELEMENTS, PARENTS

DATA, LT, OPEN, ATTR, QUOTE, CLOSE, ENTITY, OTHER = range(8)
CONTAINERS = frozenset({"mediawiki", "siteinfo", "namespaces", "page", "revision", "contributor", "upload"})
_INDENT = {"mediawiki": 0, "siteinfo": 2, "namespaces": 4, "page": 2, "revision": 4, "contributor": 6}
_ENTITIES = ("lt;", "gt;", "amp;", "quot;", "apos;")
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.:")
_DIGITS, _HEX = frozenset("0123456789"), frozenset("0123456789abcdefABCDEF")
# regions whose content is not markup: (escaped opener, escaped closer) and raw tag names
_OPAQUE_ESCAPED = [("&lt;!--", "--&gt;")] + [(f"&lt;{n}&gt;", f"&lt;/{n}&gt;")
                                            for n in ("math", "nowiki", "pre", "source", "code", "timeline")]
_OPAQUE_RAW = frozenset({"math", "nowiki", "pre", "source", "code", "timeline"})
PLAIN = re.compile(r"[^<&\[\]{}|;\->]+")  # characters that never change the state in DATA mode


class WikiTracker(Tracker):
    """See the module docstring. ``in_*`` properties expose the state for features."""

    constraints = ("xml", "links", "templates")

    def __init__(self, enabled: Iterable[str] | None = None) -> None:
        super().__init__(enabled)
        self.xml_on, self.links_on = "xml" in self.enabled, "links" in self.enabled
        self.templates_on = "templates" in self.enabled
        self.mode = DATA
        self.stack: list[str] = []  # open XML elements
        self.name = ""  # tag name or entity being read
        self.quote = ""
        self.slash = False  # "/" just before ">" makes a tag self-closing
        self.ret = DATA  # mode an entity returns to
        self.pre: frozenset[str] | None = None  # what a close with nothing open may name
        self.known = False  # a dump element was seen: XML rules apply
        self.w: list[str] = []  # open "[[" / "{{"
        self.n_link = self.n_tpl = 0
        self.pend = ""  # a bracket that may pair with the next character
        self.sb = 0  # open single braces (math, CSS, tables) consume "}" first
        self.opaque = ""  # the closer of the opaque region we are in
        self.tail = ""  # last characters, to spot opaque regions
        self._bad = 0
        self._cache: dict[tuple, Constraint] = {}

    # ---- state ----------------------------------------------------------------------------
    @property
    def wiki_active(self) -> bool:
        return not self.known or (bool(self.stack) and self.stack[-1] == "text")

    @property
    def in_tag(self) -> bool:
        return self.mode in (LT, OPEN, ATTR, QUOTE, CLOSE, OTHER)

    def violations(self) -> int:
        return self._bad

    def feed(self, ch: str) -> None:
        c = self.constraint()
        if c is not FREE and ((c.allow is not None and ch not in c.allow) or ch in c.ban):
            self._bad += 1
        self._step(ch)

    def feed_text(self, text: str) -> None:
        """Feed a whole text: runs of plain characters in character data go in one step (they
        are never banned and only resolve a pending bracket), the rest one by one."""
        i, n = 0, len(text)
        while i < n:
            if self.mode == DATA:
                m = PLAIN.match(text, i)
                if m:
                    self._plain_run(m.group())
                    i = m.end()
                    continue
            self.feed(text[i])
            i += 1

    def _plain_run(self, run: str) -> None:
        if self.wiki_active:
            if self.pend:
                self._resolve()
            self.tail = (self.tail + run[-16:])[-16:]

    def _step(self, ch: str) -> None:
        m = self.mode
        if m == DATA:
            if ch == "<":
                self._resolve()
                self.mode = LT
            elif ch == "&" and self.known:
                self._resolve()
                self.tail += ch
                self.mode, self.name, self.ret = ENTITY, "", DATA
            else:
                self._wiki(ch)
        elif m == LT:
            if ch == "/":
                self.mode, self.name = CLOSE, ""
            elif ch.isalpha() or ch == "_":
                self.mode, self.name = OPEN, ch
            elif ch in "!?":
                self.mode = OTHER
            else:
                self.mode = DATA
                self._step(ch)
        elif m == OPEN:
            if ch in _NAME_CHARS:
                self.name += ch
            elif ch == ">":
                self.mode = DATA
                self._open(self.name)
            elif ch == "/" or ch.isspace():
                self.mode, self.slash = ATTR, ch == "/"
            else:
                self.mode = DATA
                self._step(ch)
        elif m == ATTR:
            if ch == ">":
                self.mode = DATA
                if not self.slash:
                    self._open(self.name)
                elif self.name in ELEMENTS:
                    self.known = True
            elif ch == '"' or ch == "'":
                self.mode, self.quote, self.slash = QUOTE, ch, False
            elif ch == "/":
                self.slash = True
            elif ch == "\n" and not self.known:
                self.mode = DATA  # not a tag after all (text-only wikitext: "a <b\n")
            elif not ch.isspace():
                self.slash = False
        elif m == QUOTE:
            if ch == self.quote:
                self.mode = ATTR
            elif ch == "&" and self.known:
                self.mode, self.name, self.ret = ENTITY, "", QUOTE
        elif m == CLOSE:
            if ch == ">":
                self.mode = DATA
                self._close(self.name)
            elif ch in _NAME_CHARS:
                self.name += ch
            elif not ch.isspace():
                self.mode = DATA
                self._step(ch)
        elif m == ENTITY:
            if self.ret == DATA:
                self.tail = (self.tail + ch)[-16:]
            if ch == ";":
                self.mode = self.ret
                if self.ret == DATA and self.wiki_active:
                    self._delimiter()
            elif (ch.isalnum() or ch == "#") and len(self.name) < 12:
                self.name += ch
            else:
                self.mode = self.ret
                self._step(ch)
        elif ch == ">":  # OTHER: a comment, PI or declaration, skipped
            self.mode = DATA

    def _open(self, name: str) -> None:
        dump = name in ELEMENTS
        self.known = self.known or dump
        if not dump and not self.known:
            if name.lower() in _OPAQUE_RAW and not self.opaque:
                self.opaque = f"</{name.lower()}>"  # raw <math> in unescaped wikitext
            return
        if not self.stack:
            self.pre = PARENTS.get(name)
        self.stack.append(name)
        if name == "text":
            self._reset_wiki()

    def _close(self, name: str) -> None:
        dump = name in ELEMENTS
        self.known = self.known or dump
        if self.opaque and self.opaque == f"</{name.lower()}>":
            self.opaque = ""
            return
        st = self.stack
        if st and st[-1] == name:
            st.pop()
        elif name in st:
            while st.pop() != name:
                pass
        elif not st and dump:
            self.pre = PARENTS[name]
        else:
            return
        if name == "text":
            self._reset_wiki()

    def _reset_wiki(self) -> None:
        self.w, self.n_link, self.n_tpl, self.pend, self.sb, self.opaque = [], 0, 0, "", 0, ""

    # ---- wikitext -------------------------------------------------------------------------
    def _resolve(self) -> None:
        if self.pend == "{":
            self.sb += 1
        self.pend = ""

    def _wiki(self, ch: str) -> None:
        if not self.wiki_active:
            return
        self.tail = (self.tail + ch)[-16:]
        if self.opaque:
            if ch in ";->":
                self._delimiter()
            return
        p = self.pend
        if p == "{" and ch == "|":  # "{|" opens a table, not a brace
            self.pend = ""
            return
        if ch == "[" or ch == "{":
            if p == ch:
                self.w.append(ch + ch)
                if ch == "[":
                    self.n_link += 1
                else:
                    self.n_tpl += 1
                self.pend = ""
            else:
                self._resolve()
                self.pend = ch
        elif ch == "]" or ch == "}":
            if p == ch:
                self._pop("[[" if ch == "]" else "{{")
                self.pend = ""
            else:
                self._resolve()
                if ch == "}" and self.sb and self.tail[-2:-1] != "|":  # "|}" ends a table
                    self.sb -= 1  # a single brace closes first: {x^{2}} is not a template end
                else:
                    self.pend = ch
        else:
            if p:
                self._resolve()
            if ch in ";->":
                self._delimiter()

    def _pop(self, tok: str) -> None:
        w = self.w
        if tok not in w:
            return
        while True:
            t = w.pop()
            if t == "[[":
                self.n_link -= 1
            else:
                self.n_tpl -= 1
            if t == tok:
                return

    def _delimiter(self) -> None:
        """After ";", "-" or ">": an escaped comment/math/nowiki ... region opens or closes."""
        if self.opaque:
            if self.tail.endswith(self.opaque):
                self.opaque = ""
            return
        for opener, closer in _OPAQUE_ESCAPED:
            if self.tail.endswith(opener):
                self.opaque = closer
                return

    # ---- guidance -------------------------------------------------------------------------
    def constraint(self) -> Constraint:
        m = self.mode
        if m == DATA:
            p = self.pend
            if not p or not self.w or self.opaque:
                return FREE
            # "]]" would close the "[[" below an open "{{" (or "}}" the "{{" below a "[["); with
            # nothing of its kind open it closes nothing, which real pages do now and then
            if p == "]" and self.links_on and self.w[-1] == "{{" and self.n_link and self.wiki_active:
                return self._cached(("ban", "]"), lambda: Constraint(ban=frozenset("]")))
            if p == "}" and self.templates_on and self.w[-1] == "[[" and self.n_tpl and self.wiki_active:
                return self._cached(("ban", "}"), lambda: Constraint(ban=frozenset("}")))
            return FREE
        if not self.xml_on or not self.known:
            return FREE
        if m == LT:
            if self.stack and self.stack[-1] in ELEMENTS and self.stack[-1] not in CONTAINERS:
                return self._cached(("lt",), lambda: Constraint(allow=frozenset("/")))
            return FREE
        if m == CLOSE:
            return self._close_constraint()
        if m == ENTITY:
            return self._entity_constraint()
        return FREE

    def _cached(self, key: tuple, make) -> Constraint:
        c = self._cache.get(key)
        if c is None:
            c = self._cache[key] = make()
        return c

    def _close_constraint(self) -> Constraint:
        name = self.name
        if self.stack:
            names: Iterable[str] = (self.stack[-1],)
        elif self.pre is not None:
            names = self.pre
        else:
            return FREE
        key = ("close", name, names if isinstance(names, frozenset) else names[0])
        c = self._cache.get(key)
        if c is None:
            nxt = {n[len(name)] for n in names if n.startswith(name) and len(n) > len(name)}
            if name in names:
                nxt.add(">")
            c = self._cache[key] = Constraint(allow=frozenset(nxt)) if nxt else FREE
        return c

    def _entity_constraint(self) -> Constraint:
        name = self.name
        if name.startswith("#"):
            digits = name[2:] if name[1:2] in ("x", "X") else name[1:]
            hexa = name[1:2] in ("x", "X")
            key = ("ent#", hexa, bool(digits), len(name) == 1)
            if key not in self._cache:
                if len(name) == 1:
                    allow = _DIGITS | {"x", "X"}
                else:
                    allow = (_HEX if hexa else _DIGITS) | ({";"} if digits else set())
                self._cache[key] = Constraint(allow=frozenset(allow))
            return self._cache[key]
        key = ("ent", name)
        c = self._cache.get(key)
        if c is None:
            nxt = {e[len(name)] for e in _ENTITIES if e.startswith(name)}
            if not name:
                nxt.add("#")
            c = self._cache[key] = Constraint(allow=frozenset(nxt)) if nxt else FREE
        return c

    # ---- closing --------------------------------------------------------------------------
    def closing(self) -> str:
        out: list[str] = []
        stack = list(self.stack)
        m = self.mode
        if m == ENTITY:
            if self.name.startswith("#"):  # a space, if no digit was written yet
                out.append({"#": "32;", "#x": "20;", "#X": "20;"}.get(self.name, ";"))
            else:
                full = next((e for e in _ENTITIES if e.startswith(self.name)), None)
                out.append(full[len(self.name):] if full else ";")
            m = self.ret
        if m == QUOTE:
            out.append(self.quote)
            m = ATTR
        if m in (OPEN, ATTR):
            out.append(">")
            if self.known or self.name in ELEMENTS:
                stack.append(self.name)
        elif m == LT and stack:
            out.append(f"/{stack.pop()}>")
        elif m == CLOSE:
            target = stack[-1] if stack else next(iter(sorted(self.pre or ())), "")
            if target.startswith(self.name):
                out.append(target[len(self.name):] + ">")
                if stack:
                    stack.pop()
            else:
                out.append(">")
        elif m == OTHER:
            out.append(">")
        if not self.known or (stack and stack[-1] == "text"):  # wikitext is open here
            if self.opaque:
                out.append(self.opaque)
            w = list(self.w)
            if w and self.pend == {"[[": "]", "{{": "}"}[w[-1]]:
                out.append(self.pend)  # "[[a]" needs one more "]"
                w.pop()
            out.extend("]]" if t == "[[" else "}}" for t in reversed(w))
        for name in reversed(stack):
            if name in _INDENT:
                out.append("\n" + " " * _INDENT[name])
            out.append(f"</{name}>")
        return "".join(out)

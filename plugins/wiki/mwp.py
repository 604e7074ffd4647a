"""mwparserfromhell as a second opinion on wikitext, with a hard time limit.

mwparserfromhell reads real wikitext slowly (evals/BENCHMARKS.md, "Design measurements") and never raises, but on broken markup
(bracket soup, which a young model writes) its tokenizer backtracks for seconds or minutes
even on 2 kB. So it runs in a worker process: each call waits at most ``timeout`` seconds,
after which the worker is killed (and restarted on the next call) and the call returns None.
"""

from __future__ import annotations

import atexit
import multiprocessing as mp
from typing import Any


def _count(text: str) -> tuple[int, int]:
    import mwparserfromhell

    code = mwparserfromhell.parse(text, skip_style_tags=True)
    links = sum(1 for _ in code.ifilter_wikilinks(recursive=True))
    templates = sum(1 for _ in code.ifilter_templates(recursive=True))
    return links, templates


def _serve(conn: Any) -> None:
    while True:
        try:
            text = conn.recv()
        except (EOFError, OSError):
            return
        try:
            conn.send(_count(text))
        except Exception as exc:  # RecursionError on deep nesting, anything else: no opinion
            conn.send(type(exc).__name__)


class MwpWorker:
    """One worker process, started on first use."""

    def __init__(self) -> None:
        self.proc: Any = None
        self.conn: Any = None

    def _start(self) -> None:
        methods = mp.get_all_start_methods()
        ctx = mp.get_context("fork" if "fork" in methods else "spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child,), daemon=True, name="gen-wiki-mwparser")
        self.proc.start()
        child.close()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.join(timeout=5)
            self.conn.close()
        self.proc = self.conn = None

    def count(self, text: str, timeout: float) -> tuple[int, int] | str | None:
        """(wikilinks, templates) mwparserfromhell finds in ``text``; an exception name when
        it failed; None when it ran out of time (the worker is then replaced)."""
        if self.proc is None or not self.proc.is_alive():
            self._start()
        self.conn.send(text)
        if self.conn.poll(timeout):
            return self.conn.recv()
        self.stop()
        return None


WORKER = MwpWorker()
atexit.register(WORKER.stop)

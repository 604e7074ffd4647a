"""Which inner loops run compiled: ``FAST`` is the C module built from evals/copydetect/_copyfast.c, or
None where the install had no C compiler (the extension is optional) or GEN_PURE_NUMPY is set.
Its callers (grams.window_hashes and distinct_count, CopyIndex._lookup, Matcher.longest) then
run their numpy versions, which give the same figures (tests/evals/test_compiled.py)."""

from __future__ import annotations

import os
from types import ModuleType

PURE_ENV = "GEN_PURE_NUMPY"  # set (non-empty): use the numpy versions even where the C module is built


def _load() -> ModuleType | None:
    if os.environ.get(PURE_ENV):
        return None
    try:
        from gen.evals.copydetect import _copyfast
    except ImportError:
        return None
    return _copyfast


FAST = _load()

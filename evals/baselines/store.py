"""The n-gram baselines of a prepared corpus, built once and cached beside it: every order's
figures (``gen baseline``) and the best order's sampling table (`gen eval`'s n-gram column).

The cache (``ngram-kK.DIGEST.json``, named by core/workspace.py CorpusDir) holds every order's
figures; its digest is the corpus's, so `gen prepare` of other text makes it stale, and it is
rebuilt. It is written atomically at the end: Ctrl-C during a build leaves nothing half-written.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from gen.core.atomic import atomic_write_text
from gen.core.data import CorpusData
from gen.core.errors import GenError
from gen.core.shapes import available
from gen.core.workspace import CorpusDir
from gen.evals.baselines.ngram import OrderResult, check_order, kn_losses, memory_needed
from gen.evals.baselines.sampler import SAMPLER_CHARS, TABLES, NgramSampler, build

FORMAT = 1  # bump when the cached figures change meaning


def cached(data: CorpusData, order: int | None = None) -> list[OrderResult] | None:
    """Every order's figures up to ``order`` (None: every order cached) from the cache, when a
    cache of this corpus's text holds them (a cache of a higher order serves a lower one)."""
    for path in CorpusDir(data.path).stale_baselines():
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if doc.get("format") == FORMAT and doc.get("digest") == data.digest and doc.get("order", 0) >= (order or 1):
            return [OrderResult(**r) for r in doc["results"][:order]]
    return None


def baselines(data: CorpusData, order: int, log: Callable[[str], None] = lambda _m: None,
              rebuild: bool = False) -> tuple[list[OrderResult], bool]:
    """Every order's results for ``data`` up to ``order``, from the cache when it is there;
    returns them and whether they were cached."""
    folder = CorpusDir(data.path)
    train, val = data.ids("train"), data.ids("val")
    check_order(order, len(train))
    found = None if rebuild else cached(data, order)
    if found is not None:
        return found, True
    need, free = memory_needed(len(train), len(val)), available("cpu")
    if free is not None and need > free:
        raise GenError(f"n-gram baselines of {len(train) + len(val):,} characters need about {need / 1e9:.1f} GB; "
                       f"{free / 1e9:.1f} GB is available. Free memory, or prepare a smaller corpus")
    log(f"building n-gram models of orders 1-{order} on {len(train):,} training characters ...")
    results = kn_losses(train, val, len(data.vocab), order,
                        on_order=lambda r: log(f"  order {r.order}: {r.val_nats:.4f} nats/char ({r.build_s:.1f} s)"))
    doc = {"format": FORMAT, "digest": data.digest, "order": order, "corpus": data.name,
           "results": [{k: v for k, v in r.to_dict().items() if k != "val_bpc"} for r in results]}
    try:
        for old in folder.stale_baselines():  # another corpus state's or order's figures
            old.unlink(missing_ok=True)
        atomic_write_text(folder.baseline(order, data.digest), json.dumps(doc, indent=1))
    except OSError:
        pass  # a read-only corpus folder: rebuilt next time
    return results, False


def sampler_for(data: CorpusData, log: Callable[[str], None] = lambda _m: None) -> NgramSampler:
    """The sampler of the best n-gram order for the text its table is built from (the first
    SAMPLER_CHARS training characters), its table loaded from beside the corpus or built and
    saved there; the table's name records its order."""
    folder, train = CorpusDir(data.path), data.ids("train")
    order = _sampler_order(data, log)
    key = f"{data.digest}-k{order}-v{FORMAT}"
    table = {name: folder.read_index(name, key, mmap=True) for name in TABLES}
    if any(arr is None for arr in table.values()):
        separator = data.vocab.stoi.get(data.separator[:1]) if data.separator else None
        table = build(train, order, separator)
        for name, arr in table.items():
            folder.write_index(name, key, arr)
    return NgramSampler(table, train, order)


def _sampler_order(data: CorpusData, log: Callable[[str], None]) -> int:
    """The order of a table already built for this text; else `gen baseline`'s best when its
    figures are cached or the corpus is no longer than the table's text; else the best measured
    on the table's text (and a validation cut of the same share), never the whole corpus."""
    from gen.evals.baselines.ngram import DEFAULT_ORDER, best

    for path in CorpusDir(data.path).stale_indexes(TABLES[0]):
        m = re.fullmatch(rf"{TABLES[0]}\.{data.digest}-k(\d+)-v{FORMAT}\.npy", path.name)
        if m:
            return int(m.group(1))
    train, val = data.ids("train"), data.ids("val")
    order = min(DEFAULT_ORDER, max(1, len(train)))
    if len(train) <= SAMPLER_CHARS:
        return best(baselines(data, order, log)[0]).order
    found = cached(data, order)
    if found is not None:
        return best(found).order
    log(f"n-gram orders 1-{order} on the first {SAMPLER_CHARS:,} training characters, for the n-gram column ...")
    cut = int(len(val) * SAMPLER_CHARS / len(train)) or len(val)
    return best(kn_losses(train[:SAMPLER_CHARS], val[:cut], len(data.vocab), order)).order

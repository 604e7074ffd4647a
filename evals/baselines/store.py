"""The n-gram baselines of a prepared corpus, built once and cached beside it: every order's
figures (``gen baseline``) and the best order's sampling table (`gen eval`'s n-gram column).

The cache (``ngram-kK.DIGEST.json``, named by core/workspace.py CorpusDir) holds every order's
figures; its digest is the corpus's, so `gen prepare` of other text makes it stale, and it is
rebuilt. It is written atomically at the end: Ctrl-C during a build leaves nothing half-written.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np

from gen.core.atomic import atomic_write, atomic_write_text
from gen.core.data import CorpusData
from gen.core.errors import GenError
from gen.core.shapes import available
from gen.core.workspace import CorpusDir
from gen.evals.baselines.ngram import OrderResult, check_order, kn_losses, memory_needed
from gen.evals.baselines.sampler import TABLES, NgramSampler, build

FORMAT = 1  # bump when the cached figures change meaning


def baselines(data: CorpusData, order: int, log: Callable[[str], None] = lambda _m: None,
              rebuild: bool = False) -> tuple[list[OrderResult], bool]:
    """Every order's results for ``data`` up to ``order``, from the cache when it is there (a
    cache of a higher order serves a lower one); returns them and whether they were cached."""
    folder = CorpusDir(data.path)
    train, val = data.ids("train"), data.ids("val")
    check_order(order, len(train))
    digest = data.digest
    if not rebuild:
        for path in folder.stale_baselines():
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if doc.get("format") == FORMAT and doc.get("digest") == digest and doc.get("order", 0) >= order:
                return [OrderResult(**r) for r in doc["results"][:order]], True
    need, free = memory_needed(len(train), len(val)), available("cpu")
    if free is not None and need > free:
        raise GenError(f"n-gram baselines of {len(train) + len(val):,} characters need about {need / 1e9:.1f} GB; "
                       f"{free / 1e9:.1f} GB is available. Free memory, or prepare a smaller corpus")
    log(f"building n-gram models of orders 1-{order} on {len(train):,} training characters ...")
    results = kn_losses(train, val, len(data.vocab), order,
                        on_order=lambda r: log(f"  order {r.order}: {r.val_nats:.4f} nats/char ({r.build_s:.1f} s)"))
    doc = {"format": FORMAT, "digest": digest, "order": order, "corpus": data.name,
           "results": [{k: v for k, v in r.to_dict().items() if k != "val_bpc"} for r in results]}
    try:
        for old in folder.stale_baselines():  # another corpus state's or order's figures
            old.unlink(missing_ok=True)
        atomic_write_text(folder.baseline(order, digest), json.dumps(doc, indent=1))
    except OSError:
        pass  # a read-only corpus folder: rebuilt next time
    return results, False


def sampler_for(data: CorpusData, log: Callable[[str], None] = lambda _m: None) -> NgramSampler:
    """The sampler of the corpus's best n-gram order (``gen baseline``'s, cached), its table
    loaded from beside the corpus or built (from the first SAMPLER_CHARS training characters)
    and saved there."""
    from gen.evals.baselines.ngram import DEFAULT_ORDER, best

    train = data.ids("train")
    order = best(baselines(data, min(DEFAULT_ORDER, max(1, len(train))), log)[0]).order
    folder, key = CorpusDir(data.path), f"{data.digest}-k{order}-v{FORMAT}"
    paths = {name: folder.index(name, key) for name in TABLES}
    try:
        table = {name: np.load(path, allow_pickle=False, mmap_mode="r") for name, path in paths.items()}
    except (OSError, ValueError):
        separator = data.vocab.stoi.get(data.separator[:1]) if data.separator else None
        table = build(train, order, separator)
        for name, arr in table.items():
            for old in folder.stale_indexes(name):
                old.unlink(missing_ok=True)
            try:
                atomic_write(paths[name], lambda fh, arr=arr: np.save(fh, arr, allow_pickle=False))
            except OSError:
                pass  # a read-only corpus folder: built again next time
    return NgramSampler(table, train, order)

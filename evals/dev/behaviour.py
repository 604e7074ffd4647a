"""Record what gen decides on real text, to show a refactor changed nothing (developers only).

``record`` drives a ``gen`` executable (any install: the checkout's, or an older commit's in its
own venv) through the four commands on the development corpora beside the checkout: prepare
each built-in domain's corpus, score windows of real and of damaged text with
``gen eval DOMAIN FILE --against CORPUS`` (every metric, the real/corrupted reference columns
included), and sample plain and guided text from small fixed checkpoints with a fixed seed. It
writes one JSON of everything that must not move (timings and paths left out). ``compare``
names every difference between two such files. It drives the command line only, so an old
commit is measured by the same script::

    python evals/dev/behaviour.py record --gen OLD/bin/gen --out before.json --work /tmp/b
    python evals/dev/behaviour.py record --gen .venv/bin/gen --out after.json --work /tmp/a \\
        --checkpoints /tmp/b/ckpt
    python evals/dev/behaviour.py compare before.json after.json
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

SHARED = Path(__file__).resolve().parents[3] / "shared" / "corpora"
# (domain, corpus, source under shared/corpora, a file whose text the windows are cut from)
CASES = [
    ("names", "names", "names/names.txt", "names/names.txt"),
    ("prose", "shakespeare", "prose/tinyshakespeare.txt", "prose/tinyshakespeare.txt"),
    ("wiki", "enwik8", "wiki/enwik8-prefix.xml", "wiki/enwik8-prefix.xml"),
    ("latex", "latex", "latex/stacks-project", "latex/stacks-project/varieties.tex"),
    ("c", "linux", "c/linux-6.1", "c/linux-6.1/kernel/sched/fair.c"),
    ("text", "mytext", "prose/warpeace.txt", "prose/warpeace.txt"),
]
GUIDED = ("names", "latex", "wiki", "c")  # domains with a tracker
WINDOWS = 24  # real windows per domain, and as many damaged ones
VOLATILE = {"throughput_mb_s", "samples", "seconds", "mb_per_s", "created", "src", "processes", "workers"}
TINY = ["--layers", "1", "--hidden", "32", "--embd", "8", "--batch-size", "4", "--seq-len", "32",
        "--max-steps", "30", "--eval-every", "30", "--eval-chars", "2000", "--seed", "0", "--device", "cpu",
        "--precision", "fp32", "--threads", "1", "--quiet", "--run-name", "snap"]


def _gen(gen: str, ws: Path, *args: str) -> str:
    proc = subprocess.run([gen, "--workspace", str(ws), *args], capture_output=True, text=True,
                          env={"GEN_PRECISION_PROBE": "fp32", "PATH": "/usr/bin:/bin", "HOME": str(ws)})
    if proc.returncode != 0:
        raise SystemExit(f"gen {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def _windows(path: Path, per_line: bool, seed: int) -> list[str]:
    """Real text: 1-4 KB windows cut at line starts from the file's last 10% (names: lines)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    tail = text[int(len(text) * 0.9):]
    rng = random.Random(seed)
    if per_line:
        lines = [x for x in tail.splitlines() if x.strip()]
        return rng.sample(lines, min(len(lines), 300))
    out = []
    for _ in range(WINDOWS):
        start = tail.find("\n", rng.randrange(len(tail) - 5000)) + 1
        out.append(tail[start:start + rng.randint(1000, 4000)])
    return out


def _damage(text: str, rng: random.Random) -> str:
    """Text with structure broken: a few characters dropped and two lines swapped."""
    chars = [c for c in text if rng.random() > 0.02 or c.isalnum()]
    lines = "".join(chars).split("\n")
    if len(lines) > 3:
        i, j = rng.sample(range(len(lines)), 2)
        lines[i], lines[j] = lines[j], lines[i]
    return "\n".join(lines)


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _eval(gen: str, ws: Path, domain: str, corpus: str, texts: list[str], name: str, work: Path) -> dict:
    per_line = domain == "names"
    samples = work / f"{domain}-{name}.{'txt' if per_line else 'jsonl'}"
    samples.write_text("\n".join(texts) + "\n" if per_line else
                       "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts), encoding="utf-8")
    out = work / f"eval-{domain}-{name}"
    _gen(gen, ws, "eval", domain, str(samples), "--against", corpus, "--out", str(out))
    records = [json.loads(line) for line in (out / "records.jsonl").read_text(encoding="utf-8").splitlines()]
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    return {"records": _strip(records), "summary": _strip(summary)}


def _samples(gen: str, ws: Path, ckpt: Path, work: Path, *flags: str) -> list[str]:
    out = work / f"sample-{ckpt.parent.name}-{'-'.join(f.strip('-') for f in flags) or 'plain'}.jsonl"
    _gen(gen, ws, "sample", str(ckpt), "-n", "3", "-l", "300", "--seed", "7", "--device", "cpu",
         "--precision", "fp32", "--out", str(out), *flags)
    return [json.loads(line)["text"] for line in out.read_text(encoding="utf-8").splitlines()]


def record(gen: str, out: Path, work: Path, checkpoints: Path | None, only: list[str] | None) -> None:
    ws = work / "ws"
    ckpt_dir = work / "ckpt"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {}
    for domain, corpus, src, cut_from in CASES:
        if only and domain not in only:
            continue
        print(f"{domain}: prepare {corpus}", file=sys.stderr, flush=True)
        extra = ["--domain", domain] if corpus == "mytext" else []
        _gen(gen, ws, "prepare", corpus, "--src", str(SHARED / src), *extra)
        meta = json.loads((ws / "corpora" / corpus / "meta.json").read_text(encoding="utf-8"))
        real = _windows(SHARED / cut_from, domain == "names", seed=len(domain))
        rng = random.Random(1)
        damaged = [_damage(t, rng) for t in real]
        entry: dict[str, Any] = {"meta": _strip(meta)}
        print(f"{domain}: eval", file=sys.stderr, flush=True)
        entry["real"] = _eval(gen, ws, domain, corpus, real, "real", work)
        entry["damaged"] = _eval(gen, ws, domain, corpus, damaged, "damaged", work)
        own = ckpt_dir / domain / "best.pt"
        if checkpoints is not None:  # the same weights as the recording being compared with
            own.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(checkpoints / domain / "best.pt", own)
        else:
            print(f"{domain}: train a tiny checkpoint", file=sys.stderr, flush=True)
            _gen(gen, ws, "train", corpus, *TINY)
            own.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ws / "runs" / corpus / "snap" / "best.pt", own)
        entry["sample"] = _samples(gen, ws, own, work)
        if domain in GUIDED:
            entry["guided"] = _samples(gen, ws, own, work, "--guided")
        result[domain] = entry
    out.write_text(json.dumps(result, indent=1, ensure_ascii=False, sort_keys=True), encoding="utf-8")
    print(f"wrote {out}", file=sys.stderr)


def _diff(a: Any, b: Any, where: str, found: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                found.append(f"{where}.{k}: only in {'after' if k in b else 'before'}")
            else:
                _diff(a[k], b[k], f"{where}.{k}", found)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _diff(x, y, f"{where}[{i}]", found)
    elif a != b:
        found.append(f"{where}: {str(a)[:80]!r} -> {str(b)[:80]!r}")


def compare(before: Path, after: Path) -> int:
    a, b = (json.loads(p.read_text(encoding="utf-8")) for p in (before, after))
    found: list[str] = []
    _diff(a, b, "", found)
    n_records = sum(len(d[k]["records"]) for d in a.values() for k in ("real", "damaged"))
    print("\n".join(found[:50]) or f"identical: {len(a)} domains, {n_records} records, summaries, samples")
    return 1 if found else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    rec = sub.add_parser("record")
    rec.add_argument("--gen", required=True, help="the gen executable to drive")
    rec.add_argument("--out", type=Path, required=True)
    rec.add_argument("--work", type=Path, required=True, help="a scratch folder (workspace, samples)")
    rec.add_argument("--checkpoints", type=Path, help="reuse another recording's checkpoints (its WORK/ckpt)")
    rec.add_argument("--only", nargs="*", help="domains to record (default: all)")
    cmp = sub.add_parser("compare")
    cmp.add_argument("before", type=Path)
    cmp.add_argument("after", type=Path)
    args = parser.parse_args()
    if args.cmd == "record":
        record(args.gen, args.out, args.work, args.checkpoints, args.only)
    else:
        sys.exit(compare(args.before, args.after))


if __name__ == "__main__":
    main()

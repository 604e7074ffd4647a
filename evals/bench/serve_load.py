"""Load test of `gen serve`: concurrent streaming clients on loopback, against the same model's
in-process sampling speed measured first, on the same machine, in the same run.

    python -m gen.evals.bench.serve_load CHECKPOINT [--clients 1,8,64] [--requests 2000] [--chars 200]

Starts `gen serve` as its own process on 127.0.0.1 (a free port), then for each client count
runs that many asyncio clients, each sending streaming completions one after another until the
round's requests are done or its time cap passes; every request is checked (HTTP 200, the
characters asked for, ``[DONE]``). Prints, per round: aggregate characters per second (and as a
share of in-process sampling with as many streams), time to the first character p50/p99,
errors, and the server's resident memory before and after. Bounded in requests and time; the
server is stopped at the end. The clients share the machine's cores with the server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from gen.core import table


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_s(pid: int | None = None) -> float:
    """CPU seconds (user + system) a process has used: the server's, or this one's (the clients)."""
    if pid is None:
        import resource

        ru = resource.getrusage(resource.RUSAGE_SELF)
        return ru.ru_utime + ru.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def in_process(checkpoint: str, streams: int, chars: int, precision: str) -> float:
    """chars/s of `gen sample -n STREAMS` in this process: best of three."""
    from gen.core.config import SampleOptions
    from gen.core.models import load_checkpoint
    from gen.core.sample import sample

    loaded = load_checkpoint(checkpoint)
    best = 0.0
    for seed in range(3):
        opts = SampleOptions(n=streams, length=chars, seed=seed, stop=[], precision=precision)
        t0 = time.perf_counter()
        sample(loaded.model, loaded.vocab, opts, separator=loaded.separator)
        best = max(best, streams * chars / (time.perf_counter() - t0))
    return best


async def client(url: str, body: dict, quota: list[int], deadline: float, out: dict) -> None:
    import httpx

    async with httpx.AsyncClient(timeout=60) as http:
        while quota[0] > 0 and time.monotonic() < deadline:
            quota[0] -= 1
            t0, first, chars, done = time.perf_counter(), None, 0, False
            try:
                async with http.stream("POST", url + "/v1/completions", json=body) as r:
                    if r.status_code != 200:
                        out["errors"].append(f"HTTP {r.status_code}")
                        continue
                    async for line in r.aiter_lines():
                        if not line.startswith("data:"):
                            continue
                        data = line[5:].strip()
                        if data == "[DONE]":
                            done = True
                            break
                        text = json.loads(data)["choices"][0]["text"] if '"choices"' in data else ""
                        if text and first is None:
                            first = time.perf_counter() - t0
                        chars += len(text)
            except Exception as exc:  # counted, not raised: the test reports every failure
                out["errors"].append(f"{type(exc).__name__}: {exc}"[:120])
                continue
            if not done or chars != body["max_tokens"]:
                out["errors"].append(f"incomplete: {chars} characters, done={done}")
            out["ttfc"].append(first if first is not None else float("nan"))
            out["chars"] += chars


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(x for x in xs if x == x)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


async def watch_memory(pid: int, out: dict, every: int = 2000) -> None:
    """The server's resident memory each time another ``every`` requests have finished."""
    mark = every
    while True:
        done = len(out["ttfc"]) + len(out["errors"])
        if done >= mark:
            out["rss"].append(f"{rss_mb(pid):.0f}")
            mark += every
        await asyncio.sleep(0.2)


async def round_(url: str, n: int, requests: int, chars: int, cap: float, pid: int | None = None) -> dict:
    out: dict = {"errors": [], "ttfc": [], "chars": 0, "rss": []}
    body = {"model": "m", "prompt": "", "max_tokens": chars, "stream": True, "temperature": 0.8, "stop": ["\u0000"]}
    quota, t0 = [requests], time.perf_counter()
    watcher = asyncio.create_task(watch_memory(pid, out)) if pid else None
    await asyncio.gather(*[client(url, body, quota, time.monotonic() + cap, out) for _ in range(n)])
    if watcher:
        watcher.cancel()
    out["seconds"] = time.perf_counter() - t0
    out["requests"] = len(out["ttfc"]) + len([e for e in out["errors"] if not e.startswith("incomplete")])
    return out


def start_server(checkpoint: str, workspace: str, precision: str, streams: int) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "gen.core.cli", "--workspace", workspace, "serve", f"m={checkpoint}", "--port", "0",
           "--precision", precision, "--max-streams", str(streams), "--max-queue", str(4 * streams)]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        m = re.search(r"(http://127\.0\.0\.1:\d+)/ ", line)
        if m:
            return proc, m.group(1)
        if proc.poll() is not None:
            break
    proc.kill()
    raise SystemExit(f"gen serve did not start: {proc.stderr.read()[-2000:]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--workspace", default=os.environ.get("GEN_HOME", "/tmp/gen-load"))
    ap.add_argument("--clients", default="1,8,64")
    ap.add_argument("--requests", type=int, default=2000, help="per round (at least one per client)")
    ap.add_argument("--chars", type=int, default=200, help="characters per completion")
    ap.add_argument("--cap", type=float, default=300, help="seconds a round may last")
    ap.add_argument("--precision", default="auto")
    a = ap.parse_args()
    counts = [int(c) for c in a.clients.split(",")]
    ref = {n: in_process(a.checkpoint, n, max(a.chars, 400), a.precision) for n in counts}
    proc, url = start_server(a.checkpoint, a.workspace, a.precision, max(counts))
    rows = []
    try:
        for n in counts:
            before, cpu0, mine0 = rss_mb(proc.pid), cpu_s(proc.pid), cpu_s()
            r = asyncio.run(round_(url, n, max(a.requests, n), a.chars, a.cap, proc.pid))
            cpu = f"{(cpu_s(proc.pid) - cpu0) / r['seconds']:.2f} / {(cpu_s() - mine0) / r['seconds']:.2f}"
            cps = r["chars"] / r["seconds"]
            rows.append([n, r["requests"], len(r["errors"]), f"{cps:,.0f}", f"{ref[n]:,.0f}", f"{100 * cps / ref[n]:.0f}%",
                         f"{1000 * percentile(r['ttfc'], 0.5):.0f}", f"{1000 * percentile(r['ttfc'], 0.99):.0f}",
                         f"{before:.0f} -> {rss_mb(proc.pid):.0f}", cpu])
            print(f"  clients {n}: server RSS MB every 2,000 requests: {', '.join(r['rss']) or '-'}")
            for e in sorted(set(r["errors"]))[:5]:
                print(f"  clients {n}: {e}")
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    print(f"gen serve load test: {a.checkpoint}, {a.chars} characters per streamed completion, precision {a.precision}")
    print(table.render(rows, [["clients", "requests", "errors", "chars/s", "in-process", "share", "first ms p50",
                               "first ms p99", "server RSS MB", "cores: server / clients"]], align=">>>>>>>>>>"))


if __name__ == "__main__":
    main()

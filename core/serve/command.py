"""`gen serve [MODEL ...]`: the command line of the server (the app is app.py)."""

from __future__ import annotations

import asyncio
import ipaddress
from pathlib import Path
from typing import Any

import click

from gen.core.config import SampleOptions
from gen.core.errors import GenError
from gen.core.options import device_option, precision_option
from gen.core.serve.requests import Limits

LOOPBACK = {"localhost"}
LIMIT_FLAGS = [  # (flag, Limits field, help)
    ("--max-streams", "max_streams", "streams stepped together per model (more wait in the queue)"),
    ("--max-queue", "max_queue", "streams waiting per model; beyond, 503 with Retry-After"),
    ("--max-tokens", "max_tokens", "characters one completion may ask for"),
    ("--max-n", "max_n", "completions per request"),
    ("--max-prompt", "max_prompt", "characters of a prompt or session append"),
    ("--max-body", "max_body", "bytes of a request body"),
    ("--max-sessions", "max_sessions", "stateful sessions kept (least recently used dropped first)"),
    ("--session-ttl", "session_ttl", "seconds a session lives unused"),
]


def is_loopback(host: str) -> bool:
    if host in LOOPBACK:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def model_names(targets: list[str], ws: Path) -> list[tuple[str, str]]:
    """(name, target) per MODEL argument: NAME=TARGET, or a name made from the target (a corpus's
    name, a folder's or file's name, a Hub repository's name); none: every corpus with a run."""
    from gen.core.workspace import trained_corpora

    if not targets:
        targets = trained_corpora(ws)
        if not targets:
            raise GenError("no trained model to serve: train one (gen train CORPUS) or name a checkpoint, "
                           "run folder or exported folder")
    out, seen = [], set()
    for t in targets:
        name, _, target = t.partition("=") if "=" in t and not Path(t).exists() else ("", "", t)
        if not name:
            name = target.split("/")[-1] if target.startswith("hf:") else Path(target).stem or target
            if Path(target).suffix == ".pt":
                name = f"{Path(target).parent.name}-{name}"
        base, k = name, 2
        while name in seen:
            name, k = f"{base}-{k}", k + 1
        seen.add(name)
        out.append((name, target))
    return out


def _limit_options(f):
    for flag, key, help_ in reversed(LIMIT_FLAGS):
        default = getattr(Limits, key)
        f = click.option(flag, key, default=default, show_default=True,
                         type=click.FloatRange(1.0) if isinstance(default, float) else click.IntRange(1),
                         help=help_)(f)
    return f


@click.command()
@click.argument("models", nargs=-1)
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on (not loopback: needs --api-key)")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="0 picks a free port")
@click.option("--api-key", help="clients must send 'Authorization: Bearer KEY' (needed off loopback)")
@click.option("--cors", multiple=True, help="an origin allowed to call the API from a browser page (repeatable)")
@_limit_options
@device_option
@precision_option
def serve(models: tuple[str, ...], host: str, port: int, api_key: str | None, cors: tuple[str, ...],
          device: str, precision: str, **limits: Any) -> None:
    """Serve models over HTTP: OpenAI's completions API (any OpenAI client works), sessions,
    next-character odds, structure checks, and a playground page at /.

    MODEL: a corpus name (its latest run's best), a run folder, a checkpoint, an exported folder
    or hf:OWNER/NAME; NAME=MODEL names it. None: every corpus with a trained run."""
    if not is_loopback(host) and not api_key:
        raise GenError(f"--host {host} would let other machines use these models: give --api-key KEY too "
                       "(clients send 'Authorization: Bearer KEY'), or keep the default 127.0.0.1")
    from gen.core.serve.app import create_app
    from gen.core.serve.engine import Worker

    ws = click.get_current_context().find_root().obj
    worker = Worker()
    served = load_served(model_names(list(models), ws), ws, Limits(**limits), device, precision, worker)
    app = create_app(served, Limits(**limits), api_key, list(cors) or None)
    serve_forever(app, host, port, served, worker)


def load_served(named: list[tuple[str, str]], ws: Path, limits: Limits, device: str, precision: str,
                worker: Any) -> dict:
    """Each model loaded, with its batching engine (stepped by ``worker``)."""
    import time

    from gen.core.device import pick_device
    from gen.core.models import load_model
    from gen.core.serve.engine import BatchEngine
    from gen.core.serve.served import ServedModel

    SampleOptions(device=device, precision=precision)  # the same checks as gen sample
    dev = pick_device(device)
    out = {}
    for name, target in named:
        loaded = load_model(target, ws)
        loaded.model.to(dev)
        engine = BatchEngine(loaded.model, loaded.vocab, worker, max_streams=limits.max_streams, max_queue=limits.max_queue,
                             precision=precision, device=dev)
        engine.warm()
        out[name] = ServedModel(name, loaded, engine, int(time.time()))
        a = loaded.model.args
        click.echo(f"model {name}: {loaded.path} ({a.n_layer}x{a.n_hidden} {a.cell}, domain {loaded.ckpt['domain']}; "
                   f"stepper {engine.stepper_name(1)} for 1 stream, {engine.stepper_name(limits.max_streams)} "
                   f"for {limits.max_streams})", err=True)
    return out


def serve_forever(app: Any, host: str, port: int, served: dict, worker: Any) -> None:
    """uvicorn on a thread of its own; the engines' worker on this (the main) thread, so Ctrl-C
    lands here and stops both. The URL is printed once the socket is bound (--port 0 says which)."""
    import threading

    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off",
                                           timeout_graceful_shutdown=3))
    failed: list[str] = []

    def http() -> None:
        try:
            asyncio.run(_announce(server, host, served))
        except (SystemExit, OSError) as exc:  # uvicorn exits when it cannot bind
            failed.append(str(exc))
        finally:
            worker.stop()

    thread = threading.Thread(target=http, name="gen-serve-http", daemon=True)
    thread.start()
    try:
        worker.run()
    except KeyboardInterrupt:
        click.echo("stopping", err=True)
    finally:
        server.should_exit = True
        worker.stop()
        thread.join(timeout=10)
    if failed or not server.started:
        raise GenError(f"could not listen on {host}:{port} (in use, or not an address of this machine); "
                       "try another --port, or --port 0")


async def _announce(server: Any, host: str, served: dict) -> None:
    task = asyncio.create_task(server.serve())
    while not server.started and not task.done():
        await asyncio.sleep(0.05)
    if server.started:
        bound = server.servers[0].sockets[0].getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        click.echo(f"serving {', '.join(served)} at http://{shown}:{bound}/ (playground) and "
                   f"http://{shown}:{bound}/v1 (OpenAI API); Ctrl-C stops", err=True)
    await task

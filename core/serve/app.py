"""The `gen serve` ASGI app (Starlette): OpenAI's completions API, gen's sessions and
next-character odds, structure checks, and the playground page.

Routes (README, "Serving a model"):
  GET  /v1/models                      OpenAI's model list (gen's fields beside)
  POST /v1/completions                 OpenAI completions; ``stream`` as Server-Sent Events
  POST /v1/next                        the top-k next characters after a prompt
  POST /v1/sessions                    a stateful session (reads its prompt once)
  GET|DELETE /v1/sessions/{id}         its state; end it
  POST /v1/sessions/{id}/append        read more text (the user typed)
  POST /v1/sessions/{id}/next          the top-k next characters
  POST /v1/sessions/{id}/completions   continue it (O(1) per new character)
  POST /v1/check                       the domain's checks of a text, and what is left open
  GET  /                               the playground (core/serve/static/)
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
import uuid
from importlib import resources
from typing import Any

from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gen.core.serve import requests as rq
from gen.core.serve.engine import Busy
from gen.core.serve.jobs import Draw, Job, updates
from gen.core.serve.served import ServedModel
from gen.core.serve.sessions import Session, SessionStore

STATIC = ("playground.html", "playground.js", "playground.css")
STATIC_TYPES = {"html": "text/html; charset=utf-8", "js": "text/javascript; charset=utf-8",
                "css": "text/css; charset=utf-8"}


class Server:
    """The models, limits and sessions one app serves; the route handlers are its methods."""

    def __init__(self, models: dict[str, ServedModel], limits: rq.Limits, api_key: str | None = None) -> None:
        self.models, self.limits, self.api_key = models, limits, api_key
        self.sessions = SessionStore(limits.max_sessions, limits.session_ttl)

    # ---- helpers ----------------------------------------------------------------------
    def model(self, name: str) -> ServedModel:
        m = self.models.get(name)
        if m is None:
            raise rq.ApiError(404, f"model {name[:80]!r} is not served here; GET /v1/models lists: "
                              f"{', '.join(sorted(self.models))}", param="model", code="model_not_found")
        return m

    def authorized(self, scope: dict[str, Any]) -> bool:
        """With an API key, every /v1/ request must send it as a bearer token."""
        if self.api_key is None or not scope["path"].startswith("/v1/"):
            return True
        given = dict(scope["headers"]).get(b"authorization", b"")
        return hmac.compare_digest(given, f"Bearer {self.api_key}".encode())

    def submit(self, m: ServedModel, jobs: list[Job]) -> None:
        for i, job in enumerate(jobs):
            try:
                m.engine.submit(job)
            except Busy:
                for j in jobs[:i]:
                    j.cancel()  # the worker drops them at its next step
                for j in jobs[i:]:  # never queued: nothing of a session's changes
                    j.finish, j.left = "cancelled", True
                load = m.engine.load()
                raise rq.ApiError(503, f"model {m.name!r} is at capacity ({load['active']} streams stepping, "
                                  f"{load['queued']} waiting); retry shortly", code="server_busy",
                                  headers={"Retry-After": "1"}) from None

    async def run(self, request: Request, m: ServedModel, jobs: list[Job], queue: asyncio.Queue) -> None:
        """Wait for ``jobs`` to end; a client that goes away cancels them (frees their slots)."""
        self.submit(m, jobs)
        try:
            async for _ in _until_done(queue, jobs, request):
                pass
        finally:
            for j in jobs:
                j.cancel()
        failed = next((j for j in jobs if j.finish == "error"), None)
        if failed is not None:
            raise rq.ApiError(500, f"sampling failed: {failed.error}")

    async def read_only(self, request: Request, m: ServedModel, ids: list[int], s: Session | None = None,
                        note: str = "") -> Job:
        """Read ``ids`` (after a session's state, recorded in it) without sampling: a job of length 0."""
        queue: asyncio.Queue = asyncio.Queue()
        job = Job((s.unread if s else []) + ids, Draw(max_chars=0), asyncio.get_running_loop(), queue,
                  state=s.state if s else None, logits=s.logits if s else None)
        job.note = note
        if s is not None:
            self.sessions.begin(s, job)
        await self.run(request, m, [job], queue)
        if s is not None:
            self.sessions.busy(s)  # records it
        return job

    # ---- OpenAI's endpoints -----------------------------------------------------------
    async def list_models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [m.card() for m in self.models.values()]})

    async def completions(self, request: Request) -> Response:
        p = rq.parse(await rq.read_body(request, self.limits), rq.COMPLETION, self.limits)
        m = self.model(p["model"])
        ids = m.prompt_ids(p["prompt"])
        queue: asyncio.Queue = asyncio.Queue()
        loop = asyncio.get_running_loop()
        jobs = [Job(list(ids), m.draw(p, self.limits, i, p["prompt"]), loop, queue, index=i) for i in range(p["n"])]
        return await self.respond(request, m, jobs, queue, p, len(p["prompt"]), p["prompt"] if p["echo"] else "")

    async def respond(self, request: Request, m: ServedModel, jobs: list[Job], queue: asyncio.Queue,
                      p: dict[str, Any], prompt_chars: int, echo: str) -> Response:
        cid, created = f"cmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        if p["stream"]:
            self.submit(m, jobs)
            include_usage = bool((p.get("stream_options") or {}).get("include_usage"))
            return EventSourceResponse(self._stream(m, jobs, queue, cid, created, prompt_chars, echo,
                                                    include_usage), ping=15)
        await self.run(request, m, jobs, queue)
        choices = [{"index": j.index, "text": echo + "".join(j.text), "finish_reason": _reason(j),
                    "logprobs": _logprobs(j, 0, len(j.text), len(echo)) if j.draw.logprobs else None}
                   for j in jobs]
        return JSONResponse({"id": cid, "object": "text_completion", "created": created, "model": m.name,
                             "choices": choices, "usage": _usage(prompt_chars, jobs)})

    async def _stream(self, m, jobs, queue, cid, created, prompt_chars, echo, include_usage):
        """Server-Sent Events: OpenAI's chunks (text as it comes; a finish_reason at each end), then
        usage when asked, then ``[DONE]``. A client that goes away cancels its jobs."""
        base = {"id": cid, "object": "text_completion", "created": created, "model": m.name}
        sent = {j.id: 0 for j in jobs}
        try:
            if echo:
                yield json.dumps({**base, "choices": [{"index": j.index, "text": echo, "logprobs": None,
                                                       "finish_reason": None} for j in jobs]})
            async for batch in updates(queue, jobs):  # sse-starlette cancels this when the client leaves
                choices = []
                for job, text, done in batch:
                    if text or done:
                        lp = _logprobs(job, sent[job.id], sent[job.id] + len(text), 0) if job.draw.logprobs else None
                        sent[job.id] += len(text)
                        choices.append({"index": job.index, "text": text, "logprobs": lp,
                                        "finish_reason": _reason(job) if done else None})
                if choices:
                    yield json.dumps({**base, "choices": choices})
            failed = next((j for j in jobs if j.finish == "error"), None)
            if failed is not None:
                yield json.dumps({"error": {"message": f"sampling failed: {failed.error}", "type": "server_error"}})
            if include_usage:
                yield json.dumps({**base, "choices": [], "usage": _usage(prompt_chars, jobs)})
            yield "[DONE]"
        finally:
            for j in jobs:
                j.cancel()

    # ---- gen's own endpoints ----------------------------------------------------------
    async def next_chars(self, request: Request) -> Response:
        p = rq.parse(await rq.read_body(request, self.limits), rq.NEXT, self.limits)
        m = self.model(p["model"])
        job = await self.read_only(request, m, m.prompt_ids(p["prompt"]))
        return JSONResponse({"model": m.name, "prompt_chars": len(p["prompt"]), "next": m.top(job.logits, p["top_k"])})

    async def create_session(self, request: Request) -> Response:
        p = rq.parse(await rq.read_body(request, self.limits), rq.SESSION, self.limits)
        m = self.model(p["model"])
        s = self.sessions.create(m.name)
        try:
            await self.read_only(request, m, m.prompt_ids(p["prompt"]), s, p["prompt"])
        except BaseException:  # busy, or the client left: no session that never read its prompt
            self.sessions.items.pop(s.id, None)
            raise
        return JSONResponse(self._session_info(s), status_code=201)

    def _session_info(self, s: Session) -> dict[str, Any]:
        return {"id": s.id, "object": "session", "model": s.model, "chars": s.chars,
                "expires_in": self.limits.session_ttl, "tail": s.tail[-200:]}

    async def get_session(self, request: Request) -> Response:
        s = self.sessions.get(request.path_params["sid"])
        if request.method == "DELETE":
            self.sessions.delete(s.id)
            return JSONResponse({"id": s.id, "object": "session", "deleted": True})
        return JSONResponse(self._session_info(s))

    async def append(self, request: Request) -> Response:
        p = rq.parse(await rq.read_body(request, self.limits), rq.APPEND, self.limits)
        s = self.sessions.get(request.path_params["sid"])
        await self.read_only(request, self.model(s.model), self.model(s.model).text_ids(p["text"]), s, p["text"])
        return JSONResponse(self._session_info(s))

    async def session_next(self, request: Request) -> Response:
        p = rq.parse(await rq.read_body(request, self.limits), rq.SESSION_NEXT, self.limits)
        s = self.sessions.get(request.path_params["sid"])
        m = self.model(s.model)
        if s.unread or s.logits is None:
            await self.read_only(request, m, [], s)
        return JSONResponse({"model": m.name, "session": s.id, "chars": s.chars, "next": m.top(s.logits, p["top_k"])})

    async def session_completions(self, request: Request) -> Response:
        p = rq.parse(await rq.read_body(request, self.limits), rq.SESSION_COMPLETION, self.limits)
        p.update(n=1, echo=False)
        s = self.sessions.get(request.path_params["sid"])
        m = self.model(s.model)
        queue: asyncio.Queue = asyncio.Queue()
        job = Job(list(s.unread), m.draw(p, self.limits, 0, s.tail), asyncio.get_running_loop(), queue,
                  state=s.state, logits=s.logits)
        self.sessions.begin(s, job)  # recorded in the session when it ends, however it ends
        return await self.respond(request, m, [job], queue, p, 0, "")

    async def check(self, request: Request) -> Response:
        p = rq.parse(await rq.read_body(request, self.limits), rq.CHECK, self.limits)
        m = self.model(p["model"])
        return JSONResponse(await run_in_threadpool(m.check, p["text"]))

    async def page(self, request: Request) -> Response:
        name = request.path_params.get("name", "playground.html")
        if name not in STATIC:
            raise rq.ApiError(404, f"no such page {name[:80]!r}")
        data = resources.files("gen.core.serve").joinpath("static", name).read_bytes()
        return Response(data, media_type=STATIC_TYPES[name.rsplit(".", 1)[1]])


class _Auth:
    """ASGI middleware: a request without the API key gets 401 before any route runs."""

    def __init__(self, app: Any, server: Server) -> None:
        self.app, self.server = app, server

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and not self.server.authorized(scope):
            resp = rq.ApiError(401, "a valid API key is needed: send 'Authorization: Bearer KEY'",
                               code="invalid_api_key").response()
            await resp(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def _until_done(queue: asyncio.Queue, jobs: list[Job], request: Request):
    """``updates`` of the jobs, checking every second that the client is still there."""
    it = updates(queue, jobs).__aiter__()
    while True:
        task = asyncio.ensure_future(it.__anext__())
        while True:
            done, _ = await asyncio.wait([task], timeout=1.0)
            if done:
                break
            if await request.is_disconnected():
                task.cancel()
                return
        try:
            yield task.result()
        except StopAsyncIteration:
            return


def _reason(job: Job) -> str:
    return {"stop": "stop", "length": "length"}.get(job.finish or "", job.finish or "stop")


def _usage(prompt_chars: int, jobs: list[Job]) -> dict[str, int]:
    done = sum(len(j.text) for j in jobs)
    return {"prompt_tokens": prompt_chars, "completion_tokens": done, "total_tokens": prompt_chars + done}


def _logprobs(job: Job, lo: int, hi: int, offset: int) -> dict[str, Any]:
    """OpenAI's legacy logprobs object for characters lo..hi of the job's text."""
    return {"tokens": job.text[lo:hi], "token_logprobs": job.chosen_lp[lo:hi], "top_logprobs": job.top[lo:hi],
            "text_offset": [offset + i for i in range(lo, hi)]}


def create_app(models: dict[str, ServedModel], limits: rq.Limits | None = None, api_key: str | None = None,
               cors: list[str] | None = None) -> Starlette:
    """The app; ``cors``: origins allowed to call it from a browser (none unless given)."""
    srv = Server(models, limits or rq.Limits(), api_key)
    post = ["POST"]
    routes = [
        Route("/", srv.page), Route("/static/{name}", srv.page),
        Route("/v1/models", srv.list_models), Route("/v1/completions", srv.completions, methods=post),
        Route("/v1/next", srv.next_chars, methods=post), Route("/v1/sessions", srv.create_session, methods=post),
        Route("/v1/sessions/{sid}", srv.get_session, methods=["GET", "DELETE"]),
        Route("/v1/sessions/{sid}/append", srv.append, methods=post),
        Route("/v1/sessions/{sid}/next", srv.session_next, methods=post),
        Route("/v1/sessions/{sid}/completions", srv.session_completions, methods=post),
        Route("/v1/check", srv.check, methods=post),
        Route("/health", lambda r: JSONResponse({"ok": True, "models": {n: m.engine.load() for n, m in models.items()}})),
    ]

    async def api_error(request: Request, exc: rq.ApiError) -> Response:
        return exc.response()

    async def http_error(request: Request, exc: HTTPException) -> Response:
        return rq.ApiError(exc.status_code, f"{exc.detail}: {request.method} {request.url.path[:100]}").response()

    async def server_error(request: Request, exc: Exception) -> Response:
        return rq.ApiError(500, f"internal error ({type(exc).__name__}); the server log has the details").response()

    middleware = [Middleware(CORSMiddleware, allow_origins=cors, allow_methods=["GET", "POST", "DELETE"],
                             allow_headers=["authorization", "content-type"])] if cors else []

    app = Starlette(routes=routes, middleware=[*middleware, Middleware(_Auth, server=srv)],
                    exception_handlers={rq.ApiError: api_error, HTTPException: http_error, Exception: server_error})
    app.state.server = srv
    return app

"""What `gen serve` accepts: its limits, the request fields and their checks, and its errors.

Every request body is checked against a declared table of fields (type, range, default) before
anything runs; a wrong one is a 4xx in OpenAI's error shape naming the field, never a traceback.
The fields are OpenAI's completions API (what the ``openai`` client, llama.cpp's and vLLM's
servers speak) and gen's own beside them (``top_k``, ``guided``, ``banned``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass
class Limits:
    """What one server allows; each is a `gen serve` option (README, "Serving a model")."""

    max_body: int = 64 * 1024  # bytes of one request body
    max_tokens: int = 4096  # characters one completion may ask for
    default_tokens: int = 256  # when max_tokens is not given (OpenAI's 16 is a few words here)
    max_n: int = 16  # completions per request
    max_prompt: int = 16384  # characters of a prompt (or of one session append)
    max_streams: int = 64  # streams stepped together per model; more wait in the queue
    max_queue: int = 256  # streams waiting per model; beyond, 503 with Retry-After
    max_sessions: int = 1024  # stateful sessions kept (the least recently used go first)
    session_ttl: float = 900.0  # seconds a session lives unused
    max_logprobs: int = 20  # alternatives per position in logprobs
    max_check: int = 65536  # characters /v1/check judges


class ApiError(Exception):
    """A request the server refuses: HTTP status, message, and the field at fault."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.headers = status, message, param, code, headers

    def response(self) -> Any:
        """The error as OpenAI's servers send one: {"error": {message, type, param, code}}."""
        from starlette.responses import JSONResponse

        kind = "invalid_request_error" if self.status < 500 else "server_error"
        body = {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}
        return JSONResponse(body, status_code=self.status, headers=self.headers)


def _int(lo: int, hi_key: str | None = None, hi: int | None = None):
    def check(v: Any, limits: Limits) -> int:
        top = getattr(limits, hi_key) if hi_key else hi
        if isinstance(v, bool) or not isinstance(v, int) or v < lo or (top is not None and v > top):
            raise ValueError(f"an integer from {lo}" + (f" to {top}" if top is not None else ""))
        return v
    return check


def _num(lo: float, hi: float, lo_open: bool = False):
    def check(v: Any, limits: Limits) -> float:
        if isinstance(v, bool) or not isinstance(v, int | float) or not (lo < v if lo_open else lo <= v) or v > hi:
            raise ValueError(f"a number in {'(' if lo_open else '['}{lo}, {hi}]")
        return float(v)
    return check


def _bool(v: Any, limits: Limits) -> bool:
    if not isinstance(v, bool):
        raise ValueError("true or false")
    return v


def _text(limit_key: str):
    def check(v: Any, limits: Limits) -> str:
        if isinstance(v, list) and len(v) == 1:  # OpenAI allows a list of prompts: one is served
            v = v[0]
        if not isinstance(v, str):
            raise ValueError("a string")
        if len(v) > getattr(limits, limit_key):
            raise ValueError(f"at most {getattr(limits, limit_key):,} characters (got {len(v):,})")
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("valid Unicode text (it holds a lone surrogate)") from None
        return v
    return check


def _stops(v: Any, limits: Limits) -> list[str]:
    stops = [v] if isinstance(v, str) else v
    if v is None:
        return []
    if not isinstance(stops, list) or len(stops) > 4 or not all(isinstance(s, str) and 0 < len(s) <= 64 for s in stops):
        raise ValueError("a string or a list of up to 4 strings of 1 to 64 characters")
    return stops


def _banned(v: Any, limits: Limits) -> str:
    if not isinstance(v, str) or len(v) > 4096:
        raise ValueError("a string of the characters never to sample (at most 4,096)")
    return v


def _zero(v: Any, limits: Limits) -> Any:
    if v not in (None, 0, 0.0, {}, 1):
        raise ValueError("not supported by a character model server (leave it out)")
    return v


# field -> (check, default); None as a default means "absent"
SAMPLING = {
    "max_tokens": (_int(0, "max_tokens"), None), "temperature": (_num(0.0, 2.0), 0.8),
    "top_p": (_num(0.0, 1.0, lo_open=True), 1.0), "top_k": (_int(0), 0), "n": (_int(1, "max_n"), 1),
    "stream": (_bool, False), "stop": (_stops, None), "seed": (_int(-(2**63), hi=2**63 - 1), None),
    "logprobs": (_int(0, "max_logprobs"), None), "echo": (_bool, False), "guided": (_bool, False),
    "banned": (_banned, ""), "user": (lambda v, limits: v, None),
    "presence_penalty": (_zero, None), "frequency_penalty": (_zero, None), "logit_bias": (_zero, None),
    "best_of": (_zero, None), "suffix": (lambda v, limits: _zero(v or None, limits), None),
    "stream_options": (lambda v, limits: v, None),
}
COMPLETION = {"model": (_text("max_prompt"), ...), "prompt": (_text("max_prompt"), ""), **SAMPLING}
NEXT = {"model": (_text("max_prompt"), ...), "prompt": (_text("max_prompt"), ""),
        "top_k": (_int(1), 5)}  # at most the vocabulary: all of it
SESSION = {"model": (_text("max_prompt"), ...), "prompt": (_text("max_prompt"), "")}
APPEND = {"text": (_text("max_prompt"), ...)}
SESSION_NEXT = {"top_k": (_int(1), 5)}
SESSION_COMPLETION = {k: v for k, v in SAMPLING.items() if k not in ("n", "echo")}
CHECK = {"model": (_text("max_prompt"), ...), "text": (_text("max_check"), ...)}


async def read_body(request: Any, limits: Limits) -> dict[str, Any]:
    """The JSON object of a request, refused past ``limits.max_body`` bytes (read in pieces, so
    a huge body is never held) or when it is not a JSON object."""
    size = int(request.headers.get("content-length") or 0)
    if size > limits.max_body:
        raise ApiError(413, f"the request body is {size:,} bytes; this server takes at most {limits.max_body:,}")
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > limits.max_body:
            raise ApiError(413, f"the request body is over {limits.max_body:,} bytes, this server's limit")
    try:
        data = json.loads(body or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"the request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the request body must be a JSON object")
    return data


def parse(data: dict[str, Any], fields: dict[str, tuple[Any, Any]], limits: Limits) -> dict[str, Any]:
    """``data`` checked against ``fields``: each value converted, defaults filled in."""
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ApiError(400, f"unknown field(s) {unknown}; this endpoint takes {sorted(fields)}", param=unknown[0])
    out = {}
    for name, (check, default) in fields.items():
        if name not in data or data[name] is None:
            if default is ...:
                raise ApiError(400, f"'{name}' is required", param=name)
            out[name] = default
            continue
        try:
            out[name] = check(data[name], limits)
        except ValueError as exc:
            raise ApiError(400, f"'{name}' must be {exc}", param=name) from None
    return out

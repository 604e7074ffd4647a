"""gen serve: the OpenAI client against it, batching, sessions, next-character odds, bad input.

Every server here listens on 127.0.0.1 on a free port, in a thread of the test, and is stopped
by the test; clients send a bounded number of requests with timeouts.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import httpx
import pytest
import torch

from gen.core import checkpoint as ckpt_io
from gen.core.config import SampleOptions
from gen.core.model import CharRNN, FusedStepper, ModelArgs
from gen.core.models import load_checkpoint
from gen.core.sample import prime_ids, sample
from gen.core.serve.app import create_app
from gen.core.serve.command import load_served, model_names
from gen.core.serve.engine import BatchEngine, Worker
from gen.core.serve.jobs import Draw, Job
from gen.core.serve.requests import Limits
from gen.core.vocab import Vocab
from tests.conftest import CHROMIUM, needs_chromium

TEXT = ("The lamp on the table burned low; she wrote (slowly, in a small hand) that the river had "
        "risen again, that the bridge [the old one] would not hold, and that nobody believed it.\n") * 4


def write_checkpoint(path: Path, domain: str = "prose", cell: str = "lstm", seed: int = 0) -> Path:
    """An untrained model saved as gen saves checkpoints (weights scaled so logits are lively)."""
    torch.manual_seed(seed)
    vocab = Vocab(sorted(set(TEXT)))
    model = CharRNN(ModelArgs(vocab_size=len(vocab), cell=cell, n_layer=2, n_hidden=32, n_embd=8))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)
    ckpt_io.save(path, {"model_args": model.args.to_dict(), "model": model.state_dict(), "vocab": vocab.to_dict(),
                        "separator": "\n", "domain": domain, "corpus": "fixture", "step": 1, "best_val": 3.0})
    return path


class Served:
    """uvicorn in a thread of the test, on 127.0.0.1 and a free port; stops on exit."""

    def __init__(self, ckpts: dict[str, Path], ws: Path, limits: Limits | None = None, **kw) -> None:
        import uvicorn

        self.limits = limits or Limits()
        self.worker = Worker().start()
        self.models = load_served(list((n, str(p)) for n, p in ckpts.items()), ws, self.limits, "cpu", "fp32",
                                  self.worker)
        app = create_app(self.models, self.limits, **kw)
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.worker.stop()

    def post(self, path: str, body, **kw) -> httpx.Response:
        content = body if isinstance(body, bytes | str) else json.dumps(body)
        return httpx.post(self.url + path, content=content, timeout=30, **kw)


@pytest.fixture
def ckpt(tmp_path) -> Path:
    return write_checkpoint(tmp_path / "m.pt")


def in_process(ckpt: Path, prompt: str, n: int, seed: int, temperature: float = 0.8, **kw) -> str:
    loaded = load_checkpoint(ckpt)
    opts = SampleOptions(length=n, seed=seed, prime=prompt, temperature=temperature, precision="fp32", stop=[], **kw)
    return sample(loaded.model, loaded.vocab, opts, separator=loaded.separator, domain=loaded.domain)[0][0][len(prompt):]


def test_openai_client_streams_what_gen_sample_draws(ckpt, ws):
    openai = pytest.importorskip("openai")
    with Served({"tiny": ckpt}, ws) as srv:
        client = openai.OpenAI(base_url=srv.url + "/v1", api_key="unused", timeout=30, max_retries=0)
        assert [m.id for m in client.models.list().data] == ["tiny"]
        chunks = list(client.completions.create(model="tiny", prompt="The river", max_tokens=120, seed=5, stream=True))
        streamed = "".join(c.choices[0].text for c in chunks)
        assert chunks[-1].choices[0].finish_reason == "length" and len(streamed) == 120
        whole = client.completions.create(model="tiny", prompt="The river", max_tokens=120, seed=5)
        assert whole.choices[0].text == streamed and whole.usage.completion_tokens == 120
        assert whole.usage.prompt_tokens == len("The river")
        # the same seed, the same text as `gen sample --seed 5` (one stream, fp32)
        assert streamed == in_process(ckpt, "The river", 120, 5)
        # logprobs: OpenAI's legacy object, the model's own odds of the chosen characters
        lp = client.completions.create(model="tiny", prompt="The", max_tokens=10, seed=1, logprobs=3).choices[0].logprobs
        assert len(lp.tokens) == 10 and all(len(t) == 3 for t in lp.top_logprobs)
        assert all(lp.token_logprobs[i] <= max(lp.top_logprobs[i].values()) + 1e-6 for i in range(10))


def test_a_stream_in_a_batch_equals_the_stream_alone(ckpt):
    """Jobs that join and leave one batch at different steps read the same logits as each read
    alone by the stepper (fp32: within 1e-5)."""
    loaded = load_checkpoint(ckpt)
    worker = Worker().start()
    engine = BatchEngine(loaded.model, loaded.vocab, worker, max_streams=8, precision="fp32")
    prompts = [TEXT[i:i + 5 + 13 * i] for i in range(8)]

    async def run_all() -> list[torch.Tensor]:
        loop, queue = asyncio.get_running_loop(), asyncio.Queue()
        jobs = [Job(prime_ids(loaded.vocab, "\n", p)[0], Draw(max_chars=0), loop, queue) for p in prompts]
        for j in jobs:
            engine.submit(j)
        for _ in jobs:
            while (await queue.get())[1] is not None:
                pass
        return [j.logits for j in jobs]

    try:
        got = asyncio.run(run_all())
    finally:
        worker.stop()
    stepper = FusedStepper(loaded.model)
    for p, logits in zip(prompts, got, strict=True):
        state = stepper.init_state(1)
        for i in prime_ids(loaded.vocab, "\n", p)[0]:
            alone = stepper.step(torch.tensor([i]), state)[0]
        assert (logits - alone).abs().max().item() < 1e-5


def test_seeded_requests_repeat_under_the_same_load(ckpt, ws):
    with Served({"tiny": ckpt}, ws) as srv:
        async def burst() -> list[str]:
            async with httpx.AsyncClient(timeout=30) as client:
                rs = await asyncio.gather(*[client.post(srv.url + "/v1/completions", json={
                    "model": "tiny", "prompt": TEXT[: 3 + i], "max_tokens": 60 + 7 * i, "seed": i}) for i in range(8)])
            return [r.json()["choices"][0]["text"] for r in rs]

        first, second = asyncio.run(burst()), asyncio.run(burst())
        assert first == second and len(set(first)) == 8
        assert first[3] == in_process(ckpt, TEXT[:6], 81, 3)  # under load as alone: fp32 logits agree
        # n > 1: choice i uses seed + i
        r = srv.post("/v1/completions", {"model": "tiny", "prompt": "The", "max_tokens": 30, "seed": 7, "n": 3}).json()
        assert [c["text"] for c in r["choices"]] == [in_process(ckpt, "The", 30, 7 + i) for i in range(3)]


def test_sessions_continue_without_rereading(ckpt, ws):
    """A session that read A, then B, then generated, answers as re-reading everything from scratch."""
    a, b = "The river had risen", " again, that the bridge"
    with Served({"tiny": ckpt}, ws) as srv:
        sid = srv.post("/v1/sessions", {"model": "tiny", "prompt": a}).json()["id"]
        assert srv.post(f"/v1/sessions/{sid}/append", {"text": b}).json()["chars"] == len(a + b)
        odds = srv.post(f"/v1/sessions/{sid}/next", {"top_k": 5}).json()["next"]
        fresh = srv.post("/v1/next", {"model": "tiny", "prompt": a + b, "top_k": 5}).json()["next"]
        assert [o["char"] for o in odds] == [o["char"] for o in fresh]
        assert all(abs(x["prob"] - y["prob"]) < 1e-5 for x, y in zip(odds, fresh, strict=True))
        assert abs(sum(o["prob"] for o in srv.post("/v1/next", {"model": "tiny", "prompt": a, "top_k": 60})
                       .json()["next"]) - 1) < 1e-5
        cont = srv.post(f"/v1/sessions/{sid}/completions", {"max_tokens": 50, "seed": 9}).json()["choices"][0]["text"]
        assert cont == in_process(ckpt, a + b, 50, 9)
        after = srv.post(f"/v1/sessions/{sid}/next", {"top_k": 3}).json()["next"]
        again = srv.post("/v1/next", {"model": "tiny", "prompt": a + b + cont, "top_k": 3}).json()["next"]
        assert all(abs(x["prob"] - y["prob"]) < 1e-5 for x, y in zip(after, again, strict=True))
        info = httpx.get(f"{srv.url}/v1/sessions/{sid}", timeout=10).json()
        assert info["chars"] == len(a + b + cont) and info["tail"].endswith(cont[-20:])
        assert httpx.delete(f"{srv.url}/v1/sessions/{sid}", timeout=10).json()["deleted"]
        assert srv.post(f"/v1/sessions/{sid}/next", {}).status_code == 404


def test_guided_banned_stop_and_checks(ckpt, ws):
    with Served({"tiny": ckpt}, ws) as srv:
        r = srv.post("/v1/completions", {"model": "tiny", "prompt": "The", "max_tokens": 300, "seed": 2,
                                         "temperature": 1.5, "banned": "e aot"}).json()
        assert not set("e aot") & set(r["choices"][0]["text"])
        r = srv.post("/v1/completions", {"model": "tiny", "prompt": "", "max_tokens": 300, "seed": 2,
                                         "stop": ["he", "\n"]}).json()["choices"][0]
        assert r["finish_reason"] == "stop" and "he" not in r["text"] and "\n" not in r["text"]
        from gen.core.registry import get_domain

        def breaks(guided: bool) -> int:
            text = srv.post("/v1/completions", {"model": "tiny", "prompt": "(see [the", "max_tokens": 300, "seed": 4,
                                                "guided": guided, "temperature": 1.2}).json()["choices"][0]["text"]
            tracker = get_domain("prose").tracker()
            tracker.feed_text("(see [the" + text)
            return tracker.violations()

        assert breaks(False) > 0 and breaks(True) == 0  # guided: no structure broken
        c = srv.post("/v1/check", {"model": "tiny", "text": "She said (slowly [and"}).json()
        assert c["domain"] == "prose" and c["unclosed"] == "])" and "metrics" in c


BAD = [  # (path, body, status, words in the message, param)
    ("/v1/completions", b"{bad", 400, "not valid JSON", None),
    ("/v1/completions", b"[1, 2]", 400, "JSON object", None),
    ("/v1/completions", {"model": "tiny", "max_tokens": "5"}, 400, "'max_tokens' must be an integer", "max_tokens"),
    ("/v1/completions", {"model": "nope"}, 404, "not served here", "model"),
    ("/v1/completions", {"model": "../../../etc/passwd"}, 404, "not served here", "model"),
    ("/v1/completions", b'{"model": "tiny", "prompt": "a\\ud800b"}', 400, "lone surrogate", "prompt"),
    ("/v1/completions", {"model": "tiny", "max_tokens": 10**6}, 400, "from 0 to 4096", "max_tokens"),
    ("/v1/completions", {"model": "tiny", "n": 99}, 400, "'n' must be an integer from 1 to 16", "n"),
    ("/v1/completions", {"model": "tiny", "prompt": "x" * 20000}, 400, "at most 16,384 characters", "prompt"),
    ("/v1/completions", {"model": "tiny", "temperature": -1}, 400, "'temperature' must be a number", "temperature"),
    ("/v1/completions", {"model": "tiny", "colour": 1}, 400, "unknown field", "colour"),
    ("/v1/completions", {"model": "tiny", "logit_bias": {"5": 10}}, 400, "not supported", "logit_bias"),
    ("/v1/completions", {"model": "tiny", "stop": ["a"] * 5}, 400, "up to 4 strings", "stop"),
    ("/v1/completions", {"prompt": "x"}, 400, "'model' is required", "model"),
    ("/v1/completions", b"x" * 70000, 413, "this server takes at most", None),
    ("/v1/sessions/nope/next", {}, 404, "no session", None),
    ("/v1/check", {"model": "tiny", "text": 5}, 400, "'text' must be a string", "text"),
]


def test_bad_input_gets_an_openai_error(ckpt, ws):
    with Served({"tiny": ckpt}, ws) as srv:
        for path, body, status, words, param in BAD:
            r = srv.post(path, body)
            err = r.json()["error"]
            assert (r.status_code, words in err["message"], err["param"]) == (status, True, param), (path, body, r.text)
            assert "Traceback" not in r.text
        r = httpx.get(srv.url + "/v1/completions", timeout=10)
        assert r.status_code == 405 and "error" in r.json()
        assert httpx.get(srv.url + "/static/../../etc/passwd", timeout=10).status_code == 404
        # the server still serves after all that
        assert srv.post("/v1/completions", {"model": "tiny", "max_tokens": 5}).status_code == 200


def test_full_queue_is_503_and_a_client_that_leaves_frees_its_slot(ckpt, ws):
    limits = Limits(max_streams=1, max_queue=1, max_tokens=10**8)  # a stream that would run for minutes
    with Served({"tiny": ckpt}, ws, limits) as srv:
        engine = srv.models["tiny"].engine
        long = {"model": "tiny", "max_tokens": 10**8, "stream": True, "temperature": 1.0}
        with httpx.Client(timeout=30) as c1, httpx.Client(timeout=30) as c2:
            with c1.stream("POST", srv.url + "/v1/completions", json=long) as s1, \
                    c2.stream("POST", srv.url + "/v1/completions", json=long) as s2:
                lines = s1.iter_lines()  # kept: a dropped iterator closes the response
                next(lines)  # s1 streams; s2 waits in the queue (its headers are sent)
                assert s2.status_code == 200 and engine.load() == {**engine.load(), "active": 1, "queued": 1}
                r = srv.post("/v1/completions", {"model": "tiny", "max_tokens": 5})
                assert r.status_code == 503 and r.headers["retry-after"] == "1"
                assert r.json()["error"]["code"] == "server_busy"
                assert srv.post("/v1/sessions", {"model": "tiny", "prompt": "The"}).status_code == 503
                assert srv.models["tiny"].engine.load()["queued"] == 1
        # both clients closed mid-stream: their slots are free again within moments
        deadline = time.monotonic() + 10
        while engine.load()["active"] + engine.load()["queued"]:
            assert time.monotonic() < deadline, engine.load()
            time.sleep(0.05)
        assert srv.post("/v1/completions", {"model": "tiny", "max_tokens": 5}).status_code == 200
        assert srv.post("/v1/sessions", {"model": "tiny", "prompt": "The"}).status_code == 201


def test_api_key_and_cors(ckpt, ws):
    with Served({"tiny": ckpt}, ws, api_key="s3cret", cors=["http://example.test"]) as srv:
        assert httpx.get(srv.url + "/v1/models", timeout=10).status_code == 401
        wrong = httpx.get(srv.url + "/v1/models", headers={"authorization": "Bearer s3cre"}, timeout=10)
        assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
        ok = httpx.get(srv.url + "/v1/models", timeout=10,
                       headers={"authorization": "Bearer s3cret", "origin": "http://example.test"})
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "http://example.test"
        pre = httpx.options(srv.url + "/v1/completions", timeout=10, headers={
            "origin": "http://example.test", "access-control-request-method": "POST"})
        assert pre.headers.get("access-control-allow-origin") == "http://example.test"
        assert httpx.get(srv.url + "/", timeout=10).status_code == 200  # the page itself needs no key
    with Served({"tiny": ckpt}, ws) as srv:  # CORS off unless asked
        pre = httpx.options(srv.url + "/v1/completions", timeout=10, headers={
            "origin": "http://example.test", "access-control-request-method": "POST"})
        assert "access-control-allow-origin" not in pre.headers


def test_serve_command_refuses_an_open_host_without_a_key_and_names_models(run, ws, ckpt):
    res = run("serve", str(ckpt), "--host", "0.0.0.0", code=1)
    assert "--api-key" in res.output and "Traceback" not in res.output
    assert model_names([str(ckpt), f"other={ckpt}", "hf:me/tiny-lstm"], ws) == [
        (f"{ckpt.parent.name}-m", str(ckpt)), ("other", str(ckpt)), ("tiny-lstm", "hf:me/tiny-lstm")]
    assert "no trained model to serve" in run("serve", code=1).output  # an empty workspace


@needs_chromium
def test_playground_in_chromium(ckpt, ws):
    """The page at /: a prime typed, Generate clicked, the streamed text read from the page (the
    seeded text gen sample draws), the checks panel, and the pick-the-next-character mode."""
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (uses the system Chromium)")
    with Served({"tiny": ckpt, "other": ckpt}, ws) as srv, playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(srv.url + "/", timeout=20_000)
            page.wait_for_selector("body[data-ready='1']", timeout=20_000)
            assert page.eval_on_selector_all("#model option", "os => os.map(o => o.value)") == ["tiny", "other"]
            page.fill("#prime", "The (river")
            page.fill("#length", "80")
            page.fill("#seed", "3")
            page.click("#go")
            page.wait_for_selector("body[data-done='1']", timeout=30_000)
            assert page.text_content("#outgen") == in_process(ckpt, "The (river", 80, 3)
            assert "chars/s" in page.text_content("#status")
            page.wait_for_selector("#checkbody table", timeout=10_000)
            assert "issue(s)" in page.text_content("#checkbody")
            # pick mode: the model's top 5 as buttons; a click appends that character
            page.check("input[value=pick]")
            page.wait_for_function("document.querySelectorAll('#choices button').length === 5", timeout=10_000)
            before = page.input_value("#prime")
            page.click("#choices button >> nth=0")
            page.wait_for_function(f"document.body.dataset.picked === '{len(before) + 1}'", timeout=10_000)
            assert page.input_value("#prime").startswith(before)
            page.fill("#prime", "She said (slowly")
            page.dispatch_event("#prime", "input")
            page.wait_for_function("document.body.dataset.picked === '16'", timeout=10_000)
            page.wait_for_function("document.querySelector('.unclosed') && "
                                   "document.querySelector('.unclosed').textContent === ')'", timeout=10_000)
        finally:
            browser.close()

"""Regenerate the README screenshots of the playground (`gen serve`) and of an exported model's
web page (needs chromium and playwright):

    python -m gen.evals.dev.pages CHECKPOINT --workspace WS [--out docs]

Serves CHECKPOINT on 127.0.0.1 (a free port) and exports it to a temporary folder served by a
static file server; both stop when the pictures are taken.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import time
from pathlib import Path

PRIME = "ROMEO:\nI will not"


def main() -> None:
    import uvicorn
    from playwright.sync_api import sync_playwright

    from gen.core.export import export_model
    from gen.core.models import load_model
    from gen.core.serve.app import create_app
    from gen.core.serve.command import load_served
    from gen.core.serve.engine import Worker
    from gen.core.serve.requests import Limits
    from gen.evals.bench.exported import static_server
    from gen.evals.dev.screenshots import browser as browser_path

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--workspace", required=True)
    ap.add_argument("--out", default="docs")
    a = ap.parse_args()
    ws, out = Path(a.workspace), Path(a.out)
    worker = Worker().start()
    served = load_served([("shakespeare", a.checkpoint)], ws, Limits(), "cpu", "auto", worker)
    server = uvicorn.Server(uvicorn.Config(create_app(served), host="127.0.0.1", port=0, log_level="error",
                                           lifespan="off"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    tmp = Path(tempfile.mkdtemp())
    export_model(load_model(a.checkpoint, ws), tmp / "model", ws, card=False)
    static = static_server(tmp)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=browser_path(), args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1150, "height": 720})
            page.goto(url + "/")
            page.wait_for_selector("body[data-ready='1']")
            page.fill("#prime", PRIME)
            page.fill("#seed", "7")
            page.fill("#length", "500")
            page.click("#go")
            page.wait_for_selector("body[data-done='1']")
            page.wait_for_selector("#checkbody table")
            page.screenshot(path=str(out / "playground.png"))
            page = browser.new_page(viewport={"width": 900, "height": 620})
            page.goto(f"http://127.0.0.1:{static.server_port}/model/web/")
            page.wait_for_selector("body[data-ready='1']")
            page.fill("#prime", PRIME)
            page.fill("#length", "400")
            page.click("#go")
            page.wait_for_selector("body[data-done='1']", timeout=60_000)
            page.screenshot(path=str(out / "export-page.png"))
            browser.close()
    finally:
        server.should_exit = True
        static.shutdown()
        worker.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"wrote {out / 'playground.png'} and {out / 'export-page.png'}")


if __name__ == "__main__":
    main()

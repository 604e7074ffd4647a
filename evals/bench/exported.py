"""Benchmark of an exported model: export time and sizes, and single-stream sampling speed in
gen's own stepper, onnxruntime (Python) and the browser (headless Chromium): the exported page's
JavaScript step, and ONNX Runtime Web running model.onnx when its npm package is given.

    python -m gen.evals.bench.exported CHECKPOINT --workspace WS [--ort-web DIR] [--chars 1000]

``--ort-web``: the ``dist`` folder of the npm package ``onnxruntime-web`` (``npm pack
onnxruntime-web``, then untar): its wasm build is measured beside the page's JavaScript, which is
how the exported page's runtime was chosen (README, "Exporting a model"). Prints one table.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import mimetypes
import shutil
import tempfile
import threading
import time
from pathlib import Path

import torch

from gen.core import table
from gen.core.config import SampleOptions
from gen.core.export import export_model
from gen.core.models import load_model
from gen.core.onnxstep import OnnxStepper
from gen.core.sample import sample

ORT_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
# ONNX Runtime Web on one thread (several need cross-origin isolation headers a plain static
# server does not send): it steps model.onnx one character at a time, as the page's JavaScript does
ORT_PAGE = """<!doctype html><meta charset="utf-8"><script src="ort.wasm.min.js"></script><script>
async function bench(n) {
  const t0 = performance.now();
  ort.env.wasm.numThreads = 1; ort.env.wasm.wasmPaths = "./";
  const cfg = await (await fetch("../model/config.json")).json();
  const s = await ort.InferenceSession.create("../model/model.onnx", {executionProviders: ["wasm"]});
  const S = cfg.onnx.state_rows, H = cfg.model_args.n_hidden;
  let state = new ort.Tensor("float32", new Float32Array(S * H), [S, 1, H]), id = 0, first = null;
  const t1 = performance.now();
  for (let i = 0; i < n; i++) {
    const out = await s.run({ids: new ort.Tensor("int64", BigInt64Array.from([BigInt(id)]), [1]), state});
    state = out.state_out;
    const l = out.logits.data; id = l.indexOf(Math.max(...l));
    if (first === null) first = performance.now() - t0;
  }
  return {first_ms: first, cps: n / ((performance.now() - t1) / 1000)};
}
</script>"""
JS_BENCH = """async (n) => {
  const t0 = performance.now();
  const m = await gen.loadModel(".."), state = m.initState();
  let id = 0, first = null;
  const t1 = performance.now();
  for (let i = 0; i < n; i++) {
    const l = m.step(id, state); id = l.indexOf(Math.max(...l));
    if (first === null) first = performance.now() - t0;
  }
  return {first_ms: first, cps: n / ((performance.now() - t1) / 1000)};
}"""


def stepper_cps(loaded, chars: int, precision: str, stepper=None, repeats: int = 3) -> float:
    """Best of ``repeats`` single-stream samples of ``chars`` characters through ``sample``."""
    best = 0.0
    for r in range(repeats):
        opts = SampleOptions(length=chars, seed=r, stop=[], precision=precision)
        t0 = time.perf_counter()
        sample(loaded.model, loaded.vocab, opts, stepper=stepper)
        best = max(best, chars / (time.perf_counter() - t0))
    return best


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # the table is the output
        pass


def static_server(root: Path) -> http.server.ThreadingHTTPServer:
    """A static file server of ``root`` on 127.0.0.1 (a free port), serving on a daemon thread
    until ``shutdown()``: how a user serves an export folder, for the page in a browser."""
    mimetypes.add_type("application/wasm", ".wasm")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def browser_rows(site: Path, chars: int, with_ort: bool) -> list[list[str]]:
    """Time to the first character (loading included) and chars/s, best of three page loads."""
    from playwright.sync_api import sync_playwright

    server = static_server(site)
    rows, base = [], f"http://127.0.0.1:{server.server_port}"
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            for name, url, call in [("browser: page's JavaScript step", f"{base}/model/web/", JS_BENCH),
                                    *([("browser: ONNX Runtime Web (wasm, 1 thread)", f"{base}/ort/",
                                        "(n) => bench(n)")] if with_ort else [])]:
                runs = []
                for _ in range(3):
                    page = browser.new_page()
                    page.goto(url)
                    page.wait_for_function("typeof gen !== 'undefined' || typeof bench !== 'undefined'")
                    runs.append(page.evaluate(call, chars))
                    page.close()
                shipped = sum(f.stat().st_size for f in (site / ("model/web" if "page" in name else "ort")).iterdir())
                rows.append([name, f"{max(r['cps'] for r in runs):,.0f}", f"{min(r['first_ms'] for r in runs):.0f}",
                             f"{shipped / 1e6:.3f}"])
            browser.close()
    finally:
        server.shutdown()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--workspace", required=True)
    ap.add_argument("--ort-web", help="onnxruntime-web's dist folder (npm pack onnxruntime-web)")
    ap.add_argument("--chars", type=int, default=1000)
    a = ap.parse_args()
    ws = Path(a.workspace)
    loaded = load_model(a.checkpoint, ws)
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp)
        rep = export_model(loaded, site / "model", ws)
        print(f"export of {a.checkpoint}: {rep.seconds:.1f} s; "
              + ", ".join(f"{k} {v:,} B" for k, v in rep.sizes.items()))
        t0 = time.perf_counter()
        export_model(loaded, site / "quick", ws, card=False)
        print(f"export without the card (no sampling or eval): {time.perf_counter() - t0:.1f} s")
        a_ = loaded.model.args
        ort = OnnxStepper(site / "model" / "model.onnx", a_.cell, a_.n_layer, a_.n_hidden)
        rows = [[f"gen stepper ({p})", f"{stepper_cps(loaded, a.chars, p):,.0f}", "-", "-"] for p in ("fp32", "auto")]
        rows.append(["onnxruntime (Python, CPU)", f"{stepper_cps(loaded, a.chars, 'fp32', ort):,.0f}", "-", "-"])
        if a.ort_web:
            (site / "ort").mkdir()
            for name in ORT_FILES:
                shutil.copy(Path(a.ort_web) / name, site / "ort" / name)
            (site / "ort" / "index.html").write_text(ORT_PAGE)
        rows += browser_rows(site, a.chars, bool(a.ort_web))
    print(f"single stream, {a.chars:,} characters, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(table.render(rows, [["runtime", "chars/s", "first char ms", "MB shipped"]], align="<>>>"))


if __name__ == "__main__":
    main()

"""Regenerate the README screenshots of the viz page from a checkpoint (needs chromium).

    python -m gen.evals.dev.screenshots CHECKPOINT [--corpus NAME | --text FILE] [--feature line_position]

writes docs/viz-activation.png (the text coloured by the best cell for a domain feature, found
with the neuron search) and docs/viz-top5.png (per-character loss colouring with the strip of
top-5 guesses open), each kept under 300 KB.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import click

from gen.core import workspace as ws_mod
from gen.core.errors import GenError

MAX_BYTES = 300_000


def browser() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise GenError("no chromium found: apt-get install chromium")


def screenshot(url: str, out: Path, size: tuple[int, int] = (1100, 640), timeout: float = 120) -> Path:
    """Headless Chromium screenshot of ``url``; re-encoded with a 256-colour palette if too big."""
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([browser(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        "--hide-scrollbars", f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}",
                        f"--screenshot={out}", url], capture_output=True, timeout=timeout, check=True)
    if out.stat().st_size > MAX_BYTES:
        from PIL import Image

        Image.open(out).convert("RGB").quantize(256).save(out, optimize=True)
    return out


@click.command()
@click.argument("checkpoint")
@click.option("--corpus", help="a prepared corpus: a window of its held-out text (default: the checkpoint's)")
@click.option("--text", "text_file", type=click.Path(exists=True, dir_okay=False), help="a text file instead")
@click.option("--chars", default=3000, show_default=True)
@click.option("--offset", default=0, show_default=True)
@click.option("--feature", help="colour by the best cell for this domain feature (default: the strongest match)")
@click.option("--cell", help="colour by this cell instead (LAYER:KIND:INDEX)")
@click.option("--pos", default=None, type=int, help="character whose top-5 strip is opened (default: a line start)")
@click.option("--out", default="docs", show_default=True, type=click.Path(file_okay=False))
def main(checkpoint: str, corpus: str | None, text_file: str | None, chars: int, offset: int,
         feature: str | None, cell: str | None, pos: int | None, out: str) -> None:
    from gen.core.models import load_model
    from gen.core.registry import get_domain
    from gen.evals.inspect.commands import load_text
    from gen.evals.inspect.neurons import find_cells, pinned_cells
    from gen.evals.inspect.viz import cell_key, trace, write_page

    ws = ws_mod.workspace_dir()
    loaded = load_model(checkpoint, ws)
    text, source = load_text(loaded, text_file, corpus, chars, offset, ws, "viz")
    tr = trace(loaded.model, loaded.vocab, text)
    rep = find_cells(tr, get_domain(loaded.ckpt["domain"]).features(text))
    if cell is None:
        matches = [m for m in rep.matches if feature in (None, m.feature)]
        if not matches:
            raise GenError(f"no feature {feature!r}; features: {', '.join(m.feature for m in rep.matches)}")
        best = max(matches, key=lambda m: abs(m.best[1]))
        cell = cell_key(*best.best[0])
        click.echo(f"colouring by {cell}: best cell for {best.feature}, r = {best.best[1]:+.3f}")
    if pos is None:  # the first character after the third line break: the strip shows a line start
        starts = [i + 1 for i, ch in enumerate(text[:-1]) if ch == "\n"]
        pos = starts[min(2, len(starts) - 1)] if starts else min(30, len(text) - 1)
    a = loaded.model.args
    with tempfile.TemporaryDirectory() as tmp:
        page = write_page(Path(tmp) / "viz.html", tr, f"{loaded.ckpt.get('corpus', '')}: inside a "
                          f"{a.n_layer}x{a.n_hidden} {a.cell}", {"text": source}, pinned=pinned_cells(rep))
        out_dir = Path(out)
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, frag in (("viz-activation.png", f"cell={cell}"), ("viz-top5.png", f"mode=loss&pos={pos}")):
            path = screenshot(f"file://{page.resolve()}#{frag}", out_dir / name)
            click.echo(f"wrote {path} ({path.stat().st_size / 1000:.0f} KB)")


if __name__ == "__main__":
    main()

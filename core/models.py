"""A trained model, loaded to sample from: by corpus name, run folder, checkpoint file, exported
folder (`gen export`) or Hugging Face Hub id (``hf:user/name``).

Every command that samples (`gen sample`, sweeps, guided evals, viz, the Python API) loads a
model here and draws with one :class:`~gen.core.config.SampleOptions` through the one sampling
function (core/sample.py), with the domain's rules: its stop string, its tracker when guided,
and the training corpus's statistics when a tracker needs them (names to avoid).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gen.core.config import SampleOptions
from gen.core.corpora import load_corpus
from gen.core.domain import Domain
from gen.core.errors import GenError
from gen.core.registry import get_domain, resolve_corpus
from gen.core.workspace import CorpusDir, RunDir, exported_outputs, latest_checkpoint

if TYPE_CHECKING:  # torch loads only where a command samples
    from gen.core.sample import SampleStats


@dataclass
class Loaded:
    """A checkpoint loaded for sampling: the model (eval mode, CPU), its vocabulary and domain."""

    model: Any
    vocab: Any
    ckpt: dict[str, Any]
    path: Path  # the checkpoint file, or the exported folder
    outputs: RunDir | None = None  # where samples and pages go when not beside the checkpoint

    @property
    def run(self) -> RunDir:
        """The folder samples, viz pages and neuron tables go to: the checkpoint's run, or for an
        export (possibly a read-only Hub cache) a folder of its own in the workspace."""
        return self.outputs or RunDir.of(self.path)

    @property
    def separator(self) -> str:
        """The training corpus's document separator (checkpoints before it was saved: newline)."""
        return self.ckpt.get("separator", "\n")

    @property
    def domain(self) -> Domain:
        return get_domain(self.ckpt["domain"])

    def generate(self, ws: Path, opts: SampleOptions,
                 on_char: Callable[[int, str], None] | None = None) -> tuple[list[str], SampleStats]:
        """Everything `gen sample` does: ``opts.n`` samples with the domain's stop string,
        structure-guided when asked (the tracker may use the training corpus: names to avoid)."""
        stats = None
        if opts.guided or opts.novel_only:
            corpus = self.ckpt["corpus"]
            if CorpusDir.of(ws, corpus).is_prepared():
                from gen.core.statscache import load_or_build

                stats = load_or_build(self.domain, load_corpus(corpus, ws)[1])
            elif opts.novel_only:
                raise GenError(f"--novel-only needs the training corpus: gen prepare {corpus}")
        return sample_texts(self, opts, on_char, stats)


def load_model(target: str, ws: Path) -> Loaded:
    """A checkpoint path, a run folder, an exported folder, ``hf:user/name``, or a corpus/domain
    name meaning its latest run's best checkpoint."""
    from gen.core import exportdir

    if target.startswith(exportdir.HUB_PREFIX):
        loaded = load_checkpoint(exportdir.hub_folder(target))
        loaded.outputs = exported_outputs(ws, target[len(exportdir.HUB_PREFIX):])
        return loaded
    path = Path(target)
    if exportdir.is_export(path):
        loaded = load_checkpoint(path)
        loaded.outputs = exported_outputs(ws, path.resolve().name)
        return loaded
    if not (path.suffix == ".pt" or path.is_file() or path.is_dir()):
        spec = resolve_corpus(target, ws)
        path = latest_checkpoint(ws, spec.name)
    elif path.is_dir():
        path = RunDir(path).model_checkpoint()
    return load_checkpoint(path)


def load_checkpoint(path: str | Path) -> Loaded:
    """One checkpoint file (or exported folder), ready to sample from."""
    from gen.core import checkpoint as ckpt_io
    from gen.core import exportdir

    ckpt = exportdir.read_export(Path(path)) if exportdir.is_export(Path(path)) else ckpt_io.load(path)
    model, vocab = ckpt_io.model_from_checkpoint(ckpt, f"checkpoint {path}")
    return Loaded(model, vocab, ckpt, Path(path))


def sample_texts(loaded: Loaded, opts: SampleOptions, on_char: Callable[[int, str], None] | None = None,
                 stats: Any = None) -> tuple[list[str], SampleStats]:
    """Sample from a loaded checkpoint with its domain's rules (guided: one tracker per stream,
    ``--novel-only`` adding the "novel" family to the chosen ones)."""
    from gen.core.sample import make_trackers, sample

    domain = loaded.domain
    trackers = None
    if opts.guided or opts.novel_only:
        constraints = [*opts.constraints, "novel"] if opts.novel_only and opts.constraints else opts.constraints
        trackers = make_trackers(domain, opts.n, constraints or None, stats)
    return sample(loaded.model, loaded.vocab, opts, separator=loaded.separator, domain=domain,
                  trackers=trackers, on_char=on_char)

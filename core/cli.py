"""The `gen` command line (click). Thin: each command parses, calls core, and says where it wrote."""

from __future__ import annotations

import errno
import os
import sys
import time
from pathlib import Path

import click

from gen.core import pipeline
from gen.core import workspace as ws_mod
from gen.core.device import is_main_process
from gen.core.errors import GenError

TRAIN_OPTIONS = [  # (flag, TrainConfig field, type, help)
    ("--cell", "cell", click.Choice(["lstm", "gru", "rnn"]), "recurrent cell"),
    ("--layers", "n_layer", int, "recurrent layers"),
    ("--hidden", "n_hidden", int, "units per layer"),
    ("--embd", "n_embd", int, "embedding size"),
    ("--dropout", "dropout", float, "dropout between layers"),
    ("--batch-size", "batch_size", int, "parallel streams per step"),
    ("--seq-len", "seq_len", int, "truncated BPTT length"),
    ("--optimizer", "optimizer", click.Choice(["adam", "adamw", "rmsprop"]), "optimizer"),
    ("--lr", "lr", float, "peak learning rate"),
    ("--schedule", "schedule", click.Choice(["cosine", "linear", "constant"]), "decay after warm-up"),
    ("--warmup", "warmup_steps", int, "warm-up steps"),
    ("--weight-decay", "weight_decay", float, "AdamW weight decay"),
    ("--grad-clip", "grad_clip", float, "global-norm gradient clip (0 = off)"),
    ("--max-steps", "max_steps", int, "step budget"),
    ("--eval-every", "eval_every", int, "validate every N steps"),
    ("--eval-chars", "eval_chars", int, "validation characters (0 = all)"),
    ("--sample-every", "sample_every", int, "write a sample every N steps (0 = off)"),
    ("--seed", "seed", int, "random seed"),
    ("--device", "device", str, "auto, cpu, cuda, cuda:N"),
    ("--precision", "precision", click.Choice(["auto", "fp32", "bf16"]), "autocast precision"),
    ("--threads", "threads", int, "CPU threads (0 = all cores)"),
]


class _Group(click.Group):
    """Adds plugin commands (register_commands hook) on first lookup; GenError -> clean message."""

    _plugin_commands_loaded = False

    def _load_plugin_commands(self) -> None:
        if not self._plugin_commands_loaded:
            self._plugin_commands_loaded = True
            from gen.core.plugins import load_plugins

            load_plugins().hook.register_commands(cli=self)

    def get_command(self, ctx, name):
        self._load_plugin_commands()
        return super().get_command(ctx, name)

    def list_commands(self, ctx):
        self._load_plugin_commands()
        return super().list_commands(ctx)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except GenError as exc:
            raise click.ClickException(str(exc)) from None
        except OSError as exc:  # an unwritable, full or odd workspace or path: one line, no traceback
            raise click.ClickException(os_error_message(exc)) from None


def os_error_message(exc: OSError) -> str:
    """One line for a file-system failure: what, where, and what to do."""
    where = f" ({exc.filename})" if exc.filename else ""
    hint = {errno.ENOSPC: "free some space", errno.EFBIG: "the file size limit was hit (ulimit -f)",
            errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
            errno.EDQUOT: "the disk quota is full"}.get(exc.errno, "check the path")
    return (f"{exc.strerror or exc}{where}: {hint}; use a workspace you can write to "
            f"(--workspace DIR or GEN_HOME) or another --out path")


@click.group(cls=_Group)
@click.option("--workspace", envvar=ws_mod.ENV_HOME, type=click.Path(file_okay=False), default=None,
              help="where corpora and runs live (default ~/.local/share/gen; env GEN_HOME)")
@click.pass_context
def cli(ctx: click.Context, workspace: str | None) -> None:
    """Train character-level LSTMs on structured text and judge what they generate."""
    ctx.obj = ws_mod.workspace_dir(workspace)
    # matplotlib keeps a font cache in ~/.cache unless told otherwise: keep it in the workspace
    os.environ.setdefault("MPLCONFIGDIR", str(ctx.obj / ".cache" / "matplotlib"))


def _ws() -> Path:
    return click.get_current_context().obj


@cli.command()
@click.argument("name", metavar="[DOMAIN]", required=False)
def domains(name: str | None) -> None:
    """List domains, their corpora and the plugin each came from; with DOMAIN, its options too."""
    from gen.core.options import describe
    from gen.core.registry import get_domain, get_registry

    reg = get_registry()
    chosen = {name: get_domain(name)} if name else dict(sorted(reg.domains.items()))
    for dname, dom in chosen.items():
        corpora = [c for c, s in sorted(reg.corpora.items()) if s.domain == dname]
        click.echo(f"{dname:8} {dom.description}")
        click.echo(f"         corpora: {', '.join(corpora) or '-'} (default {dom.default_corpus or '-'})")
        for stage, opts in (("prepare", dom.prepare_options), ("eval", dom.eval_options)):
            if opts and name:
                click.echo(f"         gen {stage} options:")
                click.echo("\n".join(f"           {line}" for line in describe(opts)))
            elif opts:
                click.echo(f"         {stage} options: {', '.join(o.flag for o in opts)}")
        click.echo(f"         from {reg.domain_origin[dname]}")

@cli.command()
def corpora() -> None:
    """List corpora, their domains and whether each is prepared in the workspace."""
    from gen.core.registry import default_source, get_registry

    ws = _ws()
    for name, spec in sorted(get_registry().corpora.items()):
        state = "prepared" if ws_mod.is_prepared(ws, name) else "not prepared"
        src = default_source(spec) or "needs --src"
        click.echo(f"{name:12} {spec.domain:7} {state:13} {spec.description}  [source: {src}]")
    click.echo(f"workspace: {ws}")


@cli.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("corpus")
@click.option("--src", help="file, directory, .tar(.gz/.xz) archive, or - for stdin")
@click.pass_context
def prepare(ctx: click.Context, corpus: str, src: str | None) -> None:
    """Read a corpus source into encoded train/val data. The domain's own flags may follow
    (`gen domains DOMAIN` lists them)."""
    from gen.core import options
    from gen.core.registry import get_domain, resolve_corpus

    domain = get_domain(resolve_corpus(corpus).domain)
    opts = options.parse(domain.prepare_options, ctx.args, f"gen prepare {corpus}")
    meta = pipeline.prepare_corpus(corpus, src, _ws(), opts)
    rep = meta["report"]
    click.echo(f"prepared {meta['corpus']} ({meta['domain']}) from {meta['src']}: {rep['documents']:,} documents, "
               f"{meta['train_chars']:,} train + {meta['val_chars']:,} val chars, vocab {meta['vocab_size']}, "
               f"{meta['seconds']:.1f} s ({meta['mb_per_s']} MB/s)")
    for reason, n in sorted(rep["skipped"].items()):
        click.echo(f"  skipped {n:,}: {reason}")
    for note in rep["notes"]:
        click.echo(f"  note: {note}")
    click.echo(f"wrote {ws_mod.corpus_dir(_ws(), meta['corpus'])}")


def _train_options(f):
    for flag, field, typ, help_ in reversed(TRAIN_OPTIONS):
        f = click.option(flag, field, type=typ, default=None, help=help_)(f)
    return f


@cli.command()
@click.argument("corpus")
@_train_options
@click.option("--max-time", default=None, help="time budget, e.g. 90s, 10m, 1.5h")
@click.option("--resume", type=click.Path(dir_okay=False), help="continue from this checkpoint (last.pt)")
@click.option("--run-name", default=None, help="run folder name (default: a timestamp)")
@click.option("--quiet", is_flag=True, help="no progress bar")
def train(corpus: str, max_time: str | None, resume: str | None, run_name: str | None, quiet: bool,
          **overrides) -> None:
    """Train a model on a prepared corpus with the domain's defaults (options override them)."""
    from gen.core import checkpoint as ckpt_io
    from gen.core.config import parse_duration
    from gen.core.train import train as run_train

    spec, data = pipeline.load_corpus(corpus, _ws())
    resume_ckpt = ckpt_io.load(resume) if resume else None
    if resume_ckpt:  # a resume continues the same configuration, options may extend budgets
        given = {k: v for k, v in overrides.items() if v is not None}  # only what the command line names
        cfg = pipeline.resolve_config(spec, {**resume_ckpt["config"], **given})
        run_dir = Path(resume).parent
    else:
        from gen.core.device import from_rank0, init_distributed

        cfg = pipeline.resolve_config(spec, overrides)
        rank, _, _ = init_distributed(cfg)  # under torchrun only rank 0 creates the run folder
        run_dir = from_rank0(ws_mod.new_run_dir(_ws(), spec.name, run_name).path if rank == 0 else None)
    if max_time:
        cfg.max_time = parse_duration(max_time)
    click.echo(f"run folder: {run_dir}")
    res = run_train(data, cfg, run_dir, spec.domain, resume=resume_ckpt, progress=not quiet, log=click.echo)
    if not is_main_process():  # under torchrun only rank 0 reports and writes
        return
    best = (f"best val loss {res.best_val:.4f} nats ({res.best_val / 0.6931:.3f} bpc)" if res.best_val < float("inf")
            else "no validation ran yet, so there is no best.pt")
    click.echo(f"stopped ({res.stopped}) at step {res.step}: {best}")
    run = ws_mod.RunDir(run_dir)
    for writer in run_writers():  # e.g. the run's HTML page; never fails a finished run
        try:
            writer(run)
        except (GenError, OSError) as exc:
            click.echo(f"note: {getattr(writer, '__name__', 'a run writer')} failed ({exc})", err=True)
    wrote = sorted(p.name for p in run.path.iterdir() if not p.name.startswith(".") and p.is_file())
    click.echo(f"wrote {run_dir}/{{{', '.join(wrote)}}}")


def run_writers() -> list:
    """Callables plugins registered to run after training (register_run_writers hook)."""
    from gen.core.plugins import load_plugins

    writers: list = []
    load_plugins().hook.register_run_writers(register=writers.append)
    return writers


@cli.command()
@click.argument("target")
@click.option("-n", "--num", default=1, show_default=True, help="number of samples")
@click.option("-l", "--length", default=None, type=int, help="max characters per sample")
@click.option("-t", "--temperature", default=0.8, show_default=True, type=float)
@click.option("--top-k", default=0, type=int, help="sample from the k most likely characters")
@click.option("--top-p", default=1.0, type=float, help="nucleus sampling threshold")
@click.option("--prime", default="", help="text the samples start with")
@click.option("--prime-file", type=click.Path(exists=True, dir_okay=False), help="read the prime from a file")
@click.option("--stop", multiple=True, help="stop a sample at this string (repeatable)")
@click.option("--seed", default=None, type=int, help="make sampling reproducible")
@click.option("--guided", is_flag=True, help="structure-guided: mask characters that break structure")
@click.option("--constraint", "constraints", multiple=True, help="with --guided: only these constraint families")
@click.option("--novel-only", is_flag=True, help="names: never produce a training name (guided)")
@click.option("--out", type=click.Path(), help="write samples here (.txt, .jsonl or a directory)")
@click.option("--jsonl", is_flag=True, help="write JSONL (one {\"text\": ...} per line)")
def sample(target: str, num: int, length: int | None, temperature: float, top_k: int, top_p: float, prime: str,
           prime_file: str | None, stop: tuple[str, ...], seed: int | None, guided: bool,
           constraints: tuple[str, ...], novel_only: bool, out: str | None, jsonl: bool) -> None:
    """Generate from a checkpoint, or from a corpus's latest trained run."""
    from gen.core.sample import SampleOptions
    from gen.core.samplesfile import write_samples

    loaded = pipeline.load_model(target, _ws())
    domain = loaded.domain
    if prime_file:
        prime = Path(prime_file).read_text(encoding="utf-8")
    length = length or (50 if domain.samples_per_line else 1000)
    opts = SampleOptions(n=num, length=length, temperature=temperature, top_k=top_k, top_p=top_p, prime=prime,
                         stop=[s.encode().decode("unicode_escape") for s in stop] or None, seed=seed)
    stats = None
    if guided or novel_only:  # trackers may use the training corpus (names: the names to avoid)
        guided = True
        if ws_mod.is_prepared(_ws(), loaded.ckpt["corpus"]):
            stats = domain.corpus_stats(pipeline.load_corpus(loaded.ckpt["corpus"], _ws())[1])
        elif novel_only:
            raise GenError(f"--novel-only needs the training corpus: gen prepare {loaded.ckpt['corpus']}")
        if novel_only:
            constraints = (*constraints, "novel") if constraints else ()
    stream = num == 1 and sys.stdout.isatty() and not domain.samples_per_line
    on_char = (lambda s, ch: (sys.stdout.write(ch), sys.stdout.flush())) if stream else None
    texts, stats = pipeline.sample_texts(loaded, opts, guided, list(constraints) or None, on_char, stats)
    if stats.unknown_prime:
        click.echo(f"note: the prime has characters the model never saw; encoded as "
                   f"{', '.join(f'{k!r}->{v!r}' for k, v in stats.unknown_prime.items())}", err=True)
    if not stream:
        sep = "\n" if domain.samples_per_line else "\n" + "-" * 40 + "\n"
        click.echo(sep.join(texts))
    else:
        click.echo()
    if guided:
        click.echo(f"guided: {stats.masked_steps} masked steps, {stats.fallbacks} fallbacks to unmasked", err=True)
    if out is None:
        suffix = ".jsonl" if jsonl or not domain.samples_per_line else ".txt"
        out = str(loaded.run.samples / (time.strftime("%Y%m%d-%H%M%S") + suffix))
    elif jsonl and not out.endswith(".jsonl"):
        out += ".jsonl"
    path = write_samples(out, texts, per_line=domain.samples_per_line)
    click.echo(f"wrote {len(texts)} samples to {path}", err=True)


def main() -> None:
    cli(prog_name="gen")


if __name__ == "__main__":
    main()

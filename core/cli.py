"""The `gen` command line (click). Thin: each command parses, calls core, and says where it wrote."""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

import click

# STARTED: when this command began, before torch loaded (a --max-time budget covers all of it)
from gen.core import STARTED
from gen.core import workspace as ws_mod
from gen.core.config import SampleOptions
from gen.core.errors import GenError
from gen.core.options import device_option, precision_option

TRAIN_OPTIONS = [  # (flag, TrainConfig field, help); types and ranges come from gen.core.config
    ("--cell", "cell", "recurrent cell"),
    ("--layers", "n_layer", "recurrent layers"),
    ("--hidden", "n_hidden", "units per layer"),
    ("--embd", "n_embd", "embedding size"),
    ("--dropout", "dropout", "dropout between layers"),
    ("--weight-drop", "weight_drop", "DropConnect on the hidden-to-hidden weights"),
    ("--embed-drop", "embed_drop", "dropout of whole characters' embeddings"),
    ("--batch-size", "batch_size", "parallel streams per step"),
    ("--seq-len", "seq_len", "truncated BPTT length"),
    ("--optimizer", "optimizer", "optimizer"),
    ("--lr", "lr", "peak learning rate"),
    ("--schedule", "schedule", "decay after warm-up"),
    ("--warmup", "warmup_steps", "warm-up steps (a short budget scales them down)"),
    ("--weight-decay", "weight_decay", "AdamW weight decay"),
    ("--ema", "ema", "averaged weights: their decay per step, validated and kept as best (0 = off)"),
    ("--grad-clip", "grad_clip", "global-norm gradient clip (0 = off)"),
    ("--max-steps", "max_steps", "step budget"),
    ("--max-time", "max_time", "time budget for the whole command, e.g. 90s, 10m, 1.5h"),
    ("--recipe", "recipe", "auto: options nobody set are picked for the corpus, machine and time budget; "
                           "defaults: the domain's"),
    ("--eval-every", "eval_every", "validate every N steps (and always at the end)"),
    ("--eval-chars", "eval_chars", "validation characters (0 = all)"),
    ("--sample-every", "sample_every", "write a sample every N steps, and one at the end (0 = off)"),
    ("--seed", "seed", "random seed"),
    ("--device", "device", "auto, cpu, cuda, cuda:N"),
    ("--precision", "precision", "autocast precision"),
    ("--threads", "threads", "CPU threads (0 = all cores)"),
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
        return add_workspace_option(super().get_command(ctx, name))

    def list_commands(self, ctx):
        self._load_plugin_commands()
        return super().list_commands(ctx)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except GenError as exc:
            raise click.ClickException(str(exc)) from None
        except BrokenPipeError:  # `gen ... | head` closed the pipe: nothing more to say, to anyone
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise SystemExit(141) from None
        except OSError as exc:  # an unwritable, full or odd workspace or path: one line, no traceback
            raise click.ClickException(os_error_message(exc)) from None


def _set_workspace(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:  # given after the subcommand: it wins over the group's
        ws = ws_mod.workspace_dir(value)
        while ctx is not None:  # each context holds its own copy of the workspace
            ctx.obj, ctx = ws, ctx.parent


def add_workspace_option(cmd: click.Command | None) -> click.Command | None:
    """Let ``--workspace DIR`` also follow the subcommand (gen train names --workspace DIR)."""
    if cmd is not None and not isinstance(cmd, click.Group) and "workspace" not in {p.name for p in cmd.params}:
        cmd.params.append(click.Option(["--workspace"], type=click.Path(file_okay=False), expose_value=False,
                                       is_eager=True, callback=_set_workspace,
                                       help="where corpora and runs live (as before the subcommand)"))
    return cmd


def os_error_message(exc: OSError) -> str:
    """One line for a file-system failure: what, where, and what to do."""
    where = f" ({exc.filename})" if exc.filename else ""
    hint = {errno.ENOSPC: "free some space", errno.EFBIG: "the file size limit was hit (ulimit -f)",
            errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
            errno.EDQUOT: "the disk quota is full"}.get(exc.errno, "check the path")
    return (f"{exc.strerror or exc}{where}: {hint}; use a workspace you can write to "
            f"(--workspace DIR or GEN_HOME) or another --out path")


@click.group(cls=_Group)
@click.version_option(package_name="gen-charrnn", prog_name="gen")
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
@click.option("--remove", "remove", metavar="NAME", help="delete your corpus NAME: its prepared data and manifest")
def corpora(remove: str | None) -> None:
    """List corpora (built-in and yours): domain, prepared or not, size, and where the text comes from."""
    from gen.core import table
    from gen.core.registry import all_corpora, default_source, resolve_corpus
    from gen.core.usercorpora import remove_user_corpus

    ws = _ws()
    if remove:
        for line in remove_user_corpus(ws, resolve_corpus(remove, ws)):
            click.echo(("" if line.startswith("kept") else "deleted ") + line)
        return
    rows = []
    for name, spec in sorted(all_corpora(ws).items()):
        folder = ws_mod.CorpusDir.of(ws, name)
        prepared = folder.is_prepared()
        meta = folder.read_meta() if prepared else {}
        src = meta.get("src") or spec.src or default_source(spec) or spec.download.get("url") or "needs --src"
        size = f"{(meta.get('train_chars', 0) + meta.get('val_chars', 0)) / 1e6:.2f}M chars" if prepared else "-"
        rows.append([name + (" *" if spec.user else ""), spec.domain, "prepared" if prepared else "not prepared",
                     size, spec.description, src])
    click.echo(table.render(rows, [["corpus", "domain", "state", "size", "what", "source"]]))
    click.echo(f"* your corpora (gen prepare NAME --src PATH); workspace: {ws}")


@cli.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("corpus")
@click.option("--src", help="file, directory, .tar(.gz/.xz) archive, or - for stdin "
                            "[default: the corpus's own source, downloaded and verified]")
@click.option("--domain", "domain_name", help="for your own corpus: its domain [default: inferred from --src]")
@click.option("--skip-data", is_flag=True, help="leave out documents that look like data (mostly numbers and commas)")
@click.pass_context
def prepare(ctx: click.Context, corpus: str, src: str | None, domain_name: str | None, skip_data: bool) -> None:
    """Read a corpus source into encoded train/val data: a built-in corpus, or your own text
    under a name of your choosing (gen prepare mybook --src mybook.txt). The domain's own flags
    may follow (`gen domains DOMAIN` lists them)."""
    from gen.core import options
    from gen.core.corpora import corpus_to_prepare, prepare_corpus
    from gen.core.registry import get_domain

    spec = corpus_to_prepare(corpus, src, _ws(), domain_name, click.echo)
    opts = options.parse(get_domain(spec.domain).prepare_options, ctx.args, f"gen prepare {corpus}")
    if skip_data:
        opts["skip_data"] = True
    meta = prepare_corpus(corpus, src, _ws(), opts, log=click.echo, spec=spec)
    rep = meta["report"]
    click.echo(f"prepared {meta['corpus']} ({meta['domain']}) from {meta['src']}: {rep['documents']:,} documents, "
               f"{meta['train_chars']:,} train + {meta['val_chars']:,} val chars, vocab {meta['vocab_size']}, "
               f"{meta['seconds']:.1f} s ({meta['mb_per_s']} MB/s)")
    for reason, n in sorted(rep["skipped"].items()):
        click.echo(f"  skipped {n:,}: {reason}")
    for note in rep["notes"]:
        click.echo(f"  note: {note}")
    click.echo(f"wrote {ws_mod.CorpusDir.of(_ws(), meta['corpus'])}")


class Duration(click.ParamType):
    """90, 90s, 10m, 1.5h -> seconds."""

    name = "duration"

    def convert(self, value, param, ctx):
        from gen.core.config import parse_duration

        try:
            return parse_duration(value)
        except GenError as exc:
            self.fail(str(exc), param, ctx)


def _train_options(f):
    from gen.core.config import TrainConfig, click_type

    kinds = {name: type(getattr(TrainConfig(), name)) for name in TrainConfig.field_names()}
    for flag, field, help_ in reversed(TRAIN_OPTIONS):
        typ = Duration() if field == "max_time" else click_type(field, kinds[field])
        f = click.option(flag, field, type=typ, default=None,
                         help=f"{help_} [default: from the domain and device; see --show-config]")(f)
    return f


@cli.command()
@click.argument("corpus")
@_train_options
@click.option("--config", "config_file", type=click.Path(dir_okay=False, exists=True),
              help="a TOML file of training options (command-line options override it)")
@click.option("--show-config", is_flag=True, help="print every resolved option and where it came from; do not train")
@click.option("--resume", type=click.Path(dir_okay=False, exists=True),
              help="continue from this checkpoint (last.pt): its options, unless given again")
@click.option("--run-name", default=None, help="run folder name (default: a timestamp)")
@click.option("--quiet", is_flag=True, help="no progress bar")
def train(corpus: str, config_file: str | None, show_config: bool, resume: str | None, run_name: str | None,
          quiet: bool, **overrides) -> None:
    """Train a model on a prepared corpus with the domain's defaults (options override them)."""
    from gen.core.plan import plan_training, run_training
    from gen.core.units import bpc

    plan = plan_training(corpus, _ws(), overrides, config_file, resume)
    if show_config:
        click.echo(format_config(plan.cfg))
        click.echo("\n".join(plan.recipe_notes))
        return
    res = run_training(plan, _ws(), run_name, STARTED, log=click.echo, progress=not quiet)
    run_dir = res.run_dir
    from gen.core.device import is_main_process

    if not is_main_process():  # under torchrun only rank 0 reports and writes
        return
    best = (f"best val loss {res.best_val:.4f} nats ({bpc(res.best_val):.3f} bpc)" if res.best_val < float("inf")
            else "no validation ran yet, so there is no best.pt")
    click.echo(f"stopped ({res.stopped}) at step {res.step}: {best}")
    run = ws_mod.RunDir(run_dir)
    from gen.core.trust import warnings

    for line in warnings(run.read_metrics()):
        click.echo(f"warning: {line}", err=True)
    for writer in run_writers():  # e.g. the run's HTML page; never fails a finished run
        try:
            writer(run)
        except (GenError, OSError) as exc:
            click.echo(f"note: {getattr(writer, '__name__', 'a run writer')} failed ({exc})", err=True)
    wrote = sorted(p.name for p in run.path.iterdir() if not p.name.startswith(".") and p.is_file())
    click.echo(f"wrote {run_dir}/{{{', '.join(wrote)}}}")
    _FINISHED_TRAINING.append(True)  # main() may now skip the interpreter's slow teardown


def format_config(cfg) -> str:
    """Every training option: value and where it came from (default, domain, manifest, file ...)."""
    import torch

    from gen.core import table

    rows = [[name, repr(getattr(cfg, name)), cfg.origin(name)] for name in cfg.field_names()]
    kind = "gpu" if torch.cuda.is_available() and cfg.device != "cpu" else "cpu"
    return (f"device kind: {kind} (domain and manifest defaults for {kind} apply)\n"
            + table.render(rows, [["option", "value", "from"]]))


def run_writers() -> list:
    """Callables plugins registered to run after training (register_run_writers hook)."""
    from gen.core.plugins import load_plugins

    writers: list = []
    load_plugins().hook.register_run_writers(register=writers.append)
    return writers


@cli.command()
@click.argument("target")
@click.option("-n", "--num", default=1, show_default=True, type=click.IntRange(1), help="number of samples")
@click.option("-l", "--length", default=None, type=click.IntRange(1),
              help="max characters per sample [default: 50 for names, else 1000]")
@click.option("-t", "--temperature", default=SampleOptions.temperature, show_default=True, type=click.FloatRange(0.0),
              help="below 1 sharper, above 1 flatter; 0 = always the likeliest character")
@click.option("--top-k", default=SampleOptions.top_k, show_default=True, type=click.IntRange(0),
              help="sample from the k most likely characters (0 = all)")
@click.option("--top-p", default=SampleOptions.top_p, show_default=True, type=click.FloatRange(0.0, 1.0, min_open=True),
              help="nucleus sampling threshold (1 = off)")
@click.option("--prime", default="", help="text the samples start with")
@click.option("--prime-file", type=click.Path(exists=True, dir_okay=False), help="read the prime from a file")
@click.option("--stop", multiple=True, help="stop a sample at this string (repeatable)")
@click.option("--seed", default=None, type=int, help="make sampling reproducible")
@click.option("--guided", is_flag=True, help="structure-guided: mask characters that break structure")
@click.option("--constraint", "constraints", multiple=True, help="with --guided: only these constraint families")
@click.option("--novel-only", is_flag=True, help="names: never produce a training name (guided)")
@click.option("--out", type=click.Path(), help="write samples here (.txt, .jsonl or a directory)")
@click.option("--jsonl", is_flag=True, help="write JSONL (one {\"text\": ...} per line)")
@device_option
@precision_option
def sample(target: str, num: int, length: int | None, temperature: float, top_k: int, top_p: float, prime: str,
           prime_file: str | None, stop: tuple[str, ...], seed: int | None, guided: bool,
           constraints: tuple[str, ...], novel_only: bool, out: str | None, jsonl: bool, device: str,
           precision: str) -> None:
    """Generate from a checkpoint, or from a corpus's latest trained run."""
    from gen.core.models import load_model
    from gen.core.samplesfile import write_samples

    loaded = load_model(target, _ws())
    domain = loaded.domain
    if prime_file:
        prime = Path(prime_file).read_text(encoding="utf-8")
    opts = SampleOptions(n=num, length=length, temperature=temperature, top_k=top_k, top_p=top_p, prime=prime,
                         stop=[s.encode().decode("unicode_escape") for s in stop] or None, seed=seed,
                         guided=guided, constraints=list(constraints) or None, novel_only=novel_only,
                         device=device, precision=precision)
    stream = num == 1 and sys.stdout.isatty() and not domain.samples_per_line
    on_char = (lambda s, ch: (sys.stdout.write(ch), sys.stdout.flush())) if stream else None
    texts, stats = loaded.generate(_ws(), opts, on_char)
    if stats.unknown_prime:
        click.echo(f"note: the prime has characters the model never saw; encoded as "
                   f"{', '.join(f'{k!r}->{v!r}' for k, v in stats.unknown_prime.items())}", err=True)
    if not stream:
        sep = "\n" if domain.samples_per_line else "\n" + "-" * 40 + "\n"
        click.echo(sep.join(texts))
    else:
        click.echo()
    if guided or novel_only:
        click.echo(f"guided: {stats.masked_steps} masked steps, {stats.fallbacks} fallbacks to unmasked", err=True)
    if out is None:
        suffix = ".jsonl" if jsonl or not domain.samples_per_line else ".txt"
        out = str(loaded.run.samples / (ws_mod.timestamp() + suffix))
    elif jsonl and not out.endswith(".jsonl"):
        out += ".jsonl"
    path = write_samples(out, texts, per_line=domain.samples_per_line)
    click.echo(f"wrote {len(texts)} samples to {path} ({stats.stepper} stepper)", err=True)


@cli.command("export")
@click.argument("target")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="the folder to write")
@click.option("--force", is_flag=True, help="replace --out when it exists and is not empty")
@click.option("--no-onnx", is_flag=True, help="leave out model.onnx (no ONNX exporter needed)")
@click.option("--no-card", is_flag=True, help="a card without samples and eval (faster)")
def export_cmd(target: str, out: str, force: bool, no_onnx: bool, no_card: bool) -> None:
    """Write a model as a folder anyone can load: config.json, model.safetensors, model.onnx, a
    model card (README.md) and web/ (samples in the browser). TARGET as in `gen sample`."""
    from gen.core.export import check_target, export_model
    from gen.core.models import load_model

    check_target(Path(out), force)  # before loading anything
    loaded = load_model(target, _ws())
    rep = export_model(loaded, Path(out), _ws(), force=force, onnx=not no_onnx, card=not no_card,
                       log=lambda m: click.echo(m, err=True))
    for note in rep.notes:
        click.echo(f"note: {note}", err=True)
    sizes = ", ".join(f"{name} {size / 1e6:.2f} MB" for name, size in rep.sizes.items())
    click.echo(f"wrote {rep.folder} in {rep.seconds:.1f} s: {sizes}")


def _add_serve() -> None:
    from gen.core.serve.command import serve

    cli.add_command(serve)


_add_serve()


# set by `gen train` once everything is written: the process then ends without the interpreter's
# module teardown (torch, matplotlib and TensorBoard unloading), which took seconds after the
# last file was written and made a `--max-time 12s` command take 14.5 s of wall time
_FINISHED_TRAINING: list[bool] = []


def main() -> None:
    """The `gen` command. After a finished, single-process `gen train` (every file written and
    closed, locks released by the OS), stdout and stderr are flushed and the process exits at
    once, so a time budget covers the whole command."""
    try:
        cli(prog_name="gen")
    except SystemExit as exc:
        if not _FINISHED_TRAINING or exc.code not in (0, None) or int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


if __name__ == "__main__":
    main()

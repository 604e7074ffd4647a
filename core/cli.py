"""The `gen` command line (click). Thin: each command parses, calls core, and says where it wrote."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import click

from gen.core import pipeline
from gen.core import workspace as ws_mod
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


@click.group(cls=_Group)
@click.option("--workspace", envvar=ws_mod.ENV_HOME, type=click.Path(file_okay=False), default=None,
              help="where corpora and runs live (default ~/.local/share/gen; env GEN_HOME)")
@click.pass_context
def cli(ctx: click.Context, workspace: str | None) -> None:
    """Train character-level LSTMs on structured text and judge what they generate."""
    ctx.obj = ws_mod.workspace_dir(workspace)


def _ws() -> Path:
    return click.get_current_context().obj


@cli.command()
def domains() -> None:
    """List domains, their corpora and the plugin each came from."""
    from gen.core.registry import get_registry

    reg = get_registry()
    for name, dom in sorted(reg.domains.items()):
        corpora = [c for c, s in sorted(reg.corpora.items()) if s.domain == name]
        click.echo(f"{name:8} {dom.description}")
        click.echo(f"         corpora: {', '.join(corpora) or '-'} (default {dom.default_corpus or '-'})")
        opts = ", ".join(o.flag for o in dom.prepare_options)
        if opts:
            click.echo(f"         prepare options: {opts}")
        click.echo(f"         from {reg.domain_origin[name]}")


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
    """Read a corpus source into encoded train/val data. Domain flags may follow (see `gen domains`)."""
    meta = pipeline.prepare_corpus(corpus, src, _ws(), ctx.args)
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
        cfg = pipeline.resolve_config(spec, {**resume_ckpt["config"], **overrides})
        run_dir = Path(resume).parent
    else:
        from gen.core.train import from_rank0, init_distributed

        cfg = pipeline.resolve_config(spec, overrides)
        rank, _, _ = init_distributed(cfg)  # under torchrun only rank 0 creates the run folder
        run_dir = from_rank0(ws_mod.new_run_dir(_ws(), spec.name, run_name) if rank == 0 else None)
    if max_time:
        cfg.max_time = parse_duration(max_time)
    click.echo(f"run folder: {run_dir}")
    res = run_train(data, cfg, run_dir, spec.domain, resume=resume_ckpt, progress=not quiet, log=click.echo)
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun only rank 0 reports and writes
        return
    click.echo(f"stopped ({res.stopped}) at step {res.step}: best val loss {res.best_val:.4f} nats "
               f"({res.best_val / 0.6931:.3f} bpc)")
    wrote = "best.pt, last.pt, metrics.jsonl, loss.png"
    try:  # the run's HTML page (learning curves, evolution of samples); never fails a finished run
        from gen.evals.runpage import write_run_page

        write_run_page(run_dir)
        wrote += ", report.html"
    except (ImportError, GenError, OSError) as exc:
        click.echo(f"note: report.html not written ({exc})", err=True)
    click.echo(f"wrote {run_dir}/{{{wrote}}}")


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
    from gen.core.registry import get_domain
    from gen.core.sample import SampleOptions
    from gen.evals.samples import write_samples

    loaded = pipeline.load_model(target, _ws())
    domain = get_domain(loaded.ckpt["domain"])
    if prime_file:
        prime = Path(prime_file).read_text(encoding="utf-8")
    length = length or (50 if domain.samples_per_line else 1000)
    opts = SampleOptions(n=num, length=length, temperature=temperature, top_k=top_k, top_p=top_p, prime=prime,
                         stop=[s.encode().decode("unicode_escape") for s in stop], seed=seed)
    stats = None
    if guided or novel_only:  # trackers may use the training corpus (names: the names to avoid)
        guided = True
        from gen.core import workspace as wsm

        if wsm.is_prepared(_ws(), loaded.ckpt["corpus"]):
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
        run_samples = loaded.path.parent / "samples"
        out = str(run_samples / (time.strftime("%Y%m%d-%H%M%S") + (".txt" if domain.samples_per_line else ".jsonl")))
    elif jsonl and not out.endswith(".jsonl"):
        out += ".jsonl"
    path = write_samples(out, texts, per_line=domain.samples_per_line)
    click.echo(f"wrote {len(texts)} samples to {path}", err=True)


@cli.command("eval")
@click.argument("domain_name", metavar="DOMAIN")
@click.argument("samples", type=click.Path(), required=False)
@click.option("--against", help="training corpus to compare with (novelty, invented words, real-text baseline)")
@click.option("--checkpoint", help="temperature sweep: sample from this checkpoint (or corpus name) instead")
@click.option("--temperatures", default="0.2,0.5,0.8,1.0,1.3", show_default=True,
              help="temperature sweep: comma-separated temperatures")
@click.option("-n", "--num", default=8, show_default=True, help="temperature sweep: samples per temperature")
@click.option("--length", default=800, show_default=True, help="temperature sweep: characters per sample")
@click.option("--seed", default=0, show_default=True, help="temperature sweep: sampling seed")
@click.option("--out", type=click.Path(file_okay=False), help="folder for records.jsonl and summary.json")
@click.option("--json", "as_json", is_flag=True, help="print the summary JSON to stdout")
@click.option("--gcc", is_flag=True, help="c: also run gcc -fsyntax-only")
@click.option("--compile", "compile_", is_flag=True, help="latex: also compile with pdflatex")
@click.option("--pylatexenc", "pylatexenc", default=None, type=int,
              help="latex: also parse with pylatexenc (strict) samples up to N characters (slow: ~0.1 MB/s)")
@click.option("--mwparser", is_flag=True, help="wiki: also parse with mwparserfromhell (time-limited)")
@click.option("--no-baseline", is_flag=True, help="skip the real/corrupted reference columns")
def eval_cmd(domain_name: str, samples: str | None, against: str | None, checkpoint: str | None,
             temperatures: str, num: int, length: int, seed: int, out: str | None, as_json: bool, gcc: bool,
             compile_: bool, pylatexenc: int | None, mwparser: bool, no_baseline: bool) -> None:
    """Score samples (a .txt, .jsonl or directory) for structural validity, or with --checkpoint
    sweep temperatures: sample at each and score every set (table, JSON and PNG)."""
    from gen.core.registry import get_domain
    from gen.evals.report import evaluate, format_table, write_report
    from gen.evals.samples import read_samples

    domain = get_domain(domain_name)
    ctx = pipeline.eval_context(domain, against, _ws(), {"gcc": gcc, "compile": compile_, "mwparser": mwparser,
                                                       "pylatexenc": pylatexenc})
    out_dir = Path(out) if out else _ws() / "evals" / f"{domain.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    if checkpoint:
        from gen.evals.sweep import run_sweep

        temps = [float(t) for t in temperatures.split(",") if t.strip()]
        target = str(pipeline.load_model(checkpoint, _ws()).path)
        res = run_sweep(target, ctx, temps, num, length, seed, out_dir, log=lambda m: click.echo(m, err=True))
        click.echo(json.dumps(res.to_dict(), indent=2) if as_json else res.table())
        click.echo(f"wrote {out_dir}/sweep.json, sweep.txt, sweep.png", err=True)
        return
    if samples is None:
        raise GenError("give a SAMPLES file/folder, or --checkpoint for a temperature sweep")
    texts = read_samples(samples, per_line=domain.samples_per_line)
    if not texts:
        raise GenError(f"no samples found in {samples}")
    report = evaluate(domain, texts, ctx, baseline=not no_baseline)
    report.meta["samples"] = str(samples)
    rec, summ = write_report(report, out_dir)
    if as_json:
        click.echo(json.dumps(report.summary(), indent=2, ensure_ascii=False))
    else:
        click.echo(format_table(report))
    click.echo(f"wrote {rec} and {summ}", err=True)


@cli.command()
@click.option("--seconds", default=150.0, show_default=True, help="training time budget")
def demo(seconds: float) -> None:
    """Prepare the offline census names, train ~3 minutes on CPU, print 20 new names."""
    out = pipeline.run_demo(_ws(), seconds, click.echo)
    m = out["summary"]["metrics"]
    click.echo("\n20 generated names:")
    for name in out["names"]:
        mark = "" if name in out["train_names"] else "  (new)"
        click.echo(f"  {name}{mark}")
    click.echo(f"\nnovel (not in the training names): {m['novel']['value']:.0%}   unique: "
               f"{m['unique_share']['value']:.0%}   mean length {m['length']['value']:.1f} "
               f"(training {m['length_train']['value']:.1f})")
    click.echo(f"best val loss {out['result'].best_val:.4f} nats; checkpoint: {out['checkpoint']}")
    click.echo(f"more: gen sample {out['checkpoint']} -n 20   |   gen eval names FILE --against census")


def main() -> None:
    cli(prog_name="gen")


if __name__ == "__main__":
    main()

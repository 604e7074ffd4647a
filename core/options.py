"""Domain-declared options (:class:`gen.core.domain.Option`) as click options.

A domain declares each of its flags once, in gen's own types (``Choice``, ``Range``,
``PathValue`` or a Python type), so no plugin imports click; the core turns the declarations into click options,
so ``gen prepare`` and ``gen eval DOMAIN`` validate them (type, choices, ranges) and show them in
``--help`` and ``gen domains DOMAIN``, for built-in and third-party domains alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import click

from gen.core.domain import Choice, Option, PathValue, Range


def device_option(f):
    """``--device`` for every command that runs a trained model (sample, guided, viz, neurons,
    eval --checkpoint): the same choices as training's."""
    return click.option("--device", default="auto", show_default=True,
                        help="where the model runs: auto (CUDA when present), cpu, cuda, cuda:N")(f)


def precision_option(f):
    """``--precision`` of the sampling stepper (core/precision.py: sampling_dtype)."""
    return click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "int8"]), default="auto",
                        show_default=True,
                        help="stepper matmuls: auto = bf16 on a GPU; on a CPU for 256+ hidden units bf16 "
                             "(native bf16, 8+ streams) or int8 weights, each only when the model scores "
                             "text within 0.01 nats/char of fp32; else fp32")(f)


def click_type(typ: Any) -> Any:
    """gen's option types as click's (a Python type passes through)."""
    if isinstance(typ, Choice):
        return click.Choice(list(typ.choices))
    if isinstance(typ, Range):
        cls = click.IntRange if typ.kind is int else click.FloatRange
        return cls(min=typ.min, max=typ.max)
    if isinstance(typ, PathValue):
        return click.Path(exists=True, file_okay=typ.file_okay, dir_okay=typ.dir_okay)
    return typ


def click_option(opt: Option) -> click.Option:
    """The click option of one declaration: a flag for a bool default, else a typed value."""
    if isinstance(opt.default, bool) and opt.type is None:
        return click.Option([opt.flag, opt.name], is_flag=True, default=opt.default, help=opt.help)
    if opt.multiple:
        return click.Option([opt.flag, opt.name], type=click_type(opt.type) or str, multiple=True, default=(),
                            help=opt.help)
    typ = click_type(opt.type) if opt.type is not None else (type(opt.default) if opt.default is not None else str)
    return click.Option([opt.flag, opt.name], type=typ, default=opt.default, show_default=opt.default is not None,
                        help=opt.help)


def parse(options: Iterable[Option], args: list[str], command: str) -> dict[str, Any]:
    """Parse ``args`` (the flags after a command's own) against declared options with click:
    a bad value or an unknown flag is a usage error that names the valid flags."""
    params = [click_option(o) for o in options]
    cmd = click.Command(command, params=params, add_help_option=False)
    try:
        ctx = cmd.make_context(command, list(args), resilient_parsing=False)
    except click.NoSuchOption as exc:
        valid = ", ".join(p.opts[0] for p in params) or "(none)"
        raise click.UsageError(f"{exc.format_message()} Options of {command}: {valid}") from None
    if ctx.args:
        raise click.UsageError(f"unexpected argument(s) {' '.join(ctx.args)!r} for {command}")
    return dict(ctx.params)


def describe(options: Iterable[Option]) -> list[str]:
    """One help line per option, for `gen domains DOMAIN`."""
    lines = []
    for opt in options:
        param = click_option(opt)
        if param.is_flag:
            flag = opt.flag
        elif isinstance(param.type, click.Choice):
            flag = f"{opt.flag} [{'|'.join(map(str, param.type.choices))}]"
        else:  # "float range" -> FLOAT
            flag = f"{opt.flag} {param.type.name.split()[0].upper()}" + (" (repeatable)" if opt.multiple else "")
        default = "" if param.is_flag or opt.default in (None, ()) else f" (default {opt.default})"
        lines.append(f"{flag:28} {opt.help}{default}")
    return lines

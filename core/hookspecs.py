"""The hooks a gen plugin may implement (pluggy). Each takes a ``register`` callable."""

import pluggy

hookspec = pluggy.HookspecMarker("gen")
hookimpl = pluggy.HookimplMarker("gen")


@hookspec
def register_domains(register):
    """Register Domain instances: register(MyDomain())."""


@hookspec
def register_corpora(register):
    """Register CorpusSpec instances beside the manifests in corpora/."""


@hookspec
def register_metrics(register):
    """Register SampleMetric instances that apply to every domain."""


@hookspec
def register_commands(cli):
    """Add click commands to the `gen` command group."""


@hookspec
def register_run_writers(register):
    """Register callables ``write(run: RunDir) -> Path`` run after `gen train` ends (run pages)."""


@hookspec
def register_card_sections(register):
    """Register callables ``section(loaded, samples, ws) -> str | None`` whose Markdown an exported
    model card shows (the eval side's table of the samples beside held-out text)."""

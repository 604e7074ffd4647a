"""Generation: THE sampling function, :func:`sample`, used by every command that generates.

One priming rule: the model first reads the corpus separator (so an unprimed sample begins like
a new document), then the prime. One stop rule: ``opts.stop`` when given, else the domain's
stop string (a name ends at its newline). Temperature, top-k/top-p, N streams, guided masking.

All streams advance together through :class:`FusedStepper` (one matmul per layer per step).
With trackers (structure-guided sampling), each stream's tracker bans next characters that
would break structure; if a tracker bans everything, the stream falls back to the unmasked
distribution and the fallback is counted, so guidance never dead-ends.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from gen.core.config import SampleOptions
from gen.core.device import pick_device
from gen.core.domain import Constraint, Domain, Tracker
from gen.core.errors import GenError
from gen.core.model import CharRNN, FusedStepper
from gen.core.precision import sampling_dtype, sampling_name
from gen.core.vocab import Vocab


@dataclass
class SampleStats:
    masked_steps: int = 0  # steps where guidance changed the distribution
    fallbacks: int = 0  # steps where every character was banned: sampled unmasked instead
    unknown_prime: dict[str, str] = field(default_factory=dict)  # prime chars mapped by the vocab policy
    stepper: str = "fp32"  # the stepper's precision: fp32 | bf16 | int8 (sampling_dtype)


class MaskCache:
    """Constraint -> additive logit mask (V,), computed once per distinct constraint."""

    def __init__(self, vocab: Vocab) -> None:
        self.vocab, self.cache, self.nonempty = vocab, {}, {}

    def get(self, c: Constraint) -> torch.Tensor | None:
        """The mask, or None when the constraint bans nothing in this vocabulary."""
        if c in self.cache:
            return self.cache[c]
        stoi = self.vocab.stoi
        m: torch.Tensor | None
        if c.allow is not None:
            m = torch.full((len(self.vocab),), float("-inf"))
            m[[stoi[ch] for ch in c.allow if ch in stoi and ch not in c.ban]] = 0.0
        else:
            banned = [stoi[ch] for ch in c.ban if ch in stoi]
            m = torch.zeros(len(self.vocab)) if banned else None
            if m is not None:
                m[banned] = float("-inf")
        self.cache[c] = m
        self.nonempty[c] = m is not None and bool(torch.isfinite(m).any())
        return m

    def any_allowed(self, c: Constraint) -> bool:
        """Whether the (already built) mask of ``c`` leaves any character."""
        return self.nonempty[c]


def filter_logits(logits: torch.Tensor, temperature: float, top_k: int, top_p: float) -> torch.Tensor:
    """Temperature, then top-k and top-p truncation. logits (N, V) -> (N, V)."""
    logits = logits / max(temperature, 1e-6)
    if top_k and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cum = torch.softmax(sorted_logits, -1).cumsum(-1)
        drop = cum - torch.softmax(sorted_logits, -1) > top_p  # keep the token that crosses p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    return logits


class _threads:
    """Run small work on one thread: for a few streams of a small model the (N, H) x (H, 4H)
    products are too small to split across cores and the hand-off costs more than it saves (far
    more on a busy machine). Big layers (H >= 512) are memory-bound and gain from every core."""

    def __init__(self, n: int, hidden: int, layers: int) -> None:
        self.small = n * hidden * layers < 1024
        self.old = torch.get_num_threads()

    def __enter__(self) -> None:
        if self.small:
            torch.set_num_threads(1)

    def __exit__(self, *exc) -> None:
        torch.set_num_threads(self.old)


def prime_ids(vocab: Vocab, separator: str, prime: str) -> tuple[list[int], dict[str, str]]:
    """What a sample reads before its first new character: the corpus separator (so an unprimed
    sample begins like a new document), then the prime; and the prime's characters the
    vocabulary lacks, with what they were encoded as."""
    vocab.mapped = {}
    context = (separator if separator and separator[-1] in vocab.stoi else "") + prime
    return vocab.encode(context or vocab.fallback), dict(vocab.mapped)


def make_trackers(domain: Domain, n: int, constraints: list[str] | None = None,
                  stats: object = None) -> list[Tracker]:
    """One fresh structure tracker per stream for guided sampling. ``constraints`` picks the
    families; ``stats`` (the domain's corpus statistics) lets a tracker know the training corpus."""
    trackers = [domain.tracker(constraints, stats) for _ in range(n)]
    if not trackers or trackers[0] is None:
        raise GenError(f"domain {domain.name!r} has no structure tracker; sample without --guided")
    return trackers


@torch.no_grad()
def sample(model: CharRNN, vocab: Vocab, opts: SampleOptions, *, separator: str = "\n",
           domain: Domain | None = None, trackers: list[Tracker] | None = None,
           on_char: Callable[[int, str], None] | None = None, stepper: Any = None) -> tuple[list[str], SampleStats]:
    """Generate ``opts.n`` samples from ``model``.

    ``separator``: the training corpus's document separator, read before the prime.
    ``domain``: gives the default stop string when ``opts.stop`` is None.
    ``trackers``: one per stream (:func:`make_trackers`) for structure-guided sampling.
    ``on_char(stream, ch)`` streams output as it is made.
    ``stepper``: another runtime of the same step (an exported model's onnxruntime session,
    core/onnxstep.py) in place of the model's :class:`FusedStepper`."""
    stop = opts.stop if opts.stop is not None else ([domain.stop] if domain is not None and domain.stop else [])
    if opts.length is None:
        opts = replace(opts, length=opts.chars(domain is not None and domain.samples_per_line))
    with _threads(opts.n, model.args.n_hidden, model.args.n_layer):
        return _generate(model, vocab, opts, stop, trackers, on_char, separator, stepper)


def _generate(model: CharRNN, vocab: Vocab, opts: SampleOptions, stop: list[str], trackers: list[Tracker] | None,
              on_char: Callable[[int, str], None] | None, start: str, stepper: Any) -> tuple[list[str], SampleStats]:
    stats = SampleStats()
    if stepper is None:
        device = pick_device(opts.device)
        dtype = sampling_dtype(model, device, opts.precision, opts.n)
        stats.stepper = sampling_name(dtype)
        stepper = FusedStepper(model, device, dtype)
    else:
        device, stats.stepper = stepper.device, type(stepper).__name__
    # guided streams consult Python trackers every step: their logits come to the CPU
    sdev = torch.device("cpu") if trackers else device
    gen = torch.Generator(device=sdev).manual_seed(opts.seed if opts.seed is not None else torch.seed() % 2**63)
    n = opts.n
    state = stepper.init_state(n)
    ids, stats.unknown_prime = prime_ids(vocab, start, opts.prime)
    logits = None
    for i in ids:  # read the prime; its last logits predict the first new character
        logits = stepper.step(torch.full((n,), i, dtype=torch.long, device=device), state)
    if trackers:
        for t in trackers:
            t.feed_text(opts.prime)
    masks = MaskCache(vocab) if trackers else None
    out = [[] for _ in range(n)]
    done = [False] * n
    stops = [s for s in stop if s]
    greedy = opts.temperature <= 1e-3
    truncated = bool(opts.top_k) or opts.top_p < 1.0
    for _ in range(opts.length):
        logits = logits.to(sdev)
        filtered = logits if greedy else filter_logits(logits, opts.temperature, opts.top_k, opts.top_p)  # (N, V)
        if trackers:
            _guide(filtered, trackers, done, masks, truncated, stats)
        if greedy:
            nxt = filtered.argmax(-1)
        else:
            # the exponential-race form of multinomial (what torch.multinomial does inside),
            # without its per-call checks: a third of the time per draw for one stream
            probs = torch.softmax(filtered, -1)
            nxt = probs.div_(torch.empty_like(probs).exponential_(generator=gen)).argmax(-1)
        for s, idx in enumerate(nxt.tolist()):
            if done[s]:
                continue
            ch = vocab.chars[idx]
            out[s].append(ch)
            if trackers:
                trackers[s].feed(ch)
            if stops and any("".join(out[s][-len(st):]) == st for st in stops):
                done[s] = True
                continue
            if on_char:
                on_char(s, ch)
        if all(done):
            break
        logits = stepper.step(nxt.to(device), state)
    return [_finish(s, "".join(out[s]), done[s], stops, opts, trackers, on_char) for s in range(n)], stats


def _guide(filtered: torch.Tensor, trackers: list[Tracker], done: list[bool], masks: MaskCache,
           truncated: bool, stats: SampleStats) -> None:
    """Mask, in place, the next characters each stream's tracker bans (filtered: (N, V) logits).
    A stream whose mask would leave nothing samples unmasked instead (a counted fallback)."""
    for s, t in enumerate(trackers):
        if not done[s]:
            masked = guide_row(filtered[s], t, masks, truncated)
            if masked is not None:
                stats.masked_steps += masked
                stats.fallbacks += not masked


def guide_row(row: torch.Tensor, tracker: Tracker, masks: MaskCache, truncated: bool) -> bool | None:
    """Add the tracker's mask to one stream's logits (V,), in place, unless it would leave no
    character: True when masked, False for such a fallback, None when the tracker bans nothing.
    ``truncated``: some logits may already be -inf (top-k, top-p, banned characters)."""
    c = tracker.constraint()
    mask = None if c.free else masks.get(c)
    if mask is None:
        return None
    # without truncation every logit is finite, so the mask alone decides whether anything
    # survives (cached per constraint); with it the survivors must be checked
    if (mask > float("-inf")).logical_and_(torch.isfinite(row)).any().item() if truncated else masks.any_allowed(c):
        row += mask
        return True
    return False


def _finish(s: int, text: str, stopped: bool, stops: list[str], opts: SampleOptions,
            trackers: list[Tracker] | None, on_char: Callable[[int, str], None] | None) -> str:
    """Stream ``s``'s sample: the stop string cut off, or (guided, cut at the length) closed."""
    for st in stops:
        if stopped and text.endswith(st):
            text = text[: -len(st)]
            break
    if trackers and opts.close and not stopped:
        closing = trackers[s].closing()
        text += closing
        if on_char:
            for ch in closing:
                on_char(s, ch)
    return opts.prime + text

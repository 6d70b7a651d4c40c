"""Steered generation: the default and the steered continuation of one prompt, from one seed.

    g = generate(model, "The capital of France is", [Add(Latent(hook, 42, sae=sae), 8.0)], seed=0)
    g.default.text, g.steered.text, g.steered.logprobs, g.steered.activations[0]

    for step in generate_stream(model, prompt, interventions, seed=0):   # one token of each per step
        print(step.default_text, step.steered_text)

Both runs keep a TransformerLens KV cache, so each new token costs one forward of one position.
Each run samples with its own torch.Generator seeded with `seed` (temperature 0: greedy), drawing
the same way TransformerLens's generate does under torch.manual_seed(seed), so the default run
equals plain sampling with that seed. `activations[i]` is intervention i's unit value, before its
edit, at every position of prompt + continuation (the default run reads the same unit, unedited).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from sae.errors import SAEError
from sae.interventions import Applied, apply


@dataclass
class Continuation:
    tokens: list[int] = field(default_factory=list)  # generated token ids
    text: str = ""
    logprobs: list[float] = field(default_factory=list)  # log p(token) under this run's model, at temperature 1
    activations: list[list[float]] = field(default_factory=list)  # per intervention, per position (prompt + continuation)


@dataclass
class Generation:
    prompt: str
    prompt_tokens: list[int]
    default: Continuation
    steered: Continuation
    seed: int
    temperature: float


@dataclass
class Step:
    """One token of each run. *_activation: per intervention, the unit's value (before its edit) at
    this token's position; prompt_activations (step 0 only): (default, steered), per intervention
    the values at every prompt position. *_logits [vocab]: the logits this step's token was sampled
    from (for the change in next-token probabilities between the runs)."""
    index: int
    default_token: int
    steered_token: int
    default_text: str
    steered_text: str
    default_logprob: float
    steered_logprob: float
    default_activation: list[float]
    steered_activation: list[float]
    prompt_activations: tuple[list[list[float]], list[list[float]]] | None = None
    default_logits: torch.Tensor | None = field(default=None, repr=False)
    steered_logits: torch.Tensor | None = field(default=None, repr=False)


def _prompt_tokens(model: Any, prompt: Any) -> torch.Tensor:
    if isinstance(prompt, str):
        if not prompt.strip():
            raise SAEError("the prompt is empty; give some text to continue.")
        toks = model.to_tokens(prompt)
    else:
        toks = torch.as_tensor(prompt).reshape(1, -1)
        if toks.numel() == 0:
            raise SAEError("the prompt is empty; give some tokens to continue.")
    return toks.to(model.cfg.device)


def sample(logits: torch.Tensor, temperature: float, generator: torch.Generator | None) -> int:
    """One token from last-position logits [vocab]: greedy at temperature 0, else softmax(logits/T)."""
    if temperature == 0:
        return int(logits.argmax())
    # as torch.distributions.Categorical(logits=...).sample() draws (TransformerLens's sampler)
    probs = torch.distributions.Categorical(logits=(logits / temperature).float()).probs
    return int(torch.multinomial(probs.reshape(1, -1), 1, True, generator=generator))


class _Run:
    """One continuation: its KV cache, generator and readers of the edited units."""

    def __init__(self, model: Any, applied: Applied, steered: bool, seed: int, device: Any):
        self.model, self.applied, self.steered = model, applied, steered
        from transformer_lens.cache.key_value_cache import (
            TransformerLensKeyValueCache,  # heavy
        )

        self.cache = TransformerLensKeyValueCache.init_cache(model.cfg, device, 1)
        self.gen = torch.Generator(device="cpu").manual_seed(seed)
        self.pos = 0
        self.last_reads: list[list[float]] = []

    @torch.no_grad()
    def forward(self, tokens: torch.Tensor, probes: list[tuple[str, Any]]) -> torch.Tensor:
        """Feed tokens [1, n]; the last position's logits [vocab]."""
        a = self.applied
        a.set_enabled(self.steered)
        a.offset, a.record = self.pos, self.steered
        for r in a.records:
            r.clear()
        reads: list[list[float]] = [[] for _ in a.interventions]
        hooks = [] if self.steered else [(pt, fn(reads)) for pt, fn in probes]
        with self.model.hooks(fwd_hooks=hooks):
            logits = self.model(tokens, past_kv_cache=self.cache, attention_mask=torch.ones_like(tokens))
        if self.steered:
            reads = [r[0][0].tolist() if r else [] for r in a.records]
        a.record = False
        self.last_reads = reads
        self.pos += tokens.shape[1]
        return logits[0, -1]


def _probes(model: Any, applied: Applied) -> list[tuple[str, Any]]:
    """Read-only hooks that record each intervention's unit in the default run."""
    out = []
    for i, iv in enumerate(applied.interventions):
        unit = iv.unit

        def make(i=i, unit=unit):
            def factory(reads):
                def hook(act, hook):
                    reads[i][:] = unit.read_raw(model, act)[0].tolist()
                return hook
            return factory
        out.append((unit.raw_point, make()))
    return out


def _check_args(max_new_tokens: Any, temperature: Any) -> tuple[int, float]:
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise SAEError(f"max_new_tokens must be a whole number >= 1, got {max_new_tokens!r}.")
    try:
        t = float(temperature)
    except (TypeError, ValueError):
        raise SAEError(f"temperature must be a number, got {temperature!r}.") from None
    if not math.isfinite(t) or t < 0:
        raise SAEError(f"temperature must be finite and >= 0, got {temperature!r}.")
    return max_new_tokens, t


def generate_stream(model: Any, prompt: Any, interventions: Sequence[Any] = (), *, seed: int = 0,
                    max_new_tokens: int = 20, temperature: float = 1.0, stop_at_eos: bool = False) -> Iterator[Step]:
    """Yield one Step (a token of the default run and of the steered run) at a time."""
    for i, new, lps, reads, prompt_reads, sampled_from in _stream(model, prompt, interventions, (False, True), seed,
                                                                   max_new_tokens, temperature, stop_at_eos):
        yield Step(i, new[0], new[1], _decode(model, [new[0]]), _decode(model, [new[1]]), lps[0], lps[1],
                   [v[0] if v else math.nan for v in reads[0]], [v[0] if v else math.nan for v in reads[1]],
                   prompt_reads, sampled_from[0], sampled_from[1])


def _stream(model: Any, prompt: Any, interventions: Sequence[Any], kinds: tuple[bool, ...], seed: int,
            max_new_tokens: int, temperature: float, stop_at_eos: bool, done_after: int | None = None):
    """The runs of `kinds` (False: default, True: steered), one token of each per step: yields
    (index, tokens, logprobs, unit reads, prompt reads (step 0 only), logits sampled from), one
    entry per run. The runs do not touch each other (own cache and generator), so a run's tokens do
    not depend on which others run. With stop_at_eos, stops once every run has sampled EOS and,
    when given, `done_after` tokens have been made (the default run's length, when it is not run)."""
    max_new_tokens, temperature = _check_args(max_new_tokens, temperature)
    toks = _prompt_tokens(model, prompt)
    if toks.shape[1] + max_new_tokens > model.cfg.n_ctx:
        raise SAEError(f"the prompt ({toks.shape[1]} tokens) plus {max_new_tokens} new tokens exceeds the "
                       f"model's context of {model.cfg.n_ctx}.")
    device = toks.device
    eos = getattr(model.tokenizer, "eos_token_id", None) if model.tokenizer is not None else None
    with apply(model, interventions) as applied:
        probes = _probes(model, applied)
        runs = [_Run(model, applied, k, seed, device) for k in kinds]
        logits = [r.forward(toks, probes) for r in runs]
        prompt_reads = tuple(r.last_reads for r in runs)
        done = [False] * len(runs)
        for i in range(max_new_tokens):
            new, lps, sampled_from = [], [], logits
            for k, r in enumerate(runs):
                t = sample(logits[k], temperature, r.gen)
                new.append(t)
                lps.append(float(torch.log_softmax(logits[k].double(), -1)[t]))
            # feed the new tokens: their own positions' unit values (and the next logits)
            logits = [r.forward(torch.tensor([[t]], device=device), probes) for r, t in zip(runs, new)]
            yield i, new, lps, [r.last_reads for r in runs], prompt_reads if i == 0 else None, sampled_from
            if stop_at_eos and eos is not None:
                done = [d or t == eos for d, t in zip(done, new)]
                if all(done) and (done_after is None or i + 1 >= done_after):
                    return


def _decode(model: Any, tokens: list[int]) -> str:
    return model.tokenizer.decode(tokens) if model.tokenizer is not None else " ".join(map(str, tokens))


def generate(model: Any, prompt: Any, interventions: Sequence[Any] = (), *, seed: int = 0,
             max_new_tokens: int = 20, temperature: float = 1.0, stop_at_eos: bool = False,
             default: Continuation | None = None) -> Generation:
    """The default and steered continuations of `prompt` (see the module doc).

    default: the default continuation already made for this prompt, seed, max_new_tokens,
    temperature and stop_at_eos (by an earlier call, with any interventions or none: the default
    run never edits); then only the steered run is computed and `default` is returned as given.
    The steered tokens are the same as a call without it makes (the two runs do not touch each
    other); default.activations are whatever it holds, so reuse it across units only for tokens."""
    toks = _prompt_tokens(model, prompt)
    kinds = (True,) if default is not None else (False, True)
    runs = [Continuation() for _ in kinds]
    n = len(interventions)
    for c in runs:
        c.activations = [[] for _ in range(n)]
    done_after = len(default.tokens) if default is not None else None
    for _i, new, lps, reads, prompt_reads, _ in _stream(model, toks[0], interventions, kinds, seed, max_new_tokens,
                                                       temperature, stop_at_eos, done_after):
        for k, c in enumerate(runs):
            if prompt_reads is not None:
                for j in range(n):
                    c.activations[j].extend(prompt_reads[k][j])
            c.tokens.append(new[k])
            c.logprobs.append(lps[k])
            for j in range(n):
                c.activations[j].append(reads[k][j][0] if reads[k][j] else math.nan)
    for c in runs:
        c.text = _decode(model, c.tokens)
    text = prompt if isinstance(prompt, str) else _decode(model, toks[0].tolist())
    runs = [default, *runs] if default is not None else runs
    return Generation(text, toks[0].tolist(), runs[0], runs[1], seed, temperature)

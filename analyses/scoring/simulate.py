"""The deterministic simulator: per-token activations predicted from a token explanation alone.

It reads only the explanation's terms and the text (each token and the one before it), never the
true activations: a bigram term sets the prediction where it matches, else a token term, else the
explanation's baseline, exactly the rule the explainer fitted its weights under."""

from __future__ import annotations

import torch

from analyses.scoring.explain import BIG, Explanation
from interp.errors import InterpError


def _lookup(keys: torch.Tensor, weights: torch.Tensor, x: torch.Tensor, out: torch.Tensor) -> None:
    """out[x == keys[i]] = weights[i] (keys distinct; an explanation has a handful)."""
    match = x.unsqueeze(-1) == keys  # [..., K]
    hit = match.any(-1)
    out[hit] = weights[match[hit].to(torch.uint8).argmax(-1)]


def simulate_tokens(
    explanation: Explanation,
    tokens: torch.Tensor,  # [...] int64
    prev: torch.Tensor,  # [...] int64 the token before each
) -> torch.Tensor:  # [...] float32 predicted activation, a fraction of the train max
    if not explanation.terms and explanation.explainer != "tokens":
        raise InterpError(f"the {explanation.explainer} explanation has no token terms to simulate from; use the LLM simulator (--simulator llm).")
    out = torch.full(tokens.shape, explanation.baseline, dtype=torch.float32)
    uni = [(x.token, x.weight) for x in explanation.terms if x.prev is None]
    bi = [((x.prev + 1) * BIG + x.token, x.weight) for x in explanation.terms if x.prev is not None]
    if uni:
        _lookup(torch.tensor([u for u, _ in uni]), torch.tensor([w for _, w in uni]), tokens, out)
    if bi:  # after the tokens: the more specific term wins
        _lookup(torch.tensor([b for b, _ in bi]), torch.tensor([w for _, w in bi]), (prev + 1) * BIG + tokens, out)
    return out

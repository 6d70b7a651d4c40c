"""Synthetic text and activations with known answers, for the scoring tests.

Tokens are drawn from a small vocabulary (token 0 is BOS, at every window's start); a few tokens
are made common so that context-dependent features have enough examples. Activations are built
from the tokens with a known rule, so the right explanation is known."""

from __future__ import annotations

import torch

from analyses.dictionary import Dictionary

HOOK = "blocks.0.mlp.hook_post"


def corpus(n_windows: int, ctx: int = 33, seed: int = 0, vocab: int = 50, common=(10, 11)) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    weights = torch.ones(vocab)
    weights[0] = 0  # BOS only at position 0
    for t in common:
        weights[t] = 5
    tokens = torch.multinomial(weights, n_windows * ctx, replacement=True, generator=g).view(n_windows, ctx)
    tokens[:, 0] = 0
    return tokens


def previous(tokens: torch.Tensor) -> torch.Tensor:
    return torch.cat([tokens[:, :1], tokens[:, :-1]], 1)


def on_token(tokens: torch.Tensor, token: int, seed: int = 0, noise: float = 0.1) -> torch.Tensor:
    """Fires exactly on `token`, at 1 plus a little noise."""
    g = torch.Generator().manual_seed(seed)
    return (tokens == token).float() * (1 + noise * torch.rand(tokens.shape, generator=g))


def on_bigram(tokens: torch.Tensor, a: int, b: int) -> torch.Tensor:
    """Fires on `b` only right after `a`."""
    return ((tokens == b) & (previous(tokens) == a)).float()


def random_sparse(shape, density: float = 0.05, seed: int = 0) -> torch.Tensor:
    """Fires at random, whatever the text."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g) < density).float() * torch.rand(shape, generator=g)


def batches(tokens: torch.Tensor, acts: torch.Tensor, per: int = 16):
    """(tokens [w, ctx], {HOOK: acts [w, ctx, F]}) in corpus order, like ActivationStore.iter_windows."""
    for i in range(0, len(tokens), per):
        yield tokens[i : i + per], {HOOK: acts[i : i + per]}


def neurons(n: int) -> Dictionary:
    """The identity dictionary: feature i is neuron i."""
    return Dictionary(encode=lambda x: x, W_dec=torch.eye(n), hook_name=HOOK, kind="neurons")


def split(rule, n_train: int = 300, n_heldout: int = 300, ctx: int = 33):
    """(train tokens, train acts, held-out tokens, held-out acts): rule(tokens, part) -> [W, ctx, F]."""
    tt, ht = corpus(n_train, ctx, seed=0), corpus(n_heldout, ctx, seed=1)
    return tt, rule(tt, 0), ht, rule(ht, 1)


class Tokenizer:
    """Enough of a tokenizer for readable explanations: token t reads 'w<t>'."""

    def decode(self, ids):
        return "".join(f" w{i}" for i in ids)

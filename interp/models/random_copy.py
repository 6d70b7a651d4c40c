"""A randomly initialised copy of a model: the same architecture, tokenizer and hook names, fresh
weights. It is the model behind the `sae-random-model` null of the depth comparison (an SAE
trained on a random network's activations: how readable features are when nothing was learned).

Weights are drawn as GPT-2 initialises them, whatever the architecture: every matrix from
N(0, initializer_range^2) (0.02 unless the config says otherwise), every bias 0, every norm's
gain 1. A fixed seed makes the copy the same on every run."""

from __future__ import annotations

import copy

import torch


def random_copy(model, seed: int = 0):
    """A deep copy of `model` (a HookedTransformer) with freshly drawn weights, in eval mode."""
    out = copy.deepcopy(model)
    std = float(getattr(out.cfg, "initializer_range", None) or 0.02)
    g = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for name, p in out.named_parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float32).to(p) * std)
            elif name.split(".")[-1] in ("w", "weight"):  # norm gains
                p.fill_(1.0)
            else:
                p.zero_()
    out.cfg.model_name = f"{model.cfg.model_name}-random-init"
    out.model_path = None  # no folder holds it: files written from it must not name the original's
    return out.eval()

"""A HookedTransformer of either architecture, initialised nanoGPT-style.

GPT-2 is TransformerLens's own model (learned positions, LayerNorm, GELU MLP). CRATE is the same
model with CrateBlocks swapped in, then `setup()` again so that every hook name registers; both
run `run_with_cache`, `run_with_hooks`, `stop_at_layer` and `names_filter` alike."""

from __future__ import annotations

import math

import torch

from interp.lm.config import LMConfig
from interp.lm.crate import CrateBlock


def build_model(cfg: LMConfig, tokenizer=None, init: bool = True, name: str = "lm"):
    """A new model; random weights (seeded by cfg.seed) unless init=False (weights to be loaded)."""
    from transformer_lens import HookedTransformer

    hcfg = cfg.hooked_config(name)
    model = HookedTransformer(hcfg, tokenizer, move_to_device=False)
    if cfg.arch == "crate":
        for i in range(cfg.n_layers):
            model.blocks[i] = CrateBlock(model.cfg, i, eta=cfg.eta, lambd=cfg.lambd)
        model.setup()  # rebuilds the hook dict with the new modules' HookPoints
    if init:
        init_weights(model, cfg)
    return model


@torch.no_grad()
def init_weights(model, cfg: LMConfig) -> None:
    """nanoGPT's scheme: N(0, 0.02) for matrices and embeddings, N(0, 0.02 / sqrt(2 n_layers)) for
    the projections that write into the residual stream, zero biases, unit norm scales. CRATE's
    dictionary is Kaiming-uniform, U(-sqrt(6/d), sqrt(6/d)), as in the paper's code."""
    g = torch.Generator().manual_seed(cfg.seed)
    residual_std = 0.02 / math.sqrt(2 * cfg.n_layers)
    for name, p in model.named_parameters():
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "D":
            bound = math.sqrt(6 / cfg.d_model)
            p.copy_(torch.rand(p.shape, generator=g) * 2 * bound - bound)
        elif leaf in ("W_O", "W_out"):
            p.copy_(torch.randn(p.shape, generator=g) * residual_std)
        elif leaf.startswith("W_"):
            p.copy_(torch.randn(p.shape, generator=g) * 0.02)
        elif leaf.startswith("b"):
            p.zero_()
        elif leaf == "w":  # LayerNorm scale
            p.fill_(1.0)


def count_parameters(model) -> dict[str, int]:
    """Parameters in total, in the embeddings (token, position, unembedding) and in the blocks."""
    total = sum(p.numel() for p in model.parameters())
    embed = sum(p.numel() for n, p in model.named_parameters() if n.split(".")[0] in ("embed", "pos_embed", "unembed"))
    return {"total": total, "embeddings": embed, "blocks": total - embed}

"""SAE metrics, with SAELens's names. Pure functions of tensors, except the last group, which
splice an SAE into a TransformerLens model at its hook and read the language-model loss.

x, x_hat: [..., d_in] activations and reconstructions; z: [..., d_sae] latents."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

# ---- reconstruction and sparsity -----------------------------------------------------------


def _rows(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(-1, t.shape[-1]).double()


def l0(z: torch.Tensor) -> float:
    """Mean number of active latents per token."""
    return float((_rows(z) != 0).sum(1).double().mean())


def mse(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """Mean over tokens of the squared error summed over dimensions (SAELens's convention)."""
    return float((_rows(x) - _rows(x_hat)).pow(2).sum(1).mean())


def explained_variance(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """1 - sum ||x - x_hat||^2 / sum ||x - mean(x)||^2 over all tokens (R^2)."""
    xr = _rows(x)
    total = (xr - xr.mean(0)).pow(2).sum()
    if total <= 0:
        return 1.0 if float((xr - _rows(x_hat)).pow(2).sum()) == 0 else 0.0
    return float(1 - (xr - _rows(x_hat)).pow(2).sum() / total)


def fvu(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """Fraction of variance unexplained, 1 - explained_variance."""
    return 1.0 - explained_variance(x, x_hat)


def cosine(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """Mean cosine similarity between each token's activation and its reconstruction."""
    return float(F.cosine_similarity(_rows(x), _rows(x_hat), dim=1, eps=1e-12).mean())


def l2_ratio(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """Mean ||x_hat|| / ||x|| (below 1: the SAE shrinks its reconstructions)."""
    return float((_rows(x_hat).norm(dim=1) / _rows(x).norm(dim=1).clamp_min(1e-12)).mean())


def feature_density(z: torch.Tensor) -> torch.Tensor:
    """[d_sae] fraction of tokens on which each latent is active."""
    return (_rows(z) != 0).double().mean(0)


def dead_fraction(density: torch.Tensor) -> float:
    """Fraction of latents that never fired."""
    return float((density == 0).double().mean())


def dense_fraction(density: torch.Tensor, threshold: float = 0.1) -> float:
    """Fraction of latents active on more than `threshold` of tokens (too dense to read)."""
    return float((density > threshold).double().mean())


def density_histogram(density: torch.Tensor, bins: int = 40, lowest: float = -7.0) -> dict[str, Any]:
    """Histogram of log10(density) over [lowest, 0] for latents that fired, plus the dead count."""
    alive = density[density > 0].double()
    counts = torch.histc(alive.log10().clamp(lowest, 0), bins=bins, min=lowest, max=0)
    edges = torch.linspace(lowest, 0, bins + 1)
    return {"log10_density_edges": [round(float(e), 6) for e in edges], "counts": [int(c) for c in counts],
            "dead": int((density == 0).sum())}


# ---- the SAE spliced into the model ----------------------------------------------------------


def splice_hook(sae: Any, x_hat: torch.Tensor | None = None):
    """A TransformerLens hook that replaces the activation by the SAE's reconstruction (or by
    x_hat, precomputed). Attention-head hooks [..., n_heads, d_head] are read flattened."""
    def hook(act: torch.Tensor, hook: Any) -> torch.Tensor:
        flat = act.flatten(-2) if act.shape[-1] != sae.cfg.d_in and act.ndim >= 2 and act.shape[-2] * act.shape[-1] == sae.cfg.d_in else act
        out = x_hat if x_hat is not None else sae(flat)
        return out.reshape(act.shape).to(act.dtype)
    return hook


def zero_hook(first: int = 0):
    """A TransformerLens hook that zero-ablates the activation at every position from `first` on."""
    def hook(act: torch.Tensor, hook: Any) -> torch.Tensor:
        out = torch.zeros_like(act)
        out[:, :first] = act[:, :first]
        return out
    return hook


def _kl(clean_logits: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """KL(p_clean || p) per token."""
    lp_clean, lp = clean_logits.log_softmax(-1), logits.log_softmax(-1)
    return (lp_clean.exp() * (lp_clean - lp)).sum(-1)


@torch.no_grad()
def reconstruction_losses(model: Any, tokens: torch.Tensor, sae: Any, hook_name: str | None = None) -> dict[str, float]:
    """Next-token cross-entropy and KL to the clean model, with the SAE spliced in at its hook
    and with the hook zero-ablated, and the two scores (1 = as good as the clean model,
    0 = as bad as zero ablation)."""
    hook_name = hook_name or sae.cfg.hook_name
    clean_logits, ce_clean = model(tokens, return_type="both")
    sae_logits, ce_sae = model.run_with_hooks(tokens, return_type="both", fwd_hooks=[(hook_name, splice_hook(sae))])
    zero_logits, ce_zero = model.run_with_hooks(tokens, return_type="both", fwd_hooks=[(hook_name, zero_hook())])
    kl_sae, kl_zero = float(_kl(clean_logits, sae_logits).mean()), float(_kl(clean_logits, zero_logits).mean())
    out = {"ce_loss_without_sae": float(ce_clean), "ce_loss_with_sae": float(ce_sae),
           "ce_loss_with_ablation": float(ce_zero), "kl_div_with_sae": kl_sae, "kl_div_with_ablation": kl_zero}
    return {**out, **scores(out)}


def scores(losses: dict[str, float]) -> dict[str, float]:
    ce_gap = losses["ce_loss_with_ablation"] - losses["ce_loss_without_sae"]
    kl_zero = losses["kl_div_with_ablation"]
    return {
        "ce_loss_score": (losses["ce_loss_with_ablation"] - losses["ce_loss_with_sae"]) / ce_gap if ce_gap != 0 else math.nan,
        "kl_div_score": (kl_zero - losses["kl_div_with_sae"]) / kl_zero if kl_zero != 0 else math.nan,
    }


@torch.no_grad()
def ce_loss_without_sae(model: Any, tokens: torch.Tensor) -> float:
    return float(model(tokens, return_type="loss"))


@torch.no_grad()
def ce_loss_with_sae(model: Any, tokens: torch.Tensor, sae: Any, hook_name: str | None = None) -> float:
    hook_name = hook_name or sae.cfg.hook_name
    return float(model.run_with_hooks(tokens, return_type="loss", fwd_hooks=[(hook_name, splice_hook(sae))]))


def ce_loss_score(model: Any, tokens: torch.Tensor, sae: Any, hook_name: str | None = None) -> float:
    """(CE_zero_ablated - CE_with_sae) / (CE_zero_ablated - CE_clean)."""
    return reconstruction_losses(model, tokens, sae, hook_name)["ce_loss_score"]


def kl_div_score(model: Any, tokens: torch.Tensor, sae: Any, hook_name: str | None = None) -> float:
    """(KL_zero_ablated - KL_with_sae) / KL_zero_ablated, KL to the clean model's next-token distribution."""
    return reconstruction_losses(model, tokens, sae, hook_name)["kl_div_score"]

"""What the weights alone say about features: logit effects and nearest neighbours.

Logit effect of feature f: the change in the logits when f's output direction d_f is added to the
residual stream, along the direct path to the unembedding. The final norm sits on that path:

- LayerNorm computes (x - mean(x)) / sigma * w + b. For a small added d_f the logits move by
  (d_f - mean(d_f)) / sigma * w @ W_U; the bias does not depend on d_f.
- RMSNorm computes x / rms * w: the logits move by d_f / rms * w @ W_U, with no centering.
- With TransformerLens's folded norms (LNPre, RMSPre) w is already inside W_U.

sigma (or rms) is the norm of the residual stream at one token, a positive number that does not
depend on the feature: it scales every token's effect alike and so never changes which tokens are
the top or bottom ones. We leave it out, so effects are in logits per unit of the normalised
residual stream; comparable across tokens of a feature, less so across features."""

from __future__ import annotations

import torch

from analyses.dictionary import Dictionary
from interp.errors import InterpError
from interp.sites import RESIDUAL_HOOKS, hook_layer


def residual_directions(model, dictionary: Dictionary, features: torch.Tensor) -> torch.Tensor:  # [F, d_model]
    """Each feature's direction in the residual stream: its decoder row, carried through W_out
    (MLP neurons) or W_O (attention z) when the dictionary was trained there."""
    W = dictionary.W_dec[features].float()
    if dictionary.decoder_space == "resid":
        return W
    hook = dictionary.hook_name
    last = hook.split(".")[-1]
    if last in RESIDUAL_HOOKS:
        return W
    layer = hook_layer(hook)
    if hook.endswith("mlp.hook_post"):
        return W @ model.W_out[layer].detach().float().cpu()
    if hook.endswith("attn.hook_z"):
        return W @ model.W_O[layer].detach().float().cpu().reshape(-1, model.cfg.d_model)
    raise InterpError(f"cannot carry features at {hook!r} to the residual stream for logit effects; use a residual, MLP-output, mlp_post or attn_z site.")


def effective_unembed(model) -> torch.Tensor:  # [d_model, d_vocab]
    """W_U as a direction added just before the final norm sees it (see the module docstring)."""
    W_U = model.W_U.detach().float().cpu()
    norm = getattr(model.cfg, "normalization_type", None)
    if norm in ("LN", "RMS"):
        W_U = model.ln_final.w.detach().float().cpu().unsqueeze(1) * W_U
    if norm in ("LN", "LNPre"):
        # (d - mean(d)) @ W == d @ (W - W.mean(0)): centering moves into the matrix
        W_U = W_U - W_U.mean(0, keepdim=True)
    return W_U


def logit_effects(
    directions: torch.Tensor,  # [F, d_model]
    W_U: torch.Tensor,  # [d_model, d_vocab]
    k: int = 10,
    hist_bins: int = 40,
    chunk: int = 256,
) -> dict[str, torch.Tensor]:
    """Top and bottom k tokens of directions @ W_U, and a histogram of all of it, per feature."""
    F = len(directions)
    k = min(k, W_U.shape[1])
    out = {n: [] for n in ("logit_top_ids", "logit_top_values", "logit_bottom_ids", "logit_bottom_values", "logit_hist_count", "logit_hist_range")}
    for c0 in range(0, F, chunk):
        L = directions[c0 : c0 + chunk] @ W_U  # [c, d_vocab]
        tv, ti = L.topk(k, dim=1)
        bv, bi = L.topk(k, dim=1, largest=False)
        lo, hi = bv[:, :1], tv[:, :1]
        # bins in place: at 49k tokens per row the histogram costs as much as the matmul otherwise
        bins = L.sub_(lo).mul_(hist_bins / (hi - lo).clamp(min=1e-12)).to(torch.int32).clamp_(0, hist_bins - 1)
        bins += (torch.arange(len(L), dtype=torch.int32) * hist_bins).unsqueeze(1)
        counts = torch.bincount(bins.view(-1), minlength=len(L) * hist_bins).view(len(L), hist_bins)
        for name, v in zip(out, (ti, tv, bi, bv, counts, torch.cat([lo, hi], 1))):
            out[name].append(v)
    return {n: torch.cat(v) if v else torch.zeros(0) for n, v in out.items()}


def decoder_neighbours(W_dec: torch.Tensor, features: torch.Tensor, k: int = 10, chunk: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """The k features (among ALL of the dictionary's) whose decoder rows have the largest cosine
    with each of `features`' rows: (ids [F, k] int64, cosines [F, k])."""
    W = W_dec.float()
    Wn = W / W.norm(dim=1, keepdim=True).clamp(min=1e-12)
    k = min(k, len(W) - 1)
    ids, cos = [], []
    for c0 in range(0, len(features), chunk):
        f = features[c0 : c0 + chunk]
        sims = Wn[f] @ Wn.T  # [c, n_features]
        sims[torch.arange(len(f)), f] = float("-inf")
        v, i = sims.topk(max(k, 0), dim=1)
        ids.append(i)
        cos.append(v)
    return torch.cat(ids), torch.cat(cos)


def weight_stats(model, dictionary: Dictionary, features: torch.Tensor, n_logits: int = 10, n_neighbours: int = 10) -> dict[str, torch.Tensor]:
    """Logit effects (when a model is given) and decoder neighbours, ready to add to FeatureStats."""
    ids, cos = decoder_neighbours(dictionary.W_dec, features, n_neighbours)
    out = {"neighbour_ids": ids, "neighbour_cos": cos}
    if model is not None:
        with torch.no_grad():
            out.update(logit_effects(residual_directions(model, dictionary, features), effective_unembed(model), n_logits))
    return out

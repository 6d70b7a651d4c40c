"""Evaluate a saved SAE on a model and token windows: everything `interp eval-sae` writes to
metrics.json. Streams over batches of windows and accumulates sums, so the numbers equal the
pure functions of sae/metrics.py applied to all tokens at once."""

from __future__ import annotations

import math
from typing import Any

import torch

from sae import metrics, zero_ablation
from sae.base import SAE
from sae.errors import SAEError


@torch.no_grad()
def evaluate_sae(
    sae: SAE, model: Any, token_windows: torch.Tensor, *, hook_name: str | None = None,
    batch_size: int = 8, compute_losses: bool = True, dense_threshold: float = 0.1, progress: bool = False,
    skip_bos: bool | None = None, shared_prefix: bool = True,
) -> dict[str, Any]:
    """Reconstruction, sparsity and (if compute_losses) CE/KL metrics of sae at hook_name
    (default: the SAE's own) over token_windows [n_windows, context].

    skip_bos (default: as the SAE was trained, cfg extra "skip_bos"): leave each window's first
    position out of the reconstruction statistics, and pass its clean activation through both the
    splice and the zero-ablation. An SAE trained without the BOS attention-sink outlier is then
    judged on the tokens it was trained for, and ablation does not get credit for breaking BOS.

    shared_prefix: run the clean pass whole, keep the input of the hook's block and start the
    spliced and zero-ablated passes there (start_at_layer); at a residual-stream hook the
    zero-ablated pass is run once per evaluation instead (sae/zero_ablation.py says why that is
    exact). False runs three full forwards (the old way, kept for tests)."""
    if skip_bos is None:
        skip_bos = bool(sae.cfg.extra.get("skip_bos", False))
    first = 1 if skip_bos else 0
    hook_name = hook_name or sae.cfg.hook_name
    if not hook_name or hook_name not in model.hook_dict:
        raise SAEError(f"the model has no hook {hook_name!r}; pass the hook the SAE was trained on.")
    if token_windows.ndim != 2 or len(token_windows) == 0:
        raise SAEError(f"token_windows must be a non-empty [n_windows, context] tensor, got {tuple(token_windows.shape)}.")
    dev = next(model.parameters()).device
    acc = _Sums(sae.cfg.d_in, sae.cfg.d_sae)
    batches = range(0, len(token_windows), batch_size)
    if progress:
        from tqdm.auto import tqdm
        batches = tqdm(batches, unit="batch", desc="eval")
    start = _block_of(hook_name) if shared_prefix and not _shortformer(model) else None
    zero = zero_ablation.ZeroAblated(model, hook_name, first, start) if start is not None and zero_ablation.applies(hook_name) else None
    for i in batches:
        tokens = token_windows[i:i + batch_size].to(dev)
        seen: dict[str, torch.Tensor] = {}

        def grab(name: str):
            def hook(act: torch.Tensor, hook: Any) -> None:
                seen[name] = act.detach().clone()
            return hook

        # the clean pass runs whole (its loss is needed) and keeps the input of the hook's block,
        # from which the spliced and zero-ablated passes start (start_at_layer)
        hooks = [(hook_name, grab("x"))] + ([(f"blocks.{start}.hook_resid_pre", grab("resid"))] if start is not None else [])
        clean_lp = model.run_with_hooks(tokens, return_type="logits", fwd_hooks=hooks).log_softmax(-1)
        resid = seen.get("resid", tokens)

        def rest(fwd_hooks):
            kw = {"start_at_layer": start} if start is not None else {}
            return model.run_with_hooks(resid, return_type="logits", fwd_hooks=fwd_hooks, **kw)

        ce_clean = _ce(clean_lp, tokens)
        x = seen["x"]
        x_flat = x.flatten(-2) if x.shape[-1] != sae.cfg.d_in and x.ndim == 4 else x
        x_all = x_flat.reshape(x_flat.shape[0], x_flat.shape[1], sae.cfg.d_in).to(sae.W_dec.device, sae.W_dec.dtype)
        z = sae.encode(x_all)
        x_hat = sae.decode(z)
        if first:
            x_hat[:, 0] = x_all[:, 0]
        acc.add(x_all[:, first:].reshape(-1, sae.cfg.d_in), x_hat[:, first:].reshape(-1, sae.cfg.d_in),
                z[:, first:].reshape(-1, sae.cfg.d_sae))
        if compute_losses:
            p_clean = clean_lp.exp()
            hook = metrics.splice_hook(sae, x_hat.to(x.device))
            if start is not None and hook_name == f"blocks.{start}.hook_resid_post" and start + 1 < model.cfg.n_layers:
                # the spliced residual is the next block's input: start there, one block later
                sae_logits = model(x_hat.to(x.device, x.dtype).reshape(x.shape), start_at_layer=start + 1)
            else:
                sae_logits = rest([(hook_name, hook)])
            sae_lp = sae_logits.log_softmax(-1)
            del sae_logits
            ce_sae, kl_sae = _ce(sae_lp, tokens), _kl_lp(p_clean, clean_lp, sae_lp)
            del sae_lp
            if zero is not None:
                ce_zero, kl_zero = _zero_losses(zero.log_probs(tokens, resid), p_clean, clean_lp, tokens)
            else:
                zero_lp = rest([(hook_name, metrics.zero_hook(first))]).log_softmax(-1)
                ce_zero, kl_zero = _ce(zero_lp, tokens), _kl_lp(p_clean, clean_lp, zero_lp)
                del zero_lp
            acc.add_losses(len(tokens), ce_clean, ce_sae, ce_zero, kl_sae, kl_zero,
                           clean_lp.shape[0] * clean_lp.shape[1])
    out = acc.result(dense_threshold)
    out["skip_bos"] = bool(first)
    out.update({"hook_name": hook_name, "model_name": sae.cfg.model_name, "architecture": sae.cfg.architecture,
                "d_in": sae.cfg.d_in, "d_sae": sae.cfg.d_sae, "k": sae.cfg.k, "n_windows": len(token_windows)})
    return out


def _block_of(hook_name: str) -> int | None:
    """L for a hook inside blocks.L (the passes can start at block L), else None."""
    parts = hook_name.split(".")
    if len(parts) > 2 and parts[0] == "blocks" and parts[1].isdigit():
        return int(parts[1])
    return None


def _shortformer(model: Any) -> bool:
    """Shortformer models add positions inside every attention layer, which start_at_layer drops."""
    return getattr(model.cfg, "positional_embedding_type", "") == "shortformer"


def _zero_losses(groups, p_clean: torch.Tensor, clean_lp: torch.Tensor, tokens: torch.Tensor) -> tuple[float, torch.Tensor]:
    """Mean CE and summed KL of the batch against the shared zero-ablated log-probs, group by group."""
    ce, kl = 0.0, torch.zeros((), dtype=torch.float64)
    whole = len(groups) == 1
    for rows, lp in groups:
        t, p, c = (tokens, p_clean, clean_lp) if whole else (tokens[rows], p_clean[rows], clean_lp[rows])
        full = lp.expand(len(t), t.shape[1], lp.shape[-1])
        ce += float(-full[:, :-1].gather(-1, t[:, 1:, None]).sum())
        kl += _kl_lp(p, c, lp).double()
    return ce / (tokens.shape[0] * (tokens.shape[1] - 1)), kl


def _ce(lp: torch.Tensor, tokens: torch.Tensor) -> float:
    """Mean next-token cross-entropy from log-probs [b, p, vocab] (TransformerLens's loss)."""
    return float(-lp[:, :-1].gather(-1, tokens[:, 1:, None]).mean())


def _kl_lp(p_clean: torch.Tensor, lp_clean: torch.Tensor, lp: torch.Tensor) -> torch.Tensor:
    """Sum over tokens of KL(p_clean || p), from the clean probabilities and both log-probs
    (lp may broadcast over batch and positions)."""
    return (p_clean * (lp_clean - lp)).sum()




class _Sums:
    """Running sums in float64 (variance is a difference of large numbers)."""

    def __init__(self, d_in: int, d_sae: int):
        self.n = 0
        self.sum_x = torch.zeros(d_in, dtype=torch.float64)
        self.sum_sq = self.sse = self.l0 = self.cos = self.ratio = 0.0
        self.fired = torch.zeros(d_sae, dtype=torch.float64)
        self.windows = 0
        self.ce = {"ce_loss_without_sae": 0.0, "ce_loss_with_sae": 0.0, "ce_loss_with_ablation": 0.0}
        self.kl = {"kl_div_with_sae": 0.0, "kl_div_with_ablation": 0.0}
        self.kl_tokens = 0

    def add(self, x: torch.Tensor, x_hat: torch.Tensor, z: torch.Tensor) -> None:
        n = x.shape[0]
        xd, hd = x.double().cpu(), x_hat.double().cpu()
        self.n += n
        self.sum_x += xd.sum(0)
        self.sum_sq += float(xd.pow(2).sum())
        self.sse += float((xd - hd).pow(2).sum())
        self.l0 += float((z != 0).sum())
        self.cos += metrics.cosine(xd, hd) * n
        self.ratio += metrics.l2_ratio(xd, hd) * n
        self.fired += (z != 0).sum(0).double().cpu()

    def add_losses(self, n_windows: int, ce_clean: float, ce_sae: float, ce_zero: float,
                   kl_sae: torch.Tensor, kl_zero: torch.Tensor, n_tokens: int) -> None:
        # every window has the same length, so weighting each batch's mean CE by its window
        # count gives the mean over all predicted tokens
        self.windows += n_windows
        for key, v in zip(self.ce, (ce_clean, ce_sae, ce_zero)):
            self.ce[key] += v * n_windows
        self.kl["kl_div_with_sae"] += float(kl_sae)
        self.kl["kl_div_with_ablation"] += float(kl_zero)
        self.kl_tokens += n_tokens

    def result(self, dense_threshold: float) -> dict[str, Any]:
        total_var = self.sum_sq - float((self.sum_x / self.n).pow(2).sum()) * self.n
        ev = 1 - self.sse / total_var if total_var > 0 else math.nan
        density = self.fired / self.n
        out: dict[str, Any] = {
            "n_tokens": self.n,
            "l0": self.l0 / self.n,
            "mse": self.sse / self.n,
            "explained_variance": ev,
            "fvu": 1 - ev,
            "cosine": self.cos / self.n,
            "l2_ratio": self.ratio / self.n,
            "dead_fraction": metrics.dead_fraction(density),
            "dense_fraction": metrics.dense_fraction(density, dense_threshold),
            "feature_density_histogram": metrics.density_histogram(density),
        }
        if self.windows:
            out.update({k: v / self.windows for k, v in self.ce.items()})
            out.update({k: v / self.kl_tokens for k, v in self.kl.items()})
            out.update(metrics.scores(out))
        return out

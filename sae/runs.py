"""What every SAE-training job needs besides the trainer: new SAEs for a set of hooks, the training
config for a token budget, and where each SAE is saved."""

from __future__ import annotations

from pathlib import Path

import torch

from interp.errors import InterpError
from sae.config import SAEConfig, TrainConfig
from sae.registry import architecture_names, create_sae


def check_architecture(arch: str) -> None:
    if arch not in architecture_names():
        raise InterpError(f"unknown architecture {arch!r}: choose one of {', '.join(architecture_names())}.")


def new_saes(hooks: list[str], widths: dict[str, int], arch: str, k: int | None, expansion: int, model_name: str,
             device: torch.device | str, extra: dict | None = None) -> dict:
    """One freshly created SAE per hook, d_sae = expansion * d_in; k only for the TopK family."""
    check_architecture(arch)
    if expansion < 1:
        raise InterpError(f"--expansion must be at least 1, not {expansion}.")
    k = k if arch in ("topk", "batchtopk") else None
    out = {}
    for h in hooks:
        cfg = SAEConfig(arch, d_in=widths[h], d_sae=expansion * widths[h], k=k, hook_name=h,
                        model_name=model_name, device=str(device), extra=dict(extra or {}))
        out[h] = create_sae(cfg).to(device)
    return out


def sae_metadata(ref: dict, saelens: dict, context_size: int, dataset_path: str, skip_bos: bool) -> dict:
    """The cfg.extra of every SAE this toolkit trains (the one place it is made): where its model is
    (`ref`'s model_path, for a local folder) and what SAELens's cfg.json metadata says about the
    activations it read: context_size, dataset_path, and from `saelens` (a recording's header, or
    interp.models.saelens_metadata of the model) prepend_bos and model_from_pretrained_kwargs."""
    return {**({"model_path": ref["model_path"]} if ref.get("model_path") else {}),
            "context_size": int(context_size), "dataset": str(dataset_path), "dataset_path": str(dataset_path),
            "skip_bos": skip_bos, **{k: saelens[k] for k in ("prepend_bos", "model_from_pretrained_kwargs") if k in saelens}}


def cache_metadata(cache, skip_bos: bool) -> dict:
    """sae_metadata of an SAE trained from an activation cache (an interp.store.ActivationStore)."""
    return sae_metadata({"model_path": cache.model_path}, cache.manifest.get("header", {}), cache.context_size,
                        str(cache.path), skip_bos)


def train_config(tokens: int, batch_size: int, checkpoint_every: int, seed: int,
                 lr: float | None = None, sparsity_coefficient: float | None = None) -> TrainConfig:
    """TrainConfig for `tokens` training tokens in batches of `batch_size` (at least one step)."""
    if batch_size < 1:
        raise InterpError(f"the batch size must be at least 1, not {batch_size}.")
    steps = max(1, tokens // batch_size)
    tcfg = TrainConfig(steps=steps, checkpoint_every=max(1, min(checkpoint_every, steps)), seed=seed)
    if lr is not None:
        tcfg.lr = lr
    if sparsity_coefficient is not None:
        tcfg.sparsity_coefficient = sparsity_coefficient
    return tcfg


def sae_dirs(out: str | Path, hooks: list[str]) -> dict[str, Path]:
    """One hook: `out` is the SAE folder; several: one folder per hook under `out`."""
    out = Path(out)
    return {h: out if len(hooks) == 1 else out / h for h in hooks}

"""Building blocks shared by the commands that train SAEs (`interp train-sae`, `interp compare-layers`):
new SAEs for a set of hooks, the training config, and a resumable batch stream from a cache."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import torch

from interp.errors import InterpError
from interp.store import ActivationCache


def check_architecture(arch: str) -> None:
    import sae as saelib

    if arch not in saelib.architecture_names():
        raise InterpError(f"unknown architecture {arch!r}: choose one of {', '.join(saelib.architecture_names())}.")


def new_saes(hooks: list[str], widths: dict[str, int], arch: str, k: int | None, expansion: int, model_name: str,
             device: torch.device | str, extra: dict | None = None) -> dict:
    """One freshly created SAE per hook, d_sae = expansion * d_in; k only for the TopK family."""
    import sae as saelib

    check_architecture(arch)
    if expansion < 1:
        raise InterpError(f"--expansion must be at least 1, not {expansion}.")
    k = k if arch in ("topk", "batchtopk") else None
    out = {}
    for h in hooks:
        cfg = saelib.SAEConfig(arch, d_in=widths[h], d_sae=expansion * widths[h], k=k, hook_name=h,
                               model_name=model_name, device=str(device), extra=dict(extra or {}))
        out[h] = saelib.create_sae(cfg).to(device)
    return out


def train_config(tokens: int, batch_size: int, checkpoint_every: int, seed: int,
                 lr: float | None = None, sparsity_coefficient: float | None = None):
    """TrainConfig for `tokens` training tokens in batches of `batch_size` (at least one step)."""
    import sae as saelib

    if batch_size < 1:
        raise InterpError(f"the batch size must be at least 1, not {batch_size}.")
    steps = max(1, tokens // batch_size)
    tcfg = saelib.TrainConfig(steps=steps, checkpoint_every=max(1, min(checkpoint_every, steps)), seed=seed)
    if lr is not None:
        tcfg.lr = lr
    if sparsity_coefficient is not None:
        tcfg.sparsity_coefficient = sparsity_coefficient
    return tcfg


def cache_batches(cache: ActivationCache, hooks: list[str], batch_size: int, seed: int, skip_bos: bool,
                  device: torch.device | str) -> Callable[[int], Iterator[dict[str, torch.Tensor]]]:
    """batches(start_step) -> shuffled {hook: [batch_size, d]} from `cache`, the same ones on every
    call (what a resumed training run needs); epochs repeat with new permutations. Under torchrun,
    this rank's rows of each of those batches."""
    from interp import distributed

    rank, world = distributed.rank(), distributed.world_size()
    if batch_size < world:
        raise InterpError(f"a batch of {batch_size} tokens cannot be split over {world} ranks; use a larger --batch-size.")

    def batches(start: int):
        for b in cache.iter_batches(hooks, batch_size, seed=seed, start_step=start, skip_bos=skip_bos, rank=rank, world=world):
            yield {h: x.to(device) for h, x in b.items()}

    return batches


def sae_dirs(out: str | Path, hooks: list[str]) -> dict[str, Path]:
    """One hook: `out` is the SAE folder; several: one folder per hook under `out`."""
    out = Path(out)
    return {h: out if len(hooks) == 1 else out / h for h in hooks}

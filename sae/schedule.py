"""Learning-rate and sparsity-coefficient schedules, as functions of the step (so a resumed run
needs nothing but the step to continue them)."""

from __future__ import annotations

from sae.config import TrainConfig


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up over cfg.lr_warmup() steps, flat, then linear decay to zero from
    lr_decay_start * steps to the end (Anthropic, April 2024)."""
    warmup = cfg.lr_warmup()
    warm = min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0
    decay_from = int(cfg.lr_decay_start * cfg.steps)
    decay = 1.0
    if cfg.steps > decay_from and step >= decay_from:
        decay = (cfg.steps - step) / (cfg.steps - decay_from)
    return cfg.lr * warm * decay


def sparsity_at(step: int, cfg: TrainConfig, final: float) -> float:
    """The sparsity coefficient grows linearly from 0 to `final` over the warm-up, so the
    dictionary first learns to reconstruct before it is pushed to be sparse."""
    return final * min(1.0, (step + 1) / cfg.sparsity_warmup())

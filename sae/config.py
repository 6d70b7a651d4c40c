"""The two configs: what an SAE is (`SAEConfig`, saved in cfg.json) and how it is trained
(`TrainConfig`, saved with the checkpoints)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from interp.configs import DictConfig
from sae.errors import SAEError


@dataclass
class SAEConfig(DictConfig):
    architecture: str  # registry name: relu | topk | batchtopk | jumprelu
    d_in: int
    d_sae: int
    k: int | None = None  # active latents per token (topk) or on average (batchtopk)
    hook_name: str = ""
    model_name: str = ""
    dtype: str = "float32"
    device: str = "cpu"
    # Training sees x * activation_scale, chosen so that E||x|| = sqrt(d_in) (Anthropic, April
    # 2024). Saving folds the scale into the weights and resets it to 1.0, so a saved SAE reads
    # raw activations ("normalize_activations": "none" in cfg.json).
    activation_scale: float = 1.0
    extra: dict[str, Any] = field(default_factory=dict)  # context_size, dataset, trained_as, ...

    def __post_init__(self) -> None:
        if self.d_in <= 0 or self.d_sae <= 0:
            raise SAEError(f"d_in and d_sae must be positive, got d_in={self.d_in}, d_sae={self.d_sae}.")
        if self.k is not None and not 0 < self.k <= self.d_sae:
            raise SAEError(f"k={self.k} must be between 1 and d_sae={self.d_sae}; lower k or widen the SAE.")


@dataclass
class TrainConfig(DictConfig):
    steps: int = 10_000
    lr: float = 4e-4
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 6.25e-10  # Gao et al. 2024: small eps keeps Adam's update size scale-free
    lr_warmup_steps: int | None = None  # None: 10% of the steps, at most 100 (short runs are not all warm-up)
    lr_decay_start: float = 0.8  # linear decay to zero over the last 20% of steps (Anthropic)
    # relu: L1 weighted by decoder norms; jumprelu: L0. None takes the architecture's default.
    sparsity_coefficient: float | None = None
    sparsity_warmup_steps: int | None = None  # None: the first 5% of steps (Anthropic)
    grad_clip: float | None = 1.0
    # TopK family: AuxK on latents dead for `dead_tokens` tokens (Gao et al.). k_aux None: d_in // 2.
    aux_coefficient: float = 1 / 32
    k_aux: int | None = None
    dead_tokens: int = 2_000_000
    jumprelu_init_threshold: float = 0.01
    jumprelu_bandwidth: float = 0.05  # width of the straight-through estimator's window
    b_dec_init: str = "geometric_median"  # geometric_median | mean | zeros
    normalize_activations: bool = True  # scale inputs so E||x|| = sqrt(d_in)
    init_batches: int = 4  # batches read (from step 0) to set b_dec and the input scale
    checkpoint_every: int = 1000
    keep_checkpoints: int = 2
    log_every: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps <= 0:
            raise SAEError(f"steps must be positive, got {self.steps}.")
        if self.b_dec_init not in ("geometric_median", "mean", "zeros"):
            raise SAEError(f"b_dec_init must be geometric_median, mean or zeros, got {self.b_dec_init!r}.")
        if self.checkpoint_every <= 0:
            raise SAEError(f"checkpoint_every must be positive, got {self.checkpoint_every}.")
        self.adam_betas = tuple(self.adam_betas)  # JSON gives back a list

    def lr_warmup(self) -> int:
        return self.lr_warmup_steps if self.lr_warmup_steps is not None else min(100, max(1, self.steps // 10))

    def sparsity_warmup(self) -> int:
        return self.sparsity_warmup_steps if self.sparsity_warmup_steps is not None else max(1, self.steps // 20)

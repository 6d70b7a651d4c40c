"""The sparse autoencoder, written once (after OpenAI's sparse_autoencoder):

    pre    = (x - b_dec) @ W_enc + b_enc          # [..., d_sae]
    z      = activation(pre)                      # relu | topk | jumprelu (one file each)
    x_hat  = z @ W_dec + b_dec                    # [..., d_in]

Every architecture subclasses `SAE`, supplies `activation` (inference) and `training_loss`
(its recipe), and registers itself by name in sae/registry.py.

Data-parallel training (torchrun) splits each batch over ranks. `training_loss` then returns this
rank's *share* of the whole batch's loss: sums over its rows divided by whole-batch quantities
(`step_ctx.batch_tokens`, `step_ctx.centred_sq_sum`), so that the ranks' shares, and their gradients, add
up to exactly what one process computes on the whole batch. In one process the share is the loss.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from sae.config import SAEConfig, TrainConfig
from sae.errors import SAEError
from sae.threads import wide


@dataclass
class StepContext:
    """What the trainer tells the architecture about this step."""
    sparsity_coefficient: float
    var_sum: torch.Tensor  # sum over the batch of ||x - mean(x)||^2, for normalised losses
    dead: torch.Tensor | None = None  # [d_sae] bool, latents that have not fired for a while
    k_aux: int = 0
    cfg: TrainConfig = field(default_factory=TrainConfig)
    measure: bool = True  # count active latents (a full pass over dense latents: not every step)
    density: float | None = None  # active fraction of latents at the last count, if known
    n_total: int = 0  # tokens in the whole batch, all ranks together (0: x is the whole batch)
    reduce: Callable[[torch.Tensor, str], torch.Tensor] | None = None  # in place over ranks; None: one process

    def batch_tokens(self, x: torch.Tensor) -> int:
        """Rows of the whole batch that x [n, d] is this rank's part of."""
        return self.n_total or x.shape[0]

    def centred_sq_sum(self, x: torch.Tensor) -> torch.Tensor:
        """sum over the whole batch's rows of ||x - mean(x)||^2 (no gradient)."""
        return spread(x.detach(), self.reduce)[1]


def spread(x: torch.Tensor, reduce: Callable[[torch.Tensor, str], torch.Tensor] | None = None) -> tuple[int, torch.Tensor]:
    """(rows, sum of ||x - mean(x)||^2) of x [n, d], over every rank's x when `reduce` sums over
    ranks. One process keeps the direct formula; across ranks the sums of x and of ||x||^2 are
    added in float64, where the cancellation in sum ||x||^2 - N ||mean||^2 costs nothing."""
    if reduce is None:
        return x.shape[0], torch.sub(x, x.mean(0)).square_().sum()  # in place: one [n, d] temporary
    xd = x.double()
    packed = torch.cat([xd.new_tensor([x.shape[0]]), xd.sum(0), xd.pow(2).sum()[None]])
    reduce(packed, "sum")
    n, total, sq = packed[0], packed[1:-1], packed[-1]
    return int(n), (sq - total.dot(total) / n).clamp_min(0).to(x.dtype)


@dataclass
class StepOutput:
    loss: torch.Tensor  # scalar, carries the graph
    sse: torch.Tensor  # sum of squared reconstruction errors over the batch (detached)
    fired: torch.Tensor  # [d_sae] bool, latents active on at least one token of the batch
    active: torch.Tensor | None = None  # active (token, latent) pairs, if step_ctx.measure
    terms: dict[str, torch.Tensor] = field(default_factory=dict)  # detached parts of the loss


class SAE(nn.Module):
    name: ClassVar[str] = ""  # registry name
    saelens_name: ClassVar[str] = ""  # "architecture" written to cfg.json
    unit_norm_decoder: ClassVar[bool] = True  # else decoder norms are folded in at save
    needs_k: ClassVar[bool] = False
    sparse_step: ClassVar[bool] = False  # the step is one dense product plus small operators (sae/threads.py)
    default_sparsity_coefficient: ClassVar[float] = 0.0
    init_decoder_norm: ClassVar[float] = 1.0
    latent_scaled: ClassVar[tuple[str, ...]] = ("b_enc",)  # tensors in units of latent activation

    def __init__(self, cfg: SAEConfig):
        super().__init__()
        if self.needs_k and cfg.k is None:
            raise SAEError(f"the {self.name} architecture needs k (active latents per token); pass k.")
        self.cfg = cfg
        d, s = cfg.d_in, cfg.d_sae
        kw = dict(dtype=_dtype(cfg.dtype), device=cfg.device)
        # W_enc is [d_in, d_sae] as SAELens has it, but stored latent-major (it is the transpose
        # of a contiguous [d_sae, d_in] tensor): the training kernels gather and scatter whole
        # latents, and the forward matmul runs as fast on this layout.
        self.W_enc = nn.Parameter(torch.zeros(s, d, **kw).t())
        self.W_dec = nn.Parameter(torch.zeros(s, d, **kw))
        self.b_enc = nn.Parameter(torch.zeros(s, **kw))
        self.b_dec = nn.Parameter(torch.zeros(d, **kw))

    # ---- the equation (inference) -------------------------------------------------------
    def pre_acts(self, x: torch.Tensor) -> torch.Tensor:  # [N, d_in] -> [N, d_sae]
        return torch.addmm(self.b_enc, x - self.b_dec, self.W_enc)

    def activation(self, pre: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Latents [..., d_sae] of raw activations x [..., d_in]."""
        x2 = self._flat_input(x)
        return self.activation(self.pre_acts(x2)).reshape(*x.shape[:-1], self.cfg.d_sae)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Reconstruction [..., d_in] of latents z [..., d_sae]."""
        if z.shape[-1] != self.cfg.d_sae:
            raise SAEError(f"decode takes latents of size d_sae={self.cfg.d_sae}, got last dimension {z.shape[-1]}.")
        z2 = z.reshape(-1, self.cfg.d_sae).to(self.W_dec.dtype)
        out = torch.addmm(self.b_dec, z2, self.W_dec)
        if self.cfg.activation_scale != 1.0:
            out = out / self.cfg.activation_scale
        return out.reshape(*z.shape[:-1], self.cfg.d_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def _flat_input(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.cfg.d_in:
            where = f" at {self.cfg.hook_name}" if self.cfg.hook_name else ""
            raise SAEError(
                f"this SAE reads vectors of size d_in={self.cfg.d_in}{where}, but the input's last "
                f"dimension is {x.shape[-1]}; pass activations from the hook it was trained on."
            )
        x2 = x.reshape(-1, self.cfg.d_in).to(self.W_enc.dtype)
        if self.cfg.activation_scale != 1.0:  # unfolded (training-time) weights read scaled input
            x2 = x2 * self.cfg.activation_scale
        return x2

    # ---- training ------------------------------------------------------------------------
    def training_loss(self, x: torch.Tensor, step_ctx: StepContext) -> StepOutput:
        """The recipe's loss on a batch x [B, d_in] that is already scaled."""
        raise NotImplementedError

    @torch.no_grad()
    def pre_into_buffer(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(x - b_dec, pre) with pre written into a [B, d_sae] buffer kept between steps: a fresh
        75 MB tensor per step costs page faults that show up as a fifth of CPU time."""
        buf = getattr(self, "_pre_buf", None)
        shape = (x.shape[0], self.cfg.d_sae)
        if buf is None or buf.shape != shape or buf.dtype != x.dtype or buf.device != x.device:
            buf = self._pre_buf = torch.empty(shape, dtype=x.dtype, device=x.device)
        xc = x - self.b_dec
        with wide():
            return xc, torch.addmm(self.b_enc, xc, self.W_enc, out=buf)

    @torch.no_grad()
    def init_weights(self, generator: torch.Generator, train_cfg: TrainConfig) -> None:
        """Decoder rows in random directions; encoder = decoder transpose (Gao et al. 2024)."""
        w = torch.randn(self.cfg.d_sae, self.cfg.d_in, generator=generator, dtype=torch.float64)
        w = w / w.norm(dim=1, keepdim=True) * self.init_decoder_norm
        self.W_dec.copy_(w)
        self.W_enc.copy_(w.t())
        self.b_enc.zero_()
        self.b_dec.zero_()

    # ---- the file format -----------------------------------------------------------------
    def inference_tensors(self) -> dict[str, torch.Tensor]:
        """Weights for sae_weights.safetensors: decoder norms and the input scale folded in,
        so the result reads raw activations and has unit-norm decoder rows."""
        t = {k: v.detach().clone().contiguous() for k, v in self.export_state().items()}
        n = t["W_dec"].norm(dim=1).clamp_min(1e-12)
        if not self.unit_norm_decoder and (n - 1).abs().max() > 1e-5:  # (else: folded already)
            # z_i * W_dec[i] is unchanged if z_i grows by n_i and W_dec[i] shrinks by n_i;
            # every activation here is positively homogeneous, so pre_i can grow by n_i too.
            t["W_dec"] /= n[:, None]
            t["W_enc"] *= n[None, :]
            for key in self.latent_scaled:
                t[key] *= n
        s = self.cfg.activation_scale
        if s != 1.0:
            # With x' = s x: pre(x') = s * pre'(x) where pre' uses b_enc/s and b_dec/s, and
            # x_hat' / s = (z/s) @ W_dec + b_dec/s. So latents move to raw units; W_enc and
            # W_dec (unit rows) stay as trained.
            t["b_dec"] /= s
            for key in self.latent_scaled:
                t[key] /= s
        return t

    def export_state(self) -> dict[str, torch.Tensor]:
        """The tensors a saved SAE holds, before folding (subclasses add threshold)."""
        return {"W_enc": self.W_enc, "W_dec": self.W_dec, "b_enc": self.b_enc, "b_dec": self.b_dec}

    @torch.no_grad()
    def load_inference_tensors(self, t: dict[str, torch.Tensor]) -> None:
        for key in ("W_enc", "W_dec", "b_enc", "b_dec"):
            getattr(self, key).copy_(t[key])


def _dtype(name: str) -> torch.dtype:
    dt = getattr(torch, str(name).replace("torch.", ""), None)
    if not isinstance(dt, torch.dtype):
        raise SAEError(f"unknown dtype {name!r}; use float32, float64, float16 or bfloat16.")
    return dt

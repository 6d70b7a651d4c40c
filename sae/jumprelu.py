"""JumpReLU SAE (Rajamanoharan et al. 2024, "Jumping Ahead"): z = pre * 1[pre > theta] with a
learnt threshold per latent, trained on ||x - x_hat||^2 + lambda * L0. The step function has
no useful gradient, so the threshold learns through a straight-through estimator: a
rectangle kernel of width `bandwidth` around theta stands in for the Dirac delta. Unit-norm
decoder; theta = exp(log_threshold) stays positive."""

from __future__ import annotations

import math

import torch

from sae.base import SAE, StepContext, StepOutput
from sae.config import TrainConfig
from sae.kernels import dense_pre
from sae.registry import register


class _JumpReLU(torch.autograd.Function):
    """z = pre * 1[pre > theta]. Backward: z passes its gradient to pre where it fired; the
    threshold gets the straight-through estimate through a rectangle window of width eps,
    d z / d theta ~ -(theta/eps) 1[|pre - theta| < eps/2]. The L0 penalty lambda/B * sum
    1[pre > theta] has its gradient, -(1/eps) 1[...] * l0_grad with l0_grad = lambda/B,
    added here in the same pass, and none to pre (as in the paper)."""

    @staticmethod
    def forward(ctx, pre, theta, eps, l0_grad):
        fired = pre > theta
        ctx.save_for_backward(pre, theta, fired)
        ctx.eps, ctx.l0_grad = eps, l0_grad
        return torch.where(fired, pre, 0.0)

    @staticmethod
    def backward(ctx, g_z):
        pre, theta, fired = ctx.saved_tensors
        eps = ctx.eps
        g_pre = torch.where(fired, g_z, 0.0)
        near = (pre - theta).abs_() < eps / 2
        # injected: g_z * theta, the reconstruction term's STE through z; l0_grad, the L0 term lambda/B sum 1[pre > theta]
        g_theta = torch.where(near, g_z * theta + ctx.l0_grad, 0.0).sum(0) / -eps
        return g_pre, g_theta, None, None


@register
class JumpReLUSAE(SAE):
    name = "jumprelu"
    saelens_name = "jumprelu"
    default_sparsity_coefficient = 1.0  # SAELens's default for inputs scaled to E||x|| = sqrt(d_in)
    latent_scaled = ("b_enc", "threshold")

    def __init__(self, cfg):
        super().__init__(cfg)
        self.log_threshold = torch.nn.Parameter(torch.zeros(cfg.d_sae, dtype=self.W_dec.dtype, device=self.W_dec.device))

    @property
    def threshold(self) -> torch.Tensor:  # [d_sae]
        return self.log_threshold.exp()

    def activation(self, pre: torch.Tensor) -> torch.Tensor:
        return pre.relu() * (pre > self.threshold)

    def training_loss(self, x: torch.Tensor, step_ctx: StepContext) -> StepOutput:
        pre = dense_pre(x, self.W_enc, self.b_enc, self.b_dec)  # [B, d_sae]
        n, coef = step_ctx.batch_tokens(x), step_ctx.sparsity_coefficient  # whole batch: this rank's share
        z = _JumpReLU.apply(pre, self.threshold, step_ctx.cfg.jumprelu_bandwidth, coef / n)
        x_hat = torch.addmm(self.b_dec, z, self.W_dec)
        sse = (x_hat - x).pow(2).sum()
        loss = sse / n  # the L0 term's gradient is added inside _JumpReLU; its value below
        terms = {"mse": sse.detach() / n}
        with torch.no_grad():
            fired = z.amax(0) > 0
            active = torch.count_nonzero(z) if step_ctx.measure else None
        if active is not None:
            terms["l0"] = active / n
            loss = loss + coef * terms["l0"]
        return StepOutput(loss, sse.detach(), fired, active, terms)

    @torch.no_grad()
    def init_weights(self, generator: torch.Generator, train_cfg: TrainConfig) -> None:
        super().init_weights(generator, train_cfg)
        self.log_threshold.fill_(math.log(train_cfg.jumprelu_init_threshold))

    def export_state(self) -> dict[str, torch.Tensor]:
        return {**super().export_state(), "threshold": self.threshold}

    @torch.no_grad()
    def load_inference_tensors(self, t: dict[str, torch.Tensor]) -> None:
        super().load_inference_tensors(t)
        # a threshold <= 0 acts like 0 after the ReLU; keep the log finite
        self.log_threshold.copy_(t["threshold"].clamp_min(torch.finfo(self.W_dec.dtype).tiny).log())

"""Every architecture's training loss written out with dense tensors and plain autograd: the
equations the fast kernels (sae/kernels.py, sae/relu.py, sae/jumprelu.py, the TopK family) must
agree with, in value and in gradient. Slow ([B, d_sae] tensors throughout); for tests and reading.

    loss = reference_loss(sae, x, step_ctx)   # one process; step_ctx as the trainer builds it
    loss.backward()                            # the gradients the kernels' backward passes inject

The terms, for a batch x [B, d_in] with pre = (x - b_dec) W_enc + b_enc and x_hat = z W_dec + b_dec:
- relu:      sum (x_hat - x)^2 / B  +  lambda sum_i ||W_dec[i]|| sum_b z[b, i] / B    (z = relu(pre))
- topk:      sum (x_hat - x)^2 / sum (x - mean x)^2  +  aux_coefficient * AuxK         (z = top k of each row)
- batchtopk: as topk, z = the top k*B of relu(pre) over the whole batch
- jumprelu:  sum (x_hat - x)^2 / B  +  lambda sum 1[pre > theta] / B, with the rectangle-window
             straight-through estimate for theta (width bandwidth), none to pre
AuxK (Gao et al. eq. 2): the top k_aux dead latents of each row, decoded without bias, predict
e = x - x_hat (e held fixed), normalised by sum (e - mean e)^2."""

from __future__ import annotations

import torch

from sae.base import SAE, StepContext


def reference_loss(sae: SAE, x: torch.Tensor, step_ctx: StepContext) -> torch.Tensor:
    """The scalar training loss of `sae` on `x` (one process: the batch is all of x)."""
    arch = sae.cfg.architecture
    n = x.shape[0]
    coef = step_ctx.sparsity_coefficient
    pre = (x - sae.b_dec) @ sae.W_enc + sae.b_enc
    if arch == "relu":
        z = pre.relu()
        x_hat = z @ sae.W_dec + sae.b_dec
        return (x_hat - x).pow(2).sum() / n + coef * (z.sum(0) * sae.W_dec.norm(dim=1)).sum() / n
    if arch == "jumprelu":
        return _jumprelu_loss(sae, x, pre, coef, step_ctx.cfg.jumprelu_bandwidth)
    if arch == "topk":
        v, i = pre.topk(sae.cfg.k, dim=1)
        z = torch.zeros_like(pre).scatter(1, i, v.relu())
    elif arch == "batchtopk":
        a = pre.relu().flatten()
        v, i = a.topk(sae.cfg.k * n)
        z = torch.zeros_like(a).scatter(0, i, v).view_as(pre)
    else:
        raise ValueError(f"no reference loss for the {arch!r} architecture")
    x_hat = z @ sae.W_dec + sae.b_dec
    loss = (x_hat - x).pow(2).sum() / step_ctx.var_sum.clamp_min(1e-12)
    if step_ctx.dead is not None and step_ctx.cfg.aux_coefficient > 0 and step_ctx.k_aux > 0:
        loss = loss + step_ctx.cfg.aux_coefficient * _auxk(sae, x, x_hat, pre, step_ctx.dead, step_ctx.k_aux)
    return loss


def _auxk(sae: SAE, x: torch.Tensor, x_hat: torch.Tensor, pre: torch.Tensor, dead: torch.Tensor,
          k_aux: int) -> torch.Tensor:
    k_aux = min(k_aux, int(dead.sum()))
    e = (x - x_hat).detach()
    av, ai = torch.where(dead[None], pre, -torch.inf).topk(k_aux, dim=1)
    e_hat = torch.zeros_like(pre).scatter(1, ai, av.relu()) @ sae.W_dec
    return (e_hat - e).pow(2).sum() / (e - e.mean(0)).pow(2).sum().clamp_min(1e-12)


def _jumprelu_loss(sae: SAE, x: torch.Tensor, pre: torch.Tensor, coef: float, eps: float) -> torch.Tensor:
    """The straight-through estimates written as value-free terms: f - f.detach() is 0 in value
    and carries f's gradient, so d z/d theta = -(theta/eps) near and d 1[pre > theta]/d theta =
    -(1/eps) near, where near = 1[|pre - theta| < eps/2]; pre gets the gradient of z where it fired."""
    n = x.shape[0]
    theta = sae.threshold
    fired = (pre > theta).to(pre.dtype).detach()
    near = ((pre.detach() - theta.detach()).abs() < eps / 2).to(pre.dtype)
    z_ste = -(theta.detach() * theta / eps) * near
    z = pre * fired + (z_ste - z_ste.detach())
    step_ste = -(theta / eps) * near
    l0 = (fired + (step_ste - step_ste.detach())).sum() / n
    x_hat = z @ sae.W_dec + sae.b_dec
    return (x_hat - x).pow(2).sum() / n + coef * l0

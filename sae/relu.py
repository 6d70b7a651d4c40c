"""ReLU SAE with an L1 penalty weighted by decoder norms (Anthropic, "Circuits Updates, April
2024"): loss = ||x - x_hat||^2 + lambda * sum_i z_i ||W_dec[i]||, decoder unconstrained during
training and its norms folded into the encoder at save. Saved as SAELens "standard"."""

from __future__ import annotations

import torch

from sae.base import SAE, StepContext, StepOutput
from sae.kernels import Bags, selected_pre, sparse_decode
from sae.registry import register

# Below this fraction of active latents, train through the sparse kernels (a little under the
# break-even density; bench/sae_train.py times the sparse path with --archs relu@<density>%).
SPARSE_BELOW = 0.10


class _ReLUEncode(torch.autograd.Function):
    """z = relu((x - b_dec) @ W_enc + b_enc), given the L1 term's gradient per latent, l1_grad
    [d_sae] = lambda ||W_dec[i]|| / B, so that backward adds it to dz in the same pass that
    applies the ReLU mask: no [B, d_sae] tensor for the penalty's own gradient, and no input
    gradient (see sae/kernels.py)."""

    @staticmethod
    def forward(ctx, x, W_enc, b_enc, b_dec, l1_grad):
        xc = x - b_dec
        z = torch.addmm(b_enc, xc, W_enc).relu_()
        ctx.save_for_backward(xc, W_enc, z, l1_grad)
        return z

    @staticmethod
    def backward(ctx, g_z):
        xc, W_enc, z, l1_grad = ctx.saved_tensors
        # injected: the L1 term lambda/B sum_b,i ||W_dec[i]|| z[b, i] (sae/reference.py), d/dz = l1_grad;
        # g_z is the decoder matmul's fresh output, only ours, so it is added in place
        g_pre = torch.ops.aten.threshold_backward(g_z.add_(l1_grad), z, 0)
        g_b_enc = g_pre.sum(0)
        # xc^T g_pre comes out in W_enc's own [d_in, d_sae] layout: no copy when it is accumulated
        return None, xc.t().mm(g_pre), g_b_enc, -W_enc.mv(g_b_enc), None


@register
class ReLUSAE(SAE):
    name = "relu"
    saelens_name = "standard"
    unit_norm_decoder = False
    default_sparsity_coefficient = 5.0  # Anthropic's lambda for inputs scaled to E||x|| = sqrt(d_in)
    init_decoder_norm = 0.1  # "random directions with norm 0.05 to 1"; 0.1 starts near sparse

    def activation(self, pre: torch.Tensor) -> torch.Tensor:
        return pre.relu()

    def training_loss(self, x: torch.Tensor, step_ctx: StepContext) -> StepOutput:
        if step_ctx.density is not None and step_ctx.density < SPARSE_BELOW:
            return self._sparse_loss(x, step_ctx)
        n = step_ctx.batch_tokens(x)  # sums over these rows divided by the whole batch's size: a share
        norms = self.W_dec.norm(dim=1)
        coef = step_ctx.sparsity_coefficient
        z = _ReLUEncode.apply(x, self.W_enc, self.b_enc, self.b_dec, (coef / n) * norms.detach())  # [B, d_sae]
        x_hat = torch.addmm(self.b_dec, z, self.W_dec)
        sse = (x_hat - x).pow(2).sum()
        with torch.no_grad():
            z_sum = z.sum(0)
            fired = z.amax(0) > 0  # a tenth of the cost of counting per latent
            active = torch.count_nonzero(z) if step_ctx.measure else None
        # the penalty's value, and its gradient through the decoder norms; its gradient
        # through z was handed to _ReLUEncode above
        l1 = z_sum.dot(norms) / n
        loss = sse / n + coef * l1
        return StepOutput(loss, sse.detach(), fired, active, {"mse": sse.detach() / n, "l1": l1.detach()})

    def _sparse_loss(self, x: torch.Tensor, step_ctx: StepContext) -> StepOutput:
        """The same loss once latents are sparse: the positive pre-activations, found in one
        pass, go through the TopK family's kernels (ragged rows)."""
        n, coef = step_ctx.batch_tokens(x), step_ctx.sparsity_coefficient
        with torch.no_grad():
            xc, pre = self.pre_into_buffer(x)
            rows, cols = (pre > 0).nonzero(as_tuple=True)  # grouped by token
            counts = torch.bincount(rows, minlength=x.shape[0])
            bags = Bags.build(cols, self.cfg.d_sae, counts.cumsum(0) - counts)
            fired = torch.zeros(self.cfg.d_sae, dtype=torch.bool, device=x.device)
            fired[cols] = True
        z = selected_pre(pre[rows, cols], bags, xc, self.W_enc, self.b_enc, self.b_dec)  # all > 0
        x_hat = sparse_decode(z, self.W_dec, bags) + self.b_dec
        sse = (x_hat - x).pow(2).sum()
        l1 = z.dot(self.W_dec.norm(dim=1)[cols]) / n
        loss = sse / n + coef * l1
        return StepOutput(loss, sse.detach(), fired, torch.tensor(cols.numel()), {"mse": sse.detach() / n, "l1": l1.detach()})

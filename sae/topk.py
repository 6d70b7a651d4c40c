"""TopK SAE (Gao et al. 2024, "Scaling and evaluating sparse autoencoders"): keep the k largest
pre-activations of each token (then ReLU), unit-norm decoder, normalised MSE, and AuxK: the
k_aux largest pre-activations among dead latents reconstruct the main model's residual.

Training never forms the dense [B, d_sae] latents: decoding and the encoder gradient go
through the k selected rows only (sae/kernels.py)."""

from __future__ import annotations

import torch

from sae.base import SAE, StepContext, StepOutput
from sae.kernels import Bags, encode_decode_error, selected_pre, sparse_decode
from sae.registry import register
from sae.select import topk_rows


@register
class TopKSAE(SAE):
    name = "topk"
    saelens_name = "topk"
    needs_k = True
    sparse_step = True

    def activation(self, pre: torch.Tensor) -> torch.Tensor:
        vals, idx = pre.topk(self.cfg.k, dim=-1, sorted=False)
        return torch.zeros_like(pre).scatter_(-1, idx, vals.relu())

    def encode_sparse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(acts, idx), each [N, k]: the k active latents of each token, unsorted."""
        vals, idx = self.pre_acts(self._flat_input(x)).topk(self.cfg.k, dim=-1, sorted=False)
        return vals.relu(), idx

    def training_loss(self, x: torch.Tensor, step_ctx: StepContext) -> StepOutput:
        with torch.no_grad():
            xc, pre = self.pre_into_buffer(x)
            vals, idx = topk_rows(pre, self.cfg.k)  # [B, k]
            bags = Bags.build(idx, self.cfg.d_sae)
        acts, sse, residual = encode_decode_error(vals, bags, xc, self.W_enc, self.b_enc, self.b_dec, self.W_dec)
        return topk_family_output(self, x, sse, residual, xc, pre, acts, bags, step_ctx)


def topk_family_output(
    sae: SAE, x: torch.Tensor, sse: torch.Tensor, residual: torch.Tensor, xc: torch.Tensor, pre: torch.Tensor,
    acts: torch.Tensor, bags: Bags, step_ctx: StepContext,
) -> StepOutput:
    """Normalised MSE plus AuxK, and firing counts, shared by topk and batchtopk (this rank's
    share of each: step_ctx.var_sum and the batch size are the whole batch's). sse is the sum of
    squares of residual = x_hat + b_dec - x (which has no gradient), xc = x - b_dec."""
    loss = sse / step_ctx.var_sum.clamp_min(1e-12)
    terms = {"mse": sse.detach() / step_ctx.batch_tokens(x)}
    if step_ctx.dead is not None and step_ctx.cfg.aux_coefficient > 0 and step_ctx.k_aux > 0:
        aux = auxk_loss(sae, residual.neg(), xc, pre, step_ctx.dead, step_ctx.k_aux, step_ctx)
        loss = loss + step_ctx.cfg.aux_coefficient * aux
        terms["auxk"] = aux.detach()
    with torch.no_grad():
        on = acts > 0
        fired = torch.zeros(sae.cfg.d_sae, dtype=torch.bool, device=x.device)
        fired[bags.idx[on]] = True
    return StepOutput(loss, sse.detach(), fired, on.sum(), terms)


def auxk_loss(
    sae: SAE, e: torch.Tensor, xc: torch.Tensor, pre: torch.Tensor,
    dead: torch.Tensor, k_aux: int, step_ctx: StepContext | None = None,
) -> torch.Tensor:
    """Gao et al. eq. (2): the top k_aux dead latents, decoded without bias, predict the
    residual e = x - x_hat (given, without gradient); normalised by e's variance so it stays O(1) as x_hat improves.
    Sparse like the main path (measured faster than dense products over the dead latents
    even with half of them dead and k_aux = d_in / 2), except for one step (see Bags.pair_dots)."""
    dead_idx = dead.nonzero().squeeze(1)
    k_aux = min(k_aux, dead_idx.numel())
    with torch.no_grad():
        vals, top = topk_rows(pre.index_select(1, dead_idx), k_aux)
        bags = Bags.build(dead_idx[top], sae.cfg.d_sae, subset=dead_idx, local=top)
    a = selected_pre(vals, bags, xc, sae.W_enc, sae.b_enc, sae.b_dec).relu()
    e_hat = sparse_decode(a, sae.W_dec, bags)
    e_spread = step_ctx.centred_sq_sum(e) if step_ctx is not None else (e - e.mean(0)).pow(2).sum()  # whole batch's
    return (e_hat - e).pow(2).sum() / e_spread.clamp_min(1e-12)

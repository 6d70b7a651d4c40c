"""Training kernels: the SAE's gradients written out, so the trainer computes only what it uses.

Both encoder kernels stand for  pre = (x - b_dec) @ W_enc + b_enc  (the equation in
sae/base.py) and give gradients to W_enc, b_enc and b_dec only: x is data, so the [B, d_in]
input gradient (a sixth of a dense step's FLOPs) is never formed. b_dec's gradient through the
encoder is -(W_enc @ sum_b dpre[b]), a matrix-vector product.

The TopK family's loss depends on pre only at the selected (token, latent) pairs, a few per
token. `Bags` holds those pairs grouped by token and, sorted once per step, grouped by latent.
Then every weight gradient is an embedding-bag *forward* over the other grouping: W_enc's row
for latent s is sum over its tokens b of dpre[b, s] * (x - b_dec)[b], W_dec's row is sum of
z[b, s] * dx_hat[b]. (PyTorch's own embedding_bag backward re-sorts 64-bit indices every call,
which took more time than the rest of its work.) No [B, d_sae] tensor is made or zeroed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sae import native
from sae.threads import wide

# ---- dense (relu, jumprelu, and AuxK over the dead latents) --------------------------------


class _DensePre(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, W_enc, b_enc, b_dec, pre):
        xc = x - b_dec
        ctx.save_for_backward(xc, W_enc)
        return pre.clone() if pre is not None else torch.addmm(b_enc, xc, W_enc)

    @staticmethod
    def backward(ctx, g_pre):  # [B, n]
        xc, W_enc = ctx.saved_tensors
        g_W = g_pre.t().mm(xc).t()  # [d_in, n], laid out like W_enc (latent-major)
        g_b_enc = g_pre.sum(0)
        # no term injected: the chain rule of pre = (x - b_dec) W_enc + b_enc for the whole loss; none to the data x
        return None, g_W, g_b_enc, -W_enc.mv(g_b_enc), None


def dense_pre(x: torch.Tensor, W_enc: torch.Tensor, b_enc: torch.Tensor, b_dec: torch.Tensor,
              pre: torch.Tensor | None = None) -> torch.Tensor:
    """pre-activations [B, n] with gradients to the parameters only (W_enc [d_in, n] may be a
    column subset). Pass `pre` if it was already computed without grad to skip the matmul."""
    return _DensePre.apply(x, W_enc, b_enc, b_dec, pre)


# ---- sparse (topk, batchtopk) ----------------------------------------------------------------


@dataclass
class Bags:
    """Selected (token, latent) pairs. Grouped by token: `idx` [B, k], or [n] with row b starting
    at `offsets[b]`; `rows` [n] is the token of each flattened entry. Grouped by latent: entry
    `perm[j]` of the flattened idx is the j-th, its token is `tokens[j]`, and latent s's entries
    start at `latent_offsets[s]`."""
    idx: torch.Tensor
    offsets: torch.Tensor | None
    rows: torch.Tensor
    perm: torch.Tensor
    tokens: torch.Tensor
    latent_offsets: torch.Tensor
    subset: torch.Tensor | None = None  # the few latents idx draws from (AuxK's dead ones)
    local: torch.Tensor | None = None  # idx as positions in subset

    @classmethod
    def build(cls, idx: torch.Tensor, d_sae: int, offsets: torch.Tensor | None = None,
              subset: torch.Tensor | None = None, local: torch.Tensor | None = None) -> Bags:
        flat = idx.reshape(-1)
        if offsets is None:
            k = idx.shape[1]
            rows = torch.arange(idx.shape[0], device=idx.device).repeat_interleave(k)
        else:
            sizes = torch.diff(offsets, append=offsets.new_tensor([flat.numel()]))
            rows = torch.arange(offsets.numel(), device=idx.device).repeat_interleave(sizes)
        fast = native.kernels() if flat.device.type == "cpu" and flat.dtype == torch.int64 else None
        if fast is not None:  # a counting sort: the same stable order
            perm, tokens, latent_offsets = fast.group_by_latent(flat.contiguous(), rows, d_sae)
            return cls(idx, offsets, rows, perm, tokens, latent_offsets, subset, local)
        # a 32-bit stable sort is a few ms where the 64-bit one is a hundred
        perm = torch.sort(flat.to(torch.int32), stable=True).indices
        tokens = perm // idx.shape[1] if offsets is None else rows[perm]
        counts = torch.bincount(flat, minlength=d_sae)
        return cls(idx, offsets, rows, perm, tokens, counts.cumsum(0) - counts, subset, local)

    def token_offsets(self) -> torch.Tensor:
        """Where each token's pairs start in the flattened idx (`offsets`, or b * k)."""
        if self.offsets is not None:
            return self.offsets
        k = self.idx.shape[1]
        return torch.arange(0, self.idx.numel(), k, device=self.idx.device)

    def per_latent_sum(self, rows: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """[d_sae, d]: row s = sum over pairs (b, s) of weights[b, j] * rows[b]."""
        w = weights.reshape(-1)[self.perm]
        with wide():
            return F.embedding_bag(self.tokens, rows, self.latent_offsets, per_sample_weights=w, mode="sum")

    def per_token_sum(self, table: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """[B, d]: row b = sum over pairs (b, s) of weights[b, j] * table[s]."""
        with wide():
            return F.embedding_bag(self.idx, table, self.offsets, per_sample_weights=weights, mode="sum")

    def pair_dots(self, rows: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """Like the flattened idx: rows[b] . table[s] for each pair (b, s)."""
        if self.local is not None and self.subset.numel() < 24 * self.local.shape[1]:
            # k pairs per token out of a small subset: all dots by one matmul, then pick. The
            # sparse kernel gathers rows at random on one thread, which is slower at AuxK's
            # k_aux = d_in/2 out of d_sae/2 dead latents.
            with wide():
                dots = rows @ table[self.subset].t()
            return dots.gather(1, self.local).reshape(-1)
        fast = native.kernels() if rows.device.type == "cpu" and rows.dtype == table.dtype else None
        if fast is not None and rows.dtype in (torch.float32, torch.float64) and self.idx.dtype == torch.int64:
            with wide():
                return fast.pair_dots(rows.contiguous(), table.contiguous(), self.rows, self.idx.reshape(-1).contiguous())
        flat_offsets = self.offsets
        if flat_offsets is None:
            flat_offsets = torch.arange(0, self.idx.numel(), self.idx.shape[1], device=self.idx.device)
        try:  # the kernel behind embedding_bag's per-sample-weight gradient, called directly
            return torch.ops.aten._embedding_bag_per_sample_weights_backward(
                rows, table, self.idx.reshape(-1), flat_offsets, self.rows, 0)
        except (RuntimeError, AttributeError):  # a torch without that private op: go through autograd
            with torch.enable_grad():
                w = torch.ones(self.idx.numel(), dtype=rows.dtype, device=rows.device, requires_grad=True)
                out = F.embedding_bag(self.idx.reshape(-1), table, flat_offsets, per_sample_weights=w, mode="sum")
                return torch.autograd.grad(out, w, grad_outputs=rows)[0]


class _SelectedPre(torch.autograd.Function):
    @staticmethod
    def forward(ctx, vals, bags, xc, W_enc, b_enc, b_dec):
        ctx.bags = bags
        ctx.save_for_backward(xc, W_enc)
        return vals.clone()

    @staticmethod
    def backward(ctx, g):  # like vals
        xc, W_enc = ctx.saved_tensors
        bags: Bags = ctx.bags
        g = g.contiguous()
        g_W_encT = bags.per_latent_sum(xc, g)  # [d_sae, d_in]: W_enc's memory layout
        g_b_enc = torch.zeros_like(W_enc[0]).index_add_(0, bags.idx.reshape(-1), g.reshape(-1))
        # no term injected: the chain rule of the selected pre-activations (the loss's terms arrive in g)
        return None, None, None, g_W_encT.t(), g_b_enc, -W_enc.mv(g_b_enc)


def selected_pre(vals: torch.Tensor, bags: Bags, xc: torch.Tensor,
                 W_enc: torch.Tensor, b_enc: torch.Tensor, b_dec: torch.Tensor) -> torch.Tensor:
    """Attach gradients to pre-activations picked without grad: vals[b, j] = pre[b, idx[b, j]]
    (or ragged, as bags.idx), where xc = x - b_dec was used to compute pre."""
    return _SelectedPre.apply(vals, bags, xc, W_enc, b_enc, b_dec)


class _SparseDecode(torch.autograd.Function):
    @staticmethod
    def forward(ctx, acts, W_dec, bags):
        ctx.bags = bags
        ctx.save_for_backward(acts, W_dec)
        return bags.per_token_sum(W_dec, acts)

    @staticmethod
    def backward(ctx, g_out):  # [B, d_in]
        acts, W_dec = ctx.saved_tensors
        bags: Bags = ctx.bags
        g_out = g_out.contiguous()
        g_W_dec = bags.per_latent_sum(g_out, acts) if ctx.needs_input_grad[1] else None
        g_acts = bags.pair_dots(g_out, W_dec).reshape(acts.shape) if ctx.needs_input_grad[0] else None
        # no term injected: the chain rule of x_hat = sum_k acts W_dec[idx] (reconstruction and AuxK alike)
        return g_acts, g_W_dec, None


def sparse_decode(acts: torch.Tensor, W_dec: torch.Tensor, bags: Bags) -> torch.Tensor:
    """sum_j acts[b, j] * W_dec[idx[b, j]] -> [B, d_in] (no decoder bias)."""
    return _SparseDecode.apply(acts, W_dec, bags)


def encode_decode(vals: torch.Tensor, bags: Bags, xc: torch.Tensor, W_enc: torch.Tensor, b_enc: torch.Tensor,
                  b_dec: torch.Tensor, W_dec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(acts, x_hat without b_dec) of the selected pre-activations vals (see selected_pre), in torch:
    acts = relu(vals) carries the gradients to the encoder, x_hat all of them."""
    acts = selected_pre(vals, bags, xc, W_enc, b_enc, b_dec).relu()
    return acts, sparse_decode(acts, W_dec, bags)


def _fast_step(vals: torch.Tensor, bags: Bags, xc: torch.Tensor, W_dec: torch.Tensor):
    """The native module if this step's tensors suit its fused kernels, else None."""
    fast = native.kernels() if xc.device.type == "cpu" and xc.dtype in (torch.float32, torch.float64) else None
    if (fast is not None and bags.subset is None and vals.dtype == xc.dtype == W_dec.dtype
            and bags.tokens.dtype == bags.perm.dtype == bags.latent_offsets.dtype == torch.int64):
        return fast
    return None


class _SparseStepError(torch.autograd.Function):
    """selected_pre -> relu -> sparse_decode -> squared_error as one Function: the decoder's
    forward and the error in one native pass per token (decode_residual in
    sae/csrc/topk_step.cpp; x_hat is never stored, only r = x_hat + b_dec - x), and the decoder's
    side of the backward in one native pass over the latents (sparse_backward)."""

    @staticmethod
    def forward(ctx, vals, bags, xc, W_enc, b_enc, b_dec, W_dec, fast):
        acts = vals.relu()
        with wide():
            r, sse = fast.decode_residual(W_dec.contiguous(), acts.reshape(-1).contiguous(),
                                          bags.idx.reshape(-1).contiguous(), bags.token_offsets(), xc.contiguous())
        ctx.bags, ctx.fast = bags, fast
        ctx.save_for_backward(vals, xc, W_enc, W_dec, r)
        ctx.mark_non_differentiable(r, acts)
        return sse, r, acts

    @staticmethod
    def backward(ctx, g_sse, _g_r, _g_acts):
        vals, xc, W_enc, W_dec, r = ctx.saved_tensors
        bags: Bags = ctx.bags
        scale = 2 * float(g_sse)  # dL/dx_hat = scale * r, never formed: the kernel scales what it sums
        with wide():
            g_W_dec, g_pre, g_b_enc, g_sorted = ctx.fast.sparse_backward(
                r, W_dec.contiguous(), vals.reshape(-1).contiguous(), bags.tokens, bags.perm, bags.latent_offsets, scale)
            g_W_encT = ctx.fast.per_latent_sum(xc.contiguous(), g_sorted, bags.tokens, bags.latent_offsets)  # W_enc's layout
        # no term injected: the chain rule of sum (sum_j relu(pre[b, idx_j]) W_dec[idx_j] + b_dec - x)^2, as the
        # torch Functions above (b_dec: through the error and through pre = (x - b_dec) W_enc + b_enc)
        g_b_dec = torch.addmv(r.sum(0), W_enc, g_b_enc, beta=scale, alpha=-1)
        return None, None, None, g_W_encT.t(), g_b_enc, g_b_dec, g_W_dec, None


def encode_decode_error(vals: torch.Tensor, bags: Bags, xc: torch.Tensor, W_enc: torch.Tensor, b_enc: torch.Tensor,
                        b_dec: torch.Tensor, W_dec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(acts, sse, residual) of the selected pre-activations vals: acts = relu(vals) and the residual
    x_hat + b_dec - x carry no gradient; sse = sum of the residual's squares carries all of them.
    encode_decode then squared_error, fused into one native pass each way when the kernels are built."""
    fast = _fast_step(vals, bags, xc, W_dec)
    if fast is not None:
        sse, residual, acts = _SparseStepError.apply(vals, bags, xc, W_enc, b_enc, b_dec, W_dec, fast)
        return acts, sse, residual
    acts, x_hat = encode_decode(vals, bags, xc, W_enc, b_enc, b_dec, W_dec)
    sse, residual = squared_error(x_hat, xc, b_dec)
    return acts, sse, residual


class _SquaredError(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x_hat, xc, b_dec):
        r = x_hat - xc  # = (x_hat + b_dec) - x
        ctx.save_for_backward(r)
        ctx.mark_non_differentiable(r)
        flat = r.reshape(-1)
        return flat.dot(flat), r

    @staticmethod
    def backward(ctx, g, _g_r):
        (r,) = ctx.saved_tensors
        g_r = r * (2 * g)
        # no term injected: the chain rule of sum ((x_hat + b_dec) - x)^2 (x is data)
        return g_r, None, g_r.sum(0)


def squared_error(x_hat: torch.Tensor, xc: torch.Tensor, b_dec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum ||x_hat + b_dec - x||^2, the residual x_hat + b_dec - x without gradient), from the
    decoded latents x_hat (no b_dec) and xc = x - b_dec: two passes over [B, d_in] where adding
    b_dec, subtracting, squaring and summing took four, and one backward pass fewer."""
    return _SquaredError.apply(x_hat, xc, b_dec)

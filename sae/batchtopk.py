"""BatchTopK SAE (Bussmann et al. 2024): keep the k * B largest activations of the whole batch,
so tokens share a budget of k per token on average. At inference a single threshold, the
running mean of the smallest kept activation, replaces the batch: it is saved as a SAELens
"jumprelu" SAE with that threshold on every latent (what SAELens 6 does)."""

from __future__ import annotations

import torch

from sae import native
from sae.base import SAE, StepContext, StepOutput
from sae.config import TrainConfig
from sae.kernels import Bags, encode_decode_error
from sae.registry import register
from sae.select import topk_rows
from sae.threads import wide
from sae.topk import topk_family_output

THRESHOLD_EMA = 0.01  # after the first 100 updates, a moving average with this weight


@register
class BatchTopKSAE(SAE):
    name = "batchtopk"
    saelens_name = "jumprelu"
    needs_k = True
    sparse_step = True
    latent_scaled = ("b_enc", "threshold")

    def __init__(self, cfg):
        super().__init__(cfg)
        kw = dict(dtype=self.W_dec.dtype, device=self.W_dec.device)
        self.register_buffer("threshold", torch.zeros(cfg.d_sae, **kw))
        self.register_buffer("threshold_updates", torch.zeros((), dtype=torch.int64, device=self.W_dec.device))

    def activation(self, pre: torch.Tensor) -> torch.Tensor:
        return pre.relu() * (pre > self.threshold)

    def training_loss(self, x: torch.Tensor, step_ctx: StepContext) -> StepOutput:
        with torch.no_grad():
            xc, pre = self.pre_into_buffer(x)
            # across ranks each rank keeps the top k * (its rows): the batch is the rank's part
            vals, idx, offsets = batch_topk(pre, self.cfg.k)
            smallest = vals.min() if vals.numel() else pre.new_tensor(float("inf"))
            if step_ctx.reduce is not None:  # one threshold on every rank: the smallest kept anywhere
                step_ctx.reduce(smallest, "min")
            if vals.numel() if step_ctx.reduce is None else bool(torch.isfinite(smallest)):
                self._update_threshold(smallest)
            bags = Bags.build(idx, self.cfg.d_sae, offsets)
        acts, sse, residual = encode_decode_error(vals, bags, xc, self.W_enc, self.b_enc, self.b_dec, self.W_dec)
        return topk_family_output(self, x, sse, residual, xc, pre, acts, bags, step_ctx)

    def _update_threshold(self, smallest_kept: torch.Tensor) -> None:
        self.threshold_updates += 1
        w = max(THRESHOLD_EMA, 1.0 / float(self.threshold_updates))  # plain mean at first: no bias to 0
        self.threshold.mul_(1 - w).add_(w * smallest_kept)

    @torch.no_grad()
    def init_weights(self, generator: torch.Generator, train_cfg: TrainConfig) -> None:
        super().init_weights(generator, train_cfg)
        self.threshold.zero_()
        self.threshold_updates.zero_()

    def export_state(self) -> dict[str, torch.Tensor]:
        return {**super().export_state(), "threshold": self.threshold}

    @torch.no_grad()
    def load_inference_tensors(self, t: dict[str, torch.Tensor]) -> None:
        super().load_inference_tensors(t)
        self.threshold.copy_(t["threshold"])


def batch_topk(pre: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The k*B largest positive entries of pre [B, S] as ragged rows: (vals [n], cols [n],
    offsets [B]), entries grouped by row.

    Exact without a topk over all B*S entries: take each row's top m = 2k as candidates and
    the threshold t = the (k*B)-th largest candidate. A global winner missing from the
    candidates lies in a row whose m candidates are all >= t; only such "full" rows are
    rescanned for every entry >= t, after which the candidates hold every winner."""
    B, S = pre.shape
    K = min(k * B, B * S)
    m = min(S, 2 * k)
    fast = native.kernels() if pre.device.type == "cpu" and pre.dtype in (torch.float32, torch.float64) else None
    if fast is not None and K >= 1:
        with wide():
            out = fast.batch_topk(pre.contiguous(), K, m)
        if out:  # (nothing when pre holds a NaN: the torch path below decides)
            return out[0], out[1], out[2]
    cv, ci = topk_rows(pre, m) if m < S else pre.topk(m, dim=1, sorted=False)  # [B, m]
    t = cv.reshape(-1).topk(K, sorted=False).values.min()
    full = cv.min(dim=1).values >= t
    if m == S or not bool(full.any()):
        keep = (cv >= t) & (cv > 0)
        rows = torch.arange(B, device=pre.device)[:, None].expand(B, m)[keep]
        vals, cols = cv[keep], ci[keep]
    else:
        part = ~full
        keep = part[:, None] & (cv > 0)
        rows_a = torch.arange(B, device=pre.device)[:, None].expand(B, m)[keep]
        full_rows = full.nonzero().squeeze(1)
        sub = pre.index_select(0, full_rows)
        r, c = ((sub >= t) & (sub > 0)).nonzero(as_tuple=True)
        vals = torch.cat([cv[keep], sub[r, c]])
        cols = torch.cat([ci[keep], c])
        rows = torch.cat([rows_a, full_rows[r]])
        if vals.numel() > K:  # the exact threshold over the completed candidates
            t2 = vals.topk(K, sorted=False).values.min()
            sel = vals >= t2
            vals, cols, rows = vals[sel], cols[sel], rows[sel]
        order = rows.argsort(stable=True)
        vals, cols, rows = vals[order], cols[order], rows[order]
    counts = torch.bincount(rows, minlength=B)
    offsets = counts.cumsum(0) - counts
    return vals.contiguous(), cols.contiguous(), offsets

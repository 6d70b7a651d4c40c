"""Row-wise top-k of a wide matrix, cheaper than one torch.topk over every row.

A TopK SAE's step picks k = 32 of d_sae = 4608 pre-activations per token; torch.topk walks all
4608 entries of a row through a heap of (value, index) pairs, which measured a third of the
encoder product's time. Here each row is cut into C strided chunks, chunk j = entries
{j, j + C, j + 2C, ...}. Their maxima come from one vectorised pass, then:

- the k chunks with the largest maxima hold a top-k of the row: if v is the row's k-th largest
  value, every entry > v lies in a chunk whose max is > v, and there are fewer than k such
  chunks, so all of them are among the k picked; the picked ones have maxima >= v (or are all
  the chunks with a max >= v), so they also hold enough entries equal to v;
- one small topk over those k chunks' c entries each gives the row's top k.

The values are exactly torch.topk's; only which index wins a tie may differ (torch.topk
promises no order among ties either). When the native kernels are built (sae/native.py), one
pass per row in C++ replaces all of this, with the same guarantee."""

from __future__ import annotations

import torch

from sae import native
from sae.threads import wide

CHUNK = 8  # entries per chunk: the row's width shrinks 8x for the first topk, to 8k for the second


def topk_rows(pre: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(values, indices) [B, k] of each row's k largest entries of pre [B, S], unsorted."""
    B, S = pre.shape
    fast = native.kernels() if pre.device.type == "cpu" and pre.dtype in (torch.float32, torch.float64) else None
    if fast is not None and 1 <= k <= S:
        with wide():
            vals, idx = fast.topk_rows(pre.contiguous(), k)
        return vals, idx
    C = S // CHUNK
    if S % CHUNK or C < 4 * k or not pre.is_contiguous() or pre.device.type != "cpu":
        return pre.topk(k, dim=1, sorted=False)
    chunk_max = pre.view(B, CHUNK, C).amax(1)  # [B, C]: the max of entries j, j + C, ...
    _, best = chunk_max.topk(k, dim=1, sorted=False)  # [B, k] chunks
    cols = torch.add(best.unsqueeze(2), torch.arange(0, S, C, device=pre.device)).view(B, k * CHUNK)
    vals, pick = pre.gather(1, cols).topk(k, dim=1, sorted=False)
    return vals, cols.gather(1, pick)

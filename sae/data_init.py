"""Statistics of the first activations, used once to initialise training: the input scale and
the decoder bias b_dec (Gao et al. start it at the geometric median)."""

from __future__ import annotations

import math

import torch


def input_scale(x: torch.Tensor) -> float:
    """The factor s with E||s x|| = sqrt(d_in) over the sample x [N, d_in]."""
    mean_norm = x.double().norm(dim=1).mean().item()
    return math.sqrt(x.shape[1]) / mean_norm if mean_norm > 0 else 1.0


def geometric_median(x: torch.Tensor, iters: int = 100, tol: float = 1e-7) -> torch.Tensor:
    """The point minimising the sum of Euclidean distances to the rows of x [N, d]
    (Weiszfeld's algorithm, in float64), as a [d] tensor of x's dtype."""
    pts = x.double()
    y = pts.mean(0)
    for _ in range(iters):
        w = 1.0 / (pts - y).norm(dim=1).clamp_min(1e-12)
        y_next = (w[:, None] * pts).sum(0) / w.sum()
        moved = (y_next - y).norm() / y.norm().clamp_min(1e-12)
        y = y_next
        if moved < tol:
            break
    return y.to(x.dtype)


def initial_b_dec(x: torch.Tensor, how: str) -> torch.Tensor:
    if how == "geometric_median":
        return geometric_median(x)
    if how == "mean":
        return x.mean(0)
    return torch.zeros(x.shape[1], dtype=x.dtype, device=x.device)

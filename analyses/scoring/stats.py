"""Statistics for comparing scores: correlation, percentile bootstrap CIs, feature sampling.

Dead features. A feature that never fires on the train split has no examples to be explained
from, so it cannot be scored. We follow Bills et al. (2023) and CRATE-LM and sample among LIVE
features only: dead ones are excluded from the sample and from every mean, never counted as
score 0, and every report says how many were dead. (Counting them as 0 would mix two questions,
"how many features are used" and "how readable is a used feature"; the dead fraction is reported
beside the scores, as part of the SAE's quality.)"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from interp.errors import InterpError


def pearson(x: torch.Tensor, y: torch.Tensor) -> float | None:
    """Correlation of two equal-length vectors; None when either is constant (undefined)."""
    x, y = x.double().flatten(), y.double().flatten()
    if len(x) < 2:
        return None
    xc, yc = x - x.mean(), y - y.mean()
    for v, vc in ((x, xc), (y, yc)):  # constant up to rounding
        if float(vc.abs().max()) <= 1e-9 * max(float(v.abs().max()), 1e-30):
            return None
    return float(xc @ yc) / float((xc @ xc).sqrt() * (yc @ yc).sqrt())


def bootstrap_ci(values, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0) -> tuple[float, float, float]:
    """(mean, lo, hi): the mean and its percentile-bootstrap (1 - alpha) interval.
    NaN for all three when there are no values; lo = hi = mean for a single value."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if not np.isfinite(v).all():
        raise InterpError("cannot bootstrap values that are not finite numbers; drop the features that have no score first.")
    if len(v) == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(n_boot, len(v)))].mean(axis=1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(v.mean()), float(lo), float(hi)


def derived_seed(seed: int, *parts) -> int:
    """A seed for one part of a run (a layer, a split), fixed by the run's seed and the part's name."""
    text = ":".join(str(x) for x in (seed, *parts))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


def sample_live(count: torch.Tensor, n: int | None, seed: int = 0, min_count: int = 1) -> tuple[torch.Tensor, dict]:
    """Positions of `n` features drawn without replacement among those firing on at least
    `min_count` train examples (`count` [F]), sorted; all live ones when n is None or larger.
    Returns (positions [m], {"n_total", "n_dead", "n_live", "n_sampled"})."""
    live = (count >= min_count).nonzero().flatten()
    if n is not None and n < len(live):
        g = torch.Generator().manual_seed(seed)
        live = live[torch.randperm(len(live), generator=g)[:n]].sort().values
    info = {"n_total": int(len(count)), "n_dead": int((count < min_count).sum()),
            "n_live": int((count >= min_count).sum()), "n_sampled": int(len(live))}
    return live, info


def sample_per_layer(counts: dict, n: int, seed: int = 0, equal: bool = True, min_count: int = 1) -> tuple[dict, dict]:
    """The same number of live features from every layer: {layer: counts [F]} -> ({layer:
    positions}, {layer: info}). With `equal`, n is lowered to the fewest live features of any layer,
    so every layer has exactly the same sample size; each layer draws with its own fixed seed."""
    live = {layer: int((c >= min_count).sum()) for layer, c in counts.items()}
    if equal and live:
        n = min(n, *live.values())
    picks, infos = {}, {}
    for layer, c in counts.items():
        picks[layer], infos[layer] = sample_live(c, n, derived_seed(seed, "layer", layer), min_count)
    return picks, infos

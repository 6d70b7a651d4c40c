"""Rank agreement of two scorers on the same units: the LLM cross-check of the depth comparison.

Each unit of the cross-check has two scores of one kind, from the token explainer and simulator
and from the LLM's, both computed on the SAME held-out examples, so the pairs are matched. The
agreement is Spearman's rho over units, with a 95% percentile-bootstrap CI that resamples UNITS
(pairs, with replacement; the examples within a unit are fixed). Undefined scores are set at chance
(0 for a correlation, 0.5 for an AUROC), as in every headline mean; their counts are given."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from analyses.scoring.kinds import CHANCE
from analyses.scoring.stats import bootstrap_ci

CROSS_KINDS = ("top_random", "random_only", "detection")  # the cross-check simulates no band examples


def spearman(a, b) -> float | None:
    """Spearman's rho (ties share their mean rank); None when either side is constant or n < 3."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) < 3:
        return None
    ra, rb = rankdata(a), rankdata(b)
    if np.ptp(ra) == 0 or np.ptp(rb) == 0:
        return None
    return float(np.corrcoef(ra, rb)[0, 1])


def spearman_ci(a, b, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05) -> dict:
    """{rho, lo, hi, n, n_boot_undefined}: rho and its bootstrap CI over pairs (resamples where one
    side came out constant are left out and counted)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    rho = spearman(a, b)
    if rho is None:
        return {"rho": None, "lo": None, "hi": None, "n": len(a), "n_boot_undefined": None}
    rng = np.random.default_rng(seed)
    boots = []
    for idx in rng.integers(0, len(a), (n_boot, len(a))):
        r = spearman(a[idx], b[idx])
        if r is not None:
            boots.append(r)
    lo, hi = np.quantile(boots, [alpha / 2, 1 - alpha / 2])
    return {"rho": rho, "lo": float(lo), "hi": float(hi), "n": len(a), "n_boot_undefined": n_boot - len(boots)}


def cross_summary(units: list[dict], n_boot: int = 1000, seed: int = 0) -> dict | None:
    """Over the units that carry a `cross` entry: per kind, the agreement and both scorers' means on
    those units ({n, rho, lo, hi, tokens: {mean, lo, hi, n_undefined}, llm: {...}}); None if no unit has one."""
    pairs = [u for u in units if u.get("cross")]
    if not pairs:
        return None
    out = {}
    for kind in CROSS_KINDS:
        tok = [u[kind] for u in pairs]
        llm = [u["cross"][kind] for u in pairs]
        filled = [[CHANCE[kind] if v is None else v for v in side] for side in (tok, llm)]
        row = {"n": len(pairs), **{k: v for k, v in spearman_ci(*filled, n_boot, seed).items() if k != "n"}}
        for label, raw, vals in (("tokens", tok, filled[0]), ("llm", llm, filled[1])):
            m, lo, hi = bootstrap_ci(vals, n_boot, 0.05, seed)
            row[label] = {"mean": m, "lo": lo, "hi": hi, "n_undefined": sum(v is None for v in raw)}
        out[kind] = row
    return out

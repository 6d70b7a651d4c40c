"""The density-matched comparison: bases compared among units of similar firing density.

    from analyses.density import density_matched
    res = density_matched({"sae": (density, score), "neurons": (density, score), "random": (...)},
                          reference="neurons")

Why: rare features and dense units read differently (a rare feature has few, sharp examples), and
bases differ in their density mix, so a raw mean difference between bases can be a difference of
density mix. Here units are binned by firing density on log-spaced bins (`per_decade` bins per
factor of 10, default 1), each basis's mean score is given per bin with a 95% percentile-bootstrap
CI over that bin's units and its count, and a basis is compared with `reference` within bins only:
the pooled within-bin difference is the weighted mean over bins holding both of
mean(basis) - mean(reference), weight n_b * n_r / (n_b + n_r) (the inverse-variance weight when both
groups have the same spread). Its CI resamples units within each bin and group (a stratified
bootstrap). Units of density 0 (never fire) cannot be binned on a log scale: they are left out and
counted. Inputs are plain arrays: `density` [n] (a share of tokens or contexts, as the caller
defines it, the same way for every basis) and `score` [n], finite. Output is JSON."""

from __future__ import annotations

import math

import numpy as np

from interp.errors import InterpError


def log_bins(densities, per_decade: int = 1) -> np.ndarray:
    """Edges on a log10 grid (per_decade bins per decade) covering every positive density."""
    d = np.concatenate([np.asarray(x, dtype=np.float64).ravel() for x in densities])
    d = d[d > 0]
    if len(d) == 0:
        raise InterpError("no unit fires, so there is no density to bin.")
    lo = math.floor(np.log10(d.min()) * per_decade) / per_decade
    hi = math.ceil(np.log10(d.max()) * per_decade) / per_decade
    if hi <= lo:
        hi = lo + 1 / per_decade
    return 10 ** np.linspace(lo, hi, round((hi - lo) * per_decade) + 1)


def _check(name, density, score):
    d, s = np.asarray(density, dtype=np.float64).ravel(), np.asarray(score, dtype=np.float64).ravel()
    if d.shape != s.shape:
        raise InterpError(f"basis {name}: {len(d)} densities but {len(s)} scores.")
    if not (np.isfinite(d).all() and np.isfinite(s).all()) or (d < 0).any():
        raise InterpError(f"basis {name}: densities must be finite and >= 0 and scores finite; "
                          "count undefined scores as chance or leave them out first.")
    return d, s


def density_matched(bases: dict, reference: str | None = None, per_decade: int = 1, edges=None,
                    n_boot: int = 1000, seed: int = 0, alpha: float = 0.05) -> dict:
    """{edges, bins: [{lo, hi, bases: {basis: {n, mean, ci95}}}], n_zero_density: {basis: n},
    differences: {basis: {mean, ci95, n_bins, n_units, n_reference_units}}} (see the module doc)."""
    data = {b: _check(b, d, s) for b, (d, s) in bases.items()}
    if reference is not None and reference not in data:
        raise InterpError(f"the reference basis {reference!r} is not among {sorted(data)}.")
    edges = log_bins([d for d, _ in data.values()], per_decade) if edges is None else np.asarray(edges, dtype=np.float64)
    rng = np.random.default_rng(seed)
    nb = len(edges) - 1
    idx = {b: np.clip(np.searchsorted(edges, d, side="right") - 1, 0, nb - 1) for b, (d, _) in data.items()}
    pos = {b: (d > 0) & (d >= edges[0]) & (d <= edges[-1]) for b, (d, _) in data.items()}
    groups = {b: [s[pos[b] & (idx[b] == i)] for i in range(nb)] for b, (_, s) in data.items()}
    bins = []
    for i in range(nb):
        row = {}
        for b in data:
            v = groups[b][i]
            if len(v) == 0:
                row[b] = {"n": 0, "mean": None, "ci95": [None, None]}
                continue
            boot = v[rng.integers(0, len(v), (n_boot, len(v)))].mean(axis=1)
            row[b] = {"n": int(len(v)), "mean": float(v.mean()),
                      "ci95": [float(np.quantile(boot, alpha / 2)), float(np.quantile(boot, 1 - alpha / 2))]}
        bins.append({"lo": float(edges[i]), "hi": float(edges[i + 1]), "bases": row})
    out = {"edges": edges.tolist(), "bins": bins, "reference": reference,
           "n_outside_bins": {b: int((~pos[b]).sum()) for b in data},
           "n_zero_density": {b: int((d == 0).sum()) for b, (d, _) in data.items()},
           "differences": {}}
    if reference is None:
        return out
    for b in data:
        if b == reference:
            continue
        both = [i for i in range(nb) if len(groups[b][i]) and len(groups[reference][i])]
        if not both:
            out["differences"][b] = {"mean": None, "ci95": [None, None], "n_bins": 0, "n_units": 0, "n_reference_units": 0}
            continue
        w = np.array([len(groups[b][i]) * len(groups[reference][i]) / (len(groups[b][i]) + len(groups[reference][i])) for i in both])
        w = w / w.sum()
        diff = np.array([groups[b][i].mean() - groups[reference][i].mean() for i in both]) @ w
        boot = np.zeros(n_boot)
        for wi, i in zip(w, both):
            a, r = groups[b][i], groups[reference][i]
            boot += wi * (a[rng.integers(0, len(a), (n_boot, len(a)))].mean(1) - r[rng.integers(0, len(r), (n_boot, len(r)))].mean(1))
        out["differences"][b] = {"mean": float(diff), "ci95": [float(np.quantile(boot, alpha / 2)), float(np.quantile(boot, 1 - alpha / 2))],
                                 "n_bins": len(both), "n_units": int(sum(len(groups[b][i]) for i in both)),
                                 "n_reference_units": int(sum(len(groups[reference][i]) for i in both))}
    return out

"""How a score changes with depth, with intervals that count every source of variation.

Input: `{depth: [scores of seed 0, scores of seed 1, ...]}`, one 1-D array of unit scores per SAE
seed (or per basis draw) at each layer. Three sources of variation are modelled:

- units within a seed and seeds within a layer: a hierarchical bootstrap inside each layer
  (resample the seeds with replacement, then the units of each drawn seed) gives the layer mean's
  sampling variance `se2` and its percentile CI;
- layers around the trend: a layer's true mean scatters around any smooth curve of depth (the
  between-layer variance `tau2`). It is estimated, as in a random-effects meta-regression, from the
  residuals of the most flexible shape considered (a line with one step, breakpoint chosen by least
  squares, 4 parameters), minus the sampling variance: tau2 = max(0, RSS / (L - 4) - mean(se2)).
  Using the flexible shape keeps a step's misfit out of tau2 (a plain line's residuals would count
  it as scatter and widen the interval), and using L - 4 degrees of freedom keeps tau2 honest when
  the truth is a line.

The slope is the ordinary least-squares slope of the layer means on depth (the estimand: the slope
of the best line through the true layer means at these depths). Its variance is
sum_l w_l^2 (tau2 + se2_l) with w the OLS weights, and its 95% interval uses Student's t with L - 4
degrees of freedom. tests/test_trend.py checks on synthetic data (an exact line plus layer scatter,
and a step plus layer scatter) that it covers the true slope at 95% +/- 3 points, where an interval
from units alone covers about 60%.

A calibrated quantity (a basis minus a null of the same layer, such as random directions) is a
difference of two sampled means, so the null's own sampling error belongs in it: with
`depth_trend(scores, null=null_scores)` the layer mean is the basis's minus the null's, and each
bootstrap draw is the difference of two independent hierarchical draws (the basis's seeds and units,
the null's seeds and units), so the per-layer CIs, `se2`, the slope's interval and the interval
from units and seeds alone all carry both variances. Subtracting the null's mean as a constant
would leave its error out (tests/test_trend.py shows the per-layer CIs then under-cover).

The shape test compares constant, line and step (two levels, one breakpoint between consecutive
layers) by AICc on the layer means (small-sample Akaike criterion; the step pays for its breakpoint
as a parameter), with Akaike weights as the strength of evidence. A slope is worth reading only
when the line wins."""

from __future__ import annotations

import numpy as np
from scipy import stats

SHAPES = ("constant", "line", "step")


def layer_bootstrap(seeds: list, n_boot: int = 1000, rng: np.random.Generator | None = None) -> np.ndarray:
    """n_boot draws of one layer's mean: resample seeds with replacement, then units within each
    drawn seed; a draw is the mean over drawn seeds of their resampled unit means."""
    rng = rng or np.random.default_rng(0)
    seeds = [np.asarray(s, dtype=np.float64) for s in seeds if len(s)]
    if not seeds:
        raise ValueError("a layer has no scores")
    pick = rng.integers(0, len(seeds), (n_boot, len(seeds)))
    means = np.empty((n_boot, len(seeds)))
    for j, s in enumerate(seeds):  # per seed: every draw's resampled unit mean
        idx = rng.integers(0, len(s), (n_boot, len(s)))
        means[:, j] = s[idx].mean(1)
    return np.take_along_axis(means, pick, 1).mean(1)


def _fit(x: np.ndarray, y: np.ndarray, shape: str) -> np.ndarray:
    """Least-squares fitted values of a shape through (x, y), x sorted."""
    n = len(y)
    if shape == "constant":
        return np.full(n, y.mean())
    if shape == "line":
        b = np.polyfit(x, y, 1)
        return np.polyval(b, x)
    best, fitted = np.inf, None
    for k in range(1, n):  # breakpoint: layers [0, k) on one level, [k, n) on the other
        f = np.where(np.arange(n) < k, y[:k].mean(), y[k:].mean())
        rss = ((y - f) ** 2).sum()
        if rss < best:
            best, fitted = rss, f
    return fitted


N_PARAMS = {"constant": 2, "line": 3, "step": 4}  # with the residual variance; the step counts its breakpoint


def shape_test(x, y) -> dict:
    """AICc of each shape fitted by least squares to the layer means; the lowest wins. Akaike weights
    say how strongly (a weight near 1 is clear evidence, near the runner-up's is not)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    n = len(y)
    if n < 6:
        return {"winner": None, "aicc": {}, "weights": {}, "note": f"{n} layers are too few to compare shapes (need 6)"}
    aicc = {}
    for s in SHAPES:
        k = N_PARAMS[s]
        rss = max(float(((y - _fit(x, y, s)) ** 2).sum()), 1e-12 * n)
        aicc[s] = n * np.log(rss / n) + 2 * k + 2 * k * (k + 1) / (n - k - 1)
    best = min(aicc.values())
    raw = {s: np.exp(-(a - best) / 2) for s, a in aicc.items()}
    weights = {s: float(v / sum(raw.values())) for s, v in raw.items()}
    order = sorted(aicc, key=aicc.get)
    return {"winner": order[0], "runner_up": order[1], "aicc": {s: float(a) for s, a in aicc.items()}, "weights": weights}


def _tau2(x: np.ndarray, y: np.ndarray, se2: np.ndarray) -> float:
    """Between-layer variance from the residuals of a line with one step (see the module doc)."""
    n = len(y)
    best = np.inf
    for k in range(2, n - 1):
        X = np.c_[np.ones(n), x, (np.arange(n) >= k).astype(float)]
        beta = np.linalg.lstsq(X, y, rcond=None)[0]
        best = min(best, float(((y - X @ beta) ** 2).sum()))
    return max(0.0, best / (n - 4) - float(se2.mean()))


def _layer_mean(seeds: list) -> float:
    """A layer's mean: the mean over seeds of their unit means (as layer_bootstrap draws it)."""
    return float(np.mean([np.mean(s) for s in seeds if len(s)]))


def _sizes(seeds: list, prefix: str = "") -> dict:
    return {f"{prefix}n_seeds": sum(1 for s in seeds if len(s)), f"{prefix}n_units": int(sum(len(s) for s in seeds))}


def depth_trend(layer_scores: dict, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05, null: dict | None = None) -> dict:
    """Per-layer means with CIs, the slope with a CI over units, seeds and layers, and the shape test.
    With `null` ({depth: [seed arrays]} at the same depths), the quantity is the basis minus the null,
    and both are resampled (see the module doc). Returns a JSON-ready dict; its "text" says in words
    what the numbers support."""
    rng = np.random.default_rng(seed)
    depths = sorted(layer_scores)
    if null is not None and sorted(null) != depths:
        raise ValueError(f"the null has depths {sorted(null)}, the scores {depths}")
    x = np.asarray(depths, dtype=np.float64)
    draws = [layer_bootstrap(layer_scores[d], n_boot, rng) for d in depths]
    means = np.array([_layer_mean(layer_scores[d]) for d in depths])
    if null is not None:  # independent draws of the null, so a difference's draw carries both variances
        draws = [b - layer_bootstrap(null[d], n_boot, rng) for b, d in zip(draws, depths)]
        means = means - np.array([_layer_mean(null[d]) for d in depths])
    se2 = np.array([d.var(ddof=1) for d in draws])
    layers = [{"depth": d, "mean": float(m), "lo": float(np.quantile(b, alpha / 2)), "hi": float(np.quantile(b, 1 - alpha / 2)),
               **_sizes(layer_scores[d]), **({} if null is None else _sizes(null[d], "null_"))}
              for d, m, b in zip(depths, means, draws)]
    method = "hierarchical bootstrap within layers (seeds, then units)"
    if null is not None:
        method += ", of the basis and of the null independently (the difference of their draws)"
    out = {"layers": layers, "shape": shape_test(x, means), "minus_null": null is not None,
           "method": method + ", plus a between-layer variance from a line-with-one-step fit; t with L-4 df"}
    if len(x) < 5:
        out["slope"] = None
        out["text"] = [f"{len(x)} layers: too few for a slope whose interval counts between-layer scatter (need 5)."]
        return out
    w = (x - x.mean()) / ((x - x.mean()) ** 2).sum()
    slope = float(w @ means)
    tau2 = _tau2(x, means, se2)
    se = float(np.sqrt((w ** 2 * (tau2 + se2)).sum()))
    q = float(stats.t.ppf(1 - alpha / 2, len(x) - 4))
    within = float(np.sqrt((w ** 2 * se2).sum()))
    out["slope"] = {"per_layer": slope, "lo": slope - q * se, "hi": slope + q * se, "se": se, "tau": float(np.sqrt(tau2)),
                    "within_layer_only_lo": slope - 1.96 * within, "within_layer_only_hi": slope + 1.96 * within}
    out["text"] = trend_words(out)
    return out


def trend_words(tr: dict) -> list[str]:
    s, sh = tr["slope"], tr["shape"]
    if sh["winner"] is None:
        return [f"Slope {s['per_layer']:+.4f} per layer, 95% CI [{s['lo']:+.4f}, {s['hi']:+.4f}]; {sh['note']}."]
    ws = ", ".join(f"{k} {v:.2f}" for k, v in sh["weights"].items())
    words = [f"Slope {s['per_layer']:+.4f} per layer, 95% CI [{s['lo']:+.4f}, {s['hi']:+.4f}] (counts between-layer "
             f"scatter, SD {s['tau']:.3f}; from units and seeds alone it would be [{s['within_layer_only_lo']:+.4f}, "
             f"{s['within_layer_only_hi']:+.4f}]).",
             f"Shape by AICc on the layer means: {sh['winner']} fits best (Akaike weights: {ws})."]
    if sh["winner"] != "line":
        words.append(f"A line does not fit better than a {sh['winner']}: read the per-layer means, not the slope.")
    elif s["lo"] <= 0 <= s["hi"]:
        words.append("The line fits best, but its slope's CI includes 0.")
    return words

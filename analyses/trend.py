"""Readability against depth: per-layer means with CIs, a slope CI that counts between-layer scatter,
and a test of which shape (constant, line, step) the layer means follow.

    from analyses.trend import depth_trend
    tr = depth_trend({0: [s0, s1], 4: [s0, s1], ...})   # {layer: [scores of SAE seed 0, seed 1, ...]}
    tr["slope"]["ci95"], tr["shape"]["winner"], tr["text"]

Input everywhere: `scores = {layer: [array of unit scores of seed 0, of seed 1, ...]}` (one array, or a
list of one, for an unseeded basis such as neurons or PCA). Values must be finite: decide before
calling whether undefined scores count as 0 or are left out. `depth` (optional) maps a layer to its
x position (default: the layer number; pass layer / n_layers to compare models of other depths).
Every result is plain JSON (floats, ints, lists, dicts with string keys).

Statistics, and why these:
- **Per-layer mean and CI** (`layer_means`): the layer's mean is the mean over seeds of each seed's
  mean over units. Its 95% CI is a two-level percentile bootstrap: seeds drawn with replacement,
  then units drawn with replacement within each drawn seed (Ren et al. 2010, "Nonparametric
  bootstrapping for hierarchical data"). With one seed it is the plain bootstrap over units.
  With few seeds (2) the seed level is resampled crudely; the interval then still understates seed
  variance by about a factor (S-1)/S.
- **Slope CI** (`slope_ci`): a two-stage mixed model. Stage 1 reduces each layer to its mean (over
  seeds and units, as above). Stage 2 fits a least-squares line of the layer means on depth and
  takes the slope's standard error from the layer residuals, so everything that makes a layer
  differ from the line (SAE seeds, the sampled units, a layer-specific effect, and a wrong shape)
  is in the error term: the interval is not built on the line being exact. The SE is the HC3
  sandwich (Long & Ervin 2000), robust to residuals that differ by layer (a step's misfit is
  largest at the ends and at the break); the interval uses Student's t with n_layers - 2 df.
  This is what a random-intercept model gives for layers with equal sample sizes; we do not fit
  REML because with ~8 layers its variance component is no better determined than the residuals.
  Why not a bootstrap over layers: with 8 layers a percentile bootstrap over layers covered only
  89-90% in our simulations (tests/test_trend.py's set-up, 500-600 replicates), and resampling units
  and seeds inside the resampled layers as well would count the within-layer noise twice (the
  layer means already carry it; Davison & Hinkley 1997, sec. 3.8).
  What it estimates: the least-squares slope of readability on depth across the model's layers,
  the layers studied being seen as a sample of its depths. Coverage measured with
  `coverage_study` (depths drawn at random, 8 layers, 2 seeds, 50 units, layer scatter SD 0.05):
  95-96% for a line plus noise and for a step plus noise; the old CI (units resampled within
  layers, the line taken as exact) covered 55-64%. With evenly spaced layers and a true step, the
  interval is conservative (about 98.5% measured), since a step's misfit at fixed layers is
  not random.
- **Shape test** (`shape_test`): constant, line, and step (the best single breakpoint, at least
  `min_side` layers on each side) compared by leave-one-layer-out cross-validation on the layer
  means: each layer is predicted from a shape fitted to the other layers (the step's breakpoint
  chosen again each time; a held-out layer that falls in the gap where the break lies, between
  the two fitted layers beside it, is predicted by interpolating between the two levels, which is
  the average prediction over break positions uniform in the gap), and the shape with the lowest mean squared prediction error wins (ties
  go to the simpler shape). Cross-validation rather than AIC because the step's breakpoint is
  searched over: AIC has no honest parameter count for a discrete search, CV pays for it by
  re-searching. AICc (Gaussian, breakpoint counted as one parameter) is given beside as a second
  opinion, and the mean squared SE of the layer means as the noise floor the CV errors cannot beat.
  A slope should be read as the trend only when the line wins."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from interp.errors import InterpError

SHAPES = ("constant", "line", "step")


# --- input -----------------------------------------------------------------------------------

def _seeds(layer, v) -> list[np.ndarray]:
    """One layer's value: an array (one seed) or a list of arrays (one per seed)."""
    if isinstance(v, np.ndarray) and v.ndim == 1 or (isinstance(v, (list, tuple)) and v and np.isscalar(v[0])):
        v = [v]
    out = [np.asarray(s, dtype=np.float64).ravel() for s in v]
    if not out or any(len(s) == 0 for s in out):
        raise InterpError(f"layer {layer} has a seed with no scores; every seed of every layer needs at least one.")
    if not all(np.isfinite(s).all() for s in out):
        raise InterpError(f"layer {layer} has scores that are not finite numbers; count undefined scores as 0 or leave them out first.")
    return out


def _prepare(scores: dict, depth: dict | None = None) -> tuple[list, np.ndarray, list[list[np.ndarray]]]:
    if not scores:
        raise InterpError("no layers to compute a trend from.")
    layers = sorted(scores)
    x = np.array([float(depth[k]) if depth is not None else float(k) for k in layers])
    return layers, x, [_seeds(k, scores[k]) for k in layers]


def _layer_mean(seeds: list[np.ndarray]) -> float:
    return float(np.mean([s.mean() for s in seeds]))


# --- per layer -------------------------------------------------------------------------------

def hierarchical_means(seeds: list[np.ndarray], n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """[n_boot] bootstrap means of one layer: seeds with replacement, units with replacement within."""
    S = len(seeds)
    pick = rng.integers(0, S, size=(n_boot, S))
    per_seed = np.empty((n_boot, S))
    for s, v in enumerate(seeds):  # each seed's resampled unit means, drawn once per (resample, slot)
        means = v[rng.integers(0, len(v), size=(n_boot, S, len(v)))].mean(axis=2)
        per_seed = np.where(pick == s, means, per_seed)
    return per_seed.mean(axis=1)


def layer_means(scores: dict, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05) -> list[dict]:
    """[{layer, mean, ci95: [lo, hi], se, n_seeds, n_units (per seed), seed_means}] in layer order.
    `se` is the SD of the bootstrap means (used as the layer mean's SE by shape_test)."""
    layers, _, data = _prepare(scores)
    rng = np.random.default_rng(seed)
    out = []
    for k, seeds in zip(layers, data):
        boot = hierarchical_means(seeds, n_boot, rng)
        lo, hi = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
        out.append({"layer": k, "mean": _layer_mean(seeds), "ci95": [float(lo), float(hi)], "se": float(boot.std(ddof=1)),
                    "n_seeds": len(seeds), "n_units": [len(s) for s in seeds], "seed_means": [float(s.mean()) for s in seeds]})
    return out


# --- slope -----------------------------------------------------------------------------------

def ols_slope_hc3(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares slope of y on x along the last axis and its HC3 standard error (vectorised:
    x [L] or [..., L], y [..., L])."""
    x = np.broadcast_to(x, y.shape)
    xc = x - x.mean(-1, keepdims=True)
    sxx = (xc ** 2).sum(-1)
    b = (xc * y).sum(-1) / sxx
    resid = y - y.mean(-1, keepdims=True) - b[..., None] * xc
    h = 1.0 / x.shape[-1] + xc ** 2 / sxx[..., None]
    se = np.sqrt((xc ** 2 * resid ** 2 / (1 - h) ** 2).sum(-1)) / sxx
    return b, se


def slope_ci(scores: dict, depth: dict | None = None, alpha: float = 0.05) -> dict:
    """The depth slope of the layer means with its (1 - alpha) CI (the two-stage model of the module
    doc): {slope, ci95, se, df, n_layers, method}. Needs 3 layers or more at distinct depths."""
    _, x, data = _prepare(scores, depth)
    if len(set(x)) < 3:
        raise InterpError(f"a slope with a CI needs at least 3 layers at different depths, not {len(set(x))}.")
    y = np.array([_layer_mean(s) for s in data])
    b, se = ols_slope_hc3(x, y)
    df = len(x) - 2
    q = stats.t.ppf(1 - alpha / 2, df)
    return {"slope": float(b), "ci95": [float(b - q * se), float(b + q * se)], "se": float(se), "df": df,
            "n_layers": len(x), "method": "OLS on layer means (mean over seeds of the mean over units), "
            "HC3 standard error from the layer residuals, Student t with n_layers - 2 df"}


def feature_only_slope_ci(scores: dict, depth: dict | None = None, n_boot: int = 1000, seed: int = 0,
                          alpha: float = 0.05) -> dict:
    """The OLD interval, kept to show what it misses: units resampled within each layer (seeds
    pooled), layers fixed, the line taken as exact. It covers only the sampling of units."""
    _, x, data = _prepare(scores, depth)
    rng = np.random.default_rng(seed)
    pooled = [np.concatenate(s) for s in data]
    boot = np.stack([v[rng.integers(0, len(v), size=(n_boot, len(v)))].mean(axis=1) for v in pooled], axis=1)
    b, _ = ols_slope_hc3(x, np.array([v.mean() for v in pooled]))
    bs, _ = ols_slope_hc3(x, boot)
    lo, hi = np.quantile(bs, [alpha / 2, 1 - alpha / 2])
    return {"slope": float(b), "ci95": [float(lo), float(hi)], "method": "units resampled within layers; layers fixed"}


# --- shape -----------------------------------------------------------------------------------

def _fit(shape: str, x: np.ndarray, y: np.ndarray, min_side: int) -> dict:
    if shape == "constant":
        return {"level": float(y.mean())}
    if shape == "line":
        xc = x - x.mean()
        b = float((xc * y).sum() / (xc ** 2).sum())
        return {"intercept": float(y.mean() - b * x.mean()), "slope": b}
    order = np.argsort(x)
    xs, ys = x[order], y[order]
    best = None
    for i in range(min_side, len(xs) - min_side + 1):  # left: xs[:i]
        if xs[i - 1] == xs[i]:
            continue
        left, right = ys[:i].mean(), ys[i:].mean()
        sse = float(((ys[:i] - left) ** 2).sum() + ((ys[i:] - right) ** 2).sum())
        if best is None or sse < best[0]:
            best = (sse, {"break": float((xs[i - 1] + xs[i]) / 2), "gap": [float(xs[i - 1]), float(xs[i])],
                          "before": float(left), "after": float(right)})
    return best[1] if best else None


def _predict(shape: str, p: dict, x: np.ndarray) -> np.ndarray:
    if shape == "constant":
        return np.full(len(x), p["level"])
    if shape == "line":
        return p["intercept"] + p["slope"] * x
    lo, hi = p["gap"]  # the break may be anywhere between these two depths: in between, interpolate
    w = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return p["before"] + w * (p["after"] - p["before"])


def shape_test(means, depth=None, se=None, min_side: int = 2) -> dict:
    """Which shape the layer means follow: {winner, cv_mse: {shape: ...}, aicc: {shape: ...}, fits:
    {shape: parameters on all layers}, noise_floor, n_layers, rule}. `means`: a layer_means() list
    (its `se` is used) or {layer: mean} (then `se` may be {layer: SE}). The step is tried only
    with at least 2 * min_side + 1 layers."""
    if isinstance(means, list):
        layers = [m["layer"] for m in means]
        y = np.array([m["mean"] for m in means])
        ses = np.array([m["se"] for m in means])
    else:
        layers = sorted(means)
        y = np.array([float(means[k]) for k in layers])
        ses = None if se is None else np.array([float(se[k]) for k in layers])
    x = np.array([float(depth[k]) if depth is not None else float(k) for k in layers])
    n = len(x)
    if len(set(x)) < 3:
        raise InterpError(f"comparing shapes needs at least 3 layers at different depths, not {len(set(x))}.")
    shapes = [s for s in SHAPES if s != "step" or n >= 2 * min_side + 1]
    cv, aicc, fits = {}, {}, {}
    n_params = {"constant": 1, "line": 2, "step": 3}
    for shape in shapes:
        errs = []
        for i in range(n):
            keep = np.arange(n) != i
            p = _fit(shape, x[keep], y[keep], min_side)
            errs.append(float((_predict(shape, p, x[i:i + 1])[0] - y[i]) ** 2) if p is not None else math.inf)
        cv[shape] = float(np.mean(errs))
        fits[shape] = _fit(shape, x, y, min_side)
        sse = float(((_predict(shape, fits[shape], x) - y) ** 2).sum())
        k = n_params[shape] + 1  # + the residual variance
        aic = n * math.log(max(sse, 1e-300) / n) + 2 * k
        aicc[shape] = aic + (2 * k * (k + 1) / (n - k - 1) if n - k - 1 > 0 else math.inf)
    winner = min(shapes, key=lambda s: (cv[s], SHAPES.index(s)))
    return {"winner": winner, "cv_mse": cv, "aicc": aicc, "aicc_winner": min(shapes, key=lambda s: (aicc[s], SHAPES.index(s))),
            "fits": fits, "noise_floor": None if ses is None else float(np.mean(ses ** 2)), "n_layers": n,
            "shapes_tried": shapes, "rule": "leave-one-layer-out CV on the layer means; lowest mean squared error wins, "
            "ties to the simpler shape; the step's breakpoint is re-searched in every fold"}


# --- all together ----------------------------------------------------------------------------

def depth_trend(scores: dict, depth: dict | None = None, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05,
                label: str = "score", min_side: int = 2) -> dict:
    """layer_means, slope_ci, shape_test and the old feature-only interval, plus `text`: sentences for
    the report that give the slope only next to the shape test's verdict."""
    means = layer_means(scores, n_boot, seed, alpha)
    out = {"layers": means, "n_layers": len(means)}
    if len(means) < 3:
        out["text"] = [f"{label}: only {len(means)} layer(s), so no slope or shape test; read the per-layer means."]
        return out
    sl = slope_ci(scores, depth, alpha)
    shape = shape_test(means, depth, min_side=min_side)
    out |= {"slope": sl, "shape": shape, "feature_only_slope": feature_only_slope_ci(scores, depth, n_boot, seed, alpha)}
    cv = ", ".join(f"{s} {shape['cv_mse'][s]:.2g}" for s in shape["shapes_tried"])
    lo, hi = sl["ci95"]
    verdict = {"constant": "no trend: a constant predicts the layers best",
               "line": "a line predicts the layers best, so the slope is a fair summary",
               "step": (f"a step predicts the layers best (break at depth {shape['fits']['step']['break']:g}: "
                        f"{shape['fits']['step']['before']:.3f} before, {shape['fits']['step']['after']:.3f} after), "
                        "so the slope below is not the shape of the curve")}[shape["winner"]]
    out["text"] = [
        f"{label}: {verdict} (leave-one-layer-out CV error: {cv}; noise floor {shape['noise_floor']:.2g}).",
        f"{label}: slope {sl['slope']:+.4f} per unit of depth, 95% CI [{lo:+.4f}, {hi:+.4f}] over {sl['n_layers']} layers "
        f"(layer residuals, HC3, t with {sl['df']} df: counts between-layer scatter, seeds and units)"
        + ("; the CI excludes zero." if lo > 0 or hi < 0 else "; the CI includes zero."),
    ]
    return out


# --- checking the interval -------------------------------------------------------------------

def simulate_scores(rng: np.random.Generator, shape: str, x: np.ndarray, n_seeds: int = 2, n_units: int = 50,
                    layer_sd: float = 0.05, seed_sd: float = 0.02, unit_sd: float = 0.3) -> np.ndarray:
    """Synthetic unit scores [L, S, n] around a known curve: 'line' 0.55 - 0.008 x, or 'step' 0.55
    before depth 10 and 0.36 after; plus a random effect per layer, per seed and per unit."""
    f = 0.55 - 0.008 * x if shape == "line" else np.where(x < 10, 0.55, 0.36)
    L = len(x)
    return (f + rng.normal(0, layer_sd, L))[:, None, None] + rng.normal(0, seed_sd, (L, n_seeds, 1)) \
        + rng.normal(0, unit_sd, (L, n_seeds, n_units))


def true_slope(shape: str, lo: float = 0.0, hi: float = 29.0) -> float:
    """The least-squares slope of the curve over depths uniform on [lo, hi] (what slope_ci estimates)."""
    if shape == "line":
        return -0.008
    u = np.linspace(lo, hi, 200001)
    b, _ = ols_slope_hc3(u, np.where(u < 10, 0.55, 0.36))
    return float(b)


def coverage_study(shape: str, n_rep: int = 1000, n_layers: int = 8, seed: int = 0, old_boot: int = 200,
                   random_depths: bool = True, **sim) -> dict:
    """Share of replicates whose 95% CI covers true_slope(shape), for the new interval and the old
    one. Depths uniform on [0, 29] (random_depths) or evenly spaced 0..28. Vectorised over replicates."""
    rng = np.random.default_rng(seed)
    q = stats.t.ppf(0.975, n_layers - 2)
    x = np.sort(rng.uniform(0, 29, (n_rep, n_layers)), axis=1) if random_depths else \
        np.broadcast_to(np.linspace(0, 28, n_layers), (n_rep, n_layers))
    y = np.stack([simulate_scores(rng, shape, x[r], **sim) for r in range(n_rep)])  # [R, L, S, n]
    truth = true_slope(shape) if random_depths else float(ols_slope_hc3(x[0], np.where(x[0] < 10, 0.55, 0.36) if shape == "step"
                                                                             else 0.55 - 0.008 * x[0])[0])
    b, se = ols_slope_hc3(x, y.mean(axis=(2, 3)))
    new = np.abs(b - truth) <= q * se
    R, L, S, n = y.shape
    pooled = y.reshape(R, L, S * n)
    old = np.empty(R, dtype=bool)
    for c in range(0, R, 25):  # chunks of replicates keep the [r, B, L, S*n] index array small
        p = pooled[c:c + 25]
        idx = rng.integers(0, S * n, size=(len(p), old_boot, L, S * n))
        boot = np.take_along_axis(np.broadcast_to(p[:, None], idx.shape), idx, axis=3).mean(axis=3)  # [r, B, L]
        bb, _ = ols_slope_hc3(x[c:c + 25, None, :], boot)
        lo, hi = np.quantile(bb, [0.025, 0.975], axis=1)
        old[c:c + 25] = (lo <= truth) & (truth <= hi)
    return {"shape": shape, "n_rep": n_rep, "truth": truth, "coverage": float(new.mean()), "coverage_old": float(old.mean())}

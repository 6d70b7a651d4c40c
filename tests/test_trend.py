"""analyses/trend.py: the depth-trend CI covers its truth, the shape test finds the planted shape."""

import json

import numpy as np
import pytest

from analyses.trend import (
    coverage_study,
    depth_trend,
    layer_means,
    ols_slope_hc3,
    shape_test,
    slope_ci,
    true_slope,
)
from interp.errors import InterpError

LAYERS = [0, 4, 8, 12, 16, 20, 24, 28]


@pytest.mark.parametrize("shape", ["line", "step"])
def test_slope_ci_covers_at_95_for_a_line_and_a_step(shape):
    """1,000 synthetic studies (8 layers at random depths, 2 seeds, 50 units, layer scatter SD 0.05):
    the new CI covers the true slope 95% +/- 3 points (MC SE 0.7 points); the old one does not."""
    res = coverage_study(shape, n_rep=1000, seed=1)
    assert 0.92 <= res["coverage"] <= 0.98, res
    assert res["coverage_old"] < 0.80, res  # the point: units-only resampling under-covers


def test_true_slope_of_the_step_is_its_least_squares_projection():
    u = np.linspace(0, 29, 2901)
    f = np.where(u < 10, 0.55, 0.36)
    assert true_slope("step") == pytest.approx(np.polyfit(u, f, 1)[0], rel=1e-3)


def test_hc3_matches_the_sandwich_formula():
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 10, 9), rng.normal(size=9)
    X = np.column_stack([np.ones(9), x])
    XtXi = np.linalg.inv(X.T @ X)
    beta = XtXi @ X.T @ y
    e = y - X @ beta
    h = np.einsum("ij,jk,ik->i", X, XtXi, X)
    cov = XtXi @ X.T @ np.diag(e ** 2 / (1 - h) ** 2) @ X @ XtXi
    b, se = ols_slope_hc3(x, y)
    assert b == pytest.approx(beta[1]) and se == pytest.approx(np.sqrt(cov[1, 1]))


def test_slope_ci_widens_with_between_layer_scatter():
    rng = np.random.default_rng(0)
    clean = {k: [0.5 - 0.01 * k + rng.normal(0, 0.01, 40)] for k in LAYERS}
    bumpy = {k: [v[0] + (0.1 if i % 2 else -0.1)] for i, (k, v) in enumerate(clean.items())}
    a, b = slope_ci(clean), slope_ci(bumpy)
    assert a["ci95"][0] < -0.01 < a["ci95"][1]
    assert (b["ci95"][1] - b["ci95"][0]) > 5 * (a["ci95"][1] - a["ci95"][0])


def test_layer_means_pool_seeds_and_widen_when_seeds_disagree():
    rng = np.random.default_rng(0)
    agree = {0: [rng.normal(0.5, 0.1, 60), rng.normal(0.5, 0.1, 60)]}
    differ = {0: [agree[0][0] - 0.2, agree[0][1] + 0.2]}
    (a,), (d,) = layer_means(agree, n_boot=500), layer_means(differ, n_boot=500)
    assert a["mean"] == pytest.approx((agree[0][0].mean() + agree[0][1].mean()) / 2)
    assert d["n_seeds"] == 2 and d["n_units"] == [60, 60]
    assert a["ci95"][0] < a["mean"] < a["ci95"][1]
    assert (d["ci95"][1] - d["ci95"][0]) > 3 * (a["ci95"][1] - a["ci95"][0])
    one = layer_means({3: rng.normal(0, 1, 50)}, n_boot=2000)[0]  # a bare array is one seed
    assert one["n_seeds"] == 1 and one["se"] == pytest.approx(1 / np.sqrt(50), rel=0.25)


@pytest.mark.parametrize("shape,f", [("constant", lambda x: 0.4 + 0 * x), ("line", lambda x: 0.6 - 0.01 * x),
                                     ("step", lambda x: np.where(x < 10, 0.55, 0.36))])
def test_shape_test_finds_the_planted_shape(shape, f):
    rng = np.random.default_rng(3)
    scores = {k: [f(np.float64(k)) + rng.normal(0, 0.1, 200)] for k in LAYERS}
    res = shape_test(layer_means(scores, n_boot=200))
    assert res["winner"] == shape, res["cv_mse"]
    if shape == "step":
        assert res["fits"]["step"]["break"] == 10.0


def test_depth_trend_is_json_and_says_the_shape():
    rng = np.random.default_rng(0)
    scores = {k: [np.where(k < 10, 0.55, 0.36) + rng.normal(0, 0.1, 100) for _ in range(2)] for k in LAYERS}
    tr = depth_trend(scores, n_boot=200, label="SAE")
    json.dumps(tr)
    assert tr["shape"]["winner"] == "step" and "step predicts" in tr["text"][0]
    assert tr["slope"]["df"] == 6 and len(tr["layers"]) == 8
    rel = depth_trend(scores, depth={k: k / 30 for k in LAYERS}, n_boot=50)
    assert rel["slope"]["slope"] == pytest.approx(tr["slope"]["slope"] * 30)


def test_bad_input_is_one_clear_error():
    with pytest.raises(InterpError, match="not finite"):
        layer_means({0: [np.array([0.1, np.nan])]})
    with pytest.raises(InterpError, match="at least 3 layers"):
        slope_ci({0: [np.ones(3)], 1: [np.ones(3)]})
    with pytest.raises(InterpError, match="no scores"):
        layer_means({0: [np.array([])]})
    assert "no slope" in depth_trend({0: [np.ones(3)], 1: [np.zeros(3)]}, n_boot=10)["text"][0]

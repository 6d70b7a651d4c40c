"""analyses.trend: the slope interval covers on synthetic depth curves with a known truth."""

import numpy as np
import pytest

from analyses.trend import depth_trend, layer_bootstrap, shape_test

DEPTHS = np.arange(0, 32, 4.0)


def synthetic(truth, rng, tau=0.04, seeds=2, units=80, unit_sd=0.25, seed_sd=0.01):
    """Layer means scatter around the truth (tau), seeds around their layer, units around their seed."""
    mu = truth + rng.normal(0, tau, len(truth))
    return {float(d): [m + rng.normal(0, seed_sd) + rng.normal(0, unit_sd, units) for _ in range(seeds)]
            for d, m in zip(DEPTHS, mu)}


def true_slope(truth):
    return np.polyfit(DEPTHS, truth, 1)[0]


@pytest.mark.parametrize("name,truth", [("line", 0.55 - 0.006 * DEPTHS), ("step", np.where(DEPTHS < 10, 0.55, 0.36))])
def test_slope_ci_covers_at_95(name, truth):
    rng, n, hit, hit_within = np.random.default_rng(1), 600, 0, 0
    for _ in range(n):
        s = depth_trend(synthetic(truth, rng), n_boot=200, seed=int(rng.integers(1 << 30)))["slope"]
        hit += s["lo"] <= true_slope(truth) <= s["hi"]
        hit_within += s["within_layer_only_lo"] <= true_slope(truth) <= s["within_layer_only_hi"]
    assert 0.92 <= hit / n <= 0.98, (name, hit / n)
    assert hit_within / n < 0.8, (name, hit_within / n)  # units alone under-cover when layers scatter


def test_shape_test_tells_a_step_from_a_line():
    rng = np.random.default_rng(2)
    step = np.where(DEPTHS < 10, 0.55, 0.36) + rng.normal(0, 0.005, len(DEPTHS))
    line = 0.55 - 0.006 * DEPTHS + rng.normal(0, 0.005, len(DEPTHS))
    flat = 0.45 + rng.normal(0, 0.005, len(DEPTHS))
    assert shape_test(DEPTHS, step)["winner"] == "step"
    assert shape_test(DEPTHS, line)["winner"] == "line"
    assert shape_test(DEPTHS, flat)["winner"] == "constant"


def test_layer_bootstrap_resamples_seeds_then_units():
    a, b = np.zeros(50), np.ones(50)
    draws = layer_bootstrap([a, b], n_boot=4000, rng=np.random.default_rng(0))
    # seed resampling alone gives means 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4
    assert set(np.unique(draws)) == {0.0, 0.5, 1.0}
    assert abs((draws == 0.5).mean() - 0.5) < 0.03


def test_words_and_few_layers():
    rng = np.random.default_rng(3)
    tr = depth_trend(synthetic(np.where(DEPTHS < 10, 0.55, 0.36), rng, tau=0.0), n_boot=200)
    assert tr["shape"]["winner"] == "step"
    assert any("not the slope" in t for t in tr["text"])
    few = depth_trend({0.0: [np.ones(5)], 1.0: [np.zeros(5)], 2.0: [np.ones(5)]}, n_boot=50)
    assert few["slope"] is None and "too few" in few["text"][0]
    assert [r["n_units"] for r in few["layers"]] == [5, 5, 5]

"""analyses.trend: the slope interval covers on synthetic depth curves with a known truth."""

import numpy as np
import pytest

from analyses.report import seed_scores, trends
from analyses.scoring.kinds import KINDS
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


def null_case(rng, units=80, null_units=80, null_sd=0.25):
    """A precise basis (2 seeds) and a noisy null (2 draws) at every depth; the true difference of
    their layer means is known for each draw."""
    truth_b, truth_n = 0.55 - 0.006 * DEPTHS, 0.25 + 0.002 * DEPTHS
    mu_b, mu_n = truth_b + rng.normal(0, 0.04, len(DEPTHS)), truth_n + rng.normal(0, 0.02, len(DEPTHS))
    basis = {float(d): [m + rng.normal(0, 0.02, units) for _ in range(2)] for d, m in zip(DEPTHS, mu_b)}
    null = {float(d): [m + rng.normal(0, null_sd, null_units) for _ in range(2)] for d, m in zip(DEPTHS, mu_n)}
    return basis, null, mu_b - mu_n, true_slope(truth_b - truth_n)


def test_minus_null_resamples_the_null():
    """The layer CIs of basis minus null cover the true layer differences when the null is resampled;
    subtracting the null's mean as a constant (the old way) leaves its error out and under-covers."""
    rng, n = np.random.default_rng(4), 150
    hit = hit_const = slope_hit = total = 0
    for _ in range(n):
        basis, null, diff, slope = null_case(rng)
        s = int(rng.integers(1 << 30))
        tr = depth_trend(basis, n_boot=300, seed=s, null=null)
        const = depth_trend({d: [v - np.mean([u.mean() for u in null[d]]) for v in basis[d]] for d in basis}, n_boot=300, seed=s)
        for lay, lay_c, t in zip(tr["layers"], const["layers"], diff):
            hit += lay["lo"] <= t <= lay["hi"]
            hit_const += lay_c["lo"] <= t <= lay_c["hi"]
            total += 1
        slope_hit += tr["slope"]["lo"] <= slope <= tr["slope"]["hi"]
        assert np.allclose([lay["mean"] for lay in tr["layers"]], [lay["mean"] for lay in const["layers"]])
    assert hit / total >= 0.93, hit / total
    assert hit_const / total < 0.6, hit_const / total
    assert 0.92 <= slope_hit / n <= 0.99, slope_hit / n
    assert tr["minus_null"] and tr["layers"][0]["null_n_units"] == 160 and "null" in tr["method"]


def test_minus_null_depths_must_match():
    with pytest.raises(ValueError, match="depths"):
        depth_trend({0.0: [np.ones(5)], 1.0: [np.ones(5)]}, null={0.0: [np.ones(5)]})


def test_report_trends_subtract_the_resampled_null():
    """analyses.report.trends: the minus-random trend of every kind is depth_trend with the random
    null passed in, so its layer CIs are wider than the basis's own when the null is noisy."""
    rng = np.random.default_rng(7)

    def units(n_seeds, mean, sd):
        return [{"seed": i, **{k: float(v) for k in KINDS}} for i in range(n_seeds) for v in mean + rng.normal(0, sd, 60)]

    rows = [{"layer": int(d), "bases": {"sae": {"units": units(2, 0.6, 0.02)}, "random": {"units": units(2, 0.3, 0.3)}}}
            for d in DEPTHS]
    tr = trends(rows, ["sae", "random"], 200, 0)
    raw, cal = tr["raw"]["sae"]["top_random"]["layers"], tr["minus_random"]["sae"]["top_random"]["layers"]
    assert all(c["hi"] - c["lo"] > 3 * (r["hi"] - r["lo"]) for r, c in zip(raw, cal))
    null = {r["layer"]: seed_scores(r, "random", "top_random") for r in rows}
    direct = depth_trend({r["layer"]: seed_scores(r, "sae", "top_random") for r in rows}, 200, 0, null=null)
    assert direct["layers"] == cal

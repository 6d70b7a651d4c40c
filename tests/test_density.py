"""analyses/density.py: bases compared within firing-density bins."""

import json

import numpy as np
import pytest

from analyses.density import density_matched, log_bins
from interp.errors import InterpError


def test_log_bins_cover_every_positive_density():
    e = log_bins([np.array([0.0, 3e-4, 0.02]), np.array([0.5])])
    assert e[0] == pytest.approx(1e-4) and e[-1] == pytest.approx(1.0) and len(e) == 5
    assert len(log_bins([np.array([0.003, 0.004])], per_decade=2)) >= 2


def test_a_density_mix_difference_vanishes_within_bins():
    """Score depends on density only; basis A is mostly rare, B mostly dense: the raw means differ a lot,
    the within-bin difference is about 0 and its CI covers 0."""
    rng = np.random.default_rng(0)
    def units(n, rare_share):
        d = np.where(rng.random(n) < rare_share, 10 ** rng.uniform(-4, -3, n), 10 ** rng.uniform(-1, 0, n))
        return d, np.where(d < 1e-2, 0.6, 0.2) + rng.normal(0, 0.05, n)
    a, b = units(400, 0.9), units(400, 0.1)
    assert a[1].mean() - b[1].mean() > 0.25
    res = density_matched({"A": a, "B": b}, reference="B", n_boot=500)
    json.dumps(res)
    d = res["differences"]["A"]
    assert abs(d["mean"]) < 0.02 and d["ci95"][0] < 0 < d["ci95"][1] and d["n_bins"] == 2
    rare = res["bins"][0]["bases"]
    assert rare["A"]["n"] > rare["B"]["n"] and rare["A"]["mean"] == pytest.approx(0.6, abs=0.02)


def test_a_real_difference_stays_and_dead_units_are_counted():
    rng = np.random.default_rng(1)
    d = 10 ** rng.uniform(-4, 0, 300)
    res = density_matched({"A": (np.r_[d, 0.0], np.r_[0.5 + rng.normal(0, 0.05, 300), 0.0]),
                           "B": (d, 0.3 + rng.normal(0, 0.05, 300))}, reference="B", n_boot=300)
    assert res["differences"]["A"]["mean"] == pytest.approx(0.2, abs=0.02)
    assert res["differences"]["A"]["ci95"][0] > 0.15 and res["n_zero_density"] == {"A": 1, "B": 0}
    assert sum(b["bases"]["A"]["n"] for b in res["bins"]) == 300


def test_bad_input():
    with pytest.raises(InterpError, match="not among"):
        density_matched({"A": ([0.1], [0.2])}, reference="B")
    with pytest.raises(InterpError, match="finite"):
        density_matched({"A": ([0.1], [np.nan])})
    with pytest.raises(InterpError, match="2 scores"):
        density_matched({"A": ([0.1], [0.2, 0.3])})

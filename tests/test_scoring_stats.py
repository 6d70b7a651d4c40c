"""Statistics for score comparisons: bootstrap CIs cover at their nominal rate; sampling is fair."""

import math

import numpy as np
import pytest
import torch

from analyses.scoring.stats import bootstrap_ci, pearson, sample_live, sample_per_layer
from interp.errors import InterpError


def test_the_95_percent_bootstrap_ci_covers_the_true_mean_at_about_95_percent():
    rng = np.random.default_rng(123)
    true_mean, hits = 0.3, 0
    for rep in range(200):
        scores = rng.normal(true_mean, 0.2, size=60)  # 60 features' scores of one layer
        _, lo, hi = bootstrap_ci(scores, n_boot=1000, seed=rep)
        hits += lo <= true_mean <= hi
    assert 0.90 <= hits / 200 <= 0.98, hits / 200


def test_bootstrap_ci_is_fixed_by_its_seed_and_brackets_the_mean():
    v = np.random.default_rng(0).uniform(-1, 1, size=40)
    a, b = bootstrap_ci(v, seed=5), bootstrap_ci(v, seed=5)
    assert a == b
    mean, lo, hi = a
    assert mean == pytest.approx(v.mean()) and lo < mean < hi
    assert hi - lo == pytest.approx(2 * 1.96 * v.std() / math.sqrt(40), rel=0.2)  # about the normal interval
    assert bootstrap_ci([0.4]) == (0.4, 0.4, 0.4)
    assert all(math.isnan(x) for x in bootstrap_ci([]))
    with pytest.raises(InterpError):
        bootstrap_ci([0.1, float("nan")])


def test_pearson_is_none_when_a_side_is_constant():
    x = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert pearson(x, 2 * x + 1) == pytest.approx(1.0)
    assert pearson(x, -x) == pytest.approx(-1.0)
    assert pearson(x, torch.full((4,), 0.3)) is None
    assert pearson(torch.zeros(4), x) is None


def test_sampling_takes_live_features_only_with_a_fixed_seed():
    count = torch.tensor([0, 5, 3, 0, 1, 9, 2, 0, 4, 7])
    picks, info = sample_live(count, 4, seed=1)
    assert len(picks) == 4 and all(count[picks] > 0)
    assert picks.tolist() == sorted(picks.tolist()) and picks.tolist() == sample_live(count, 4, seed=1)[0].tolist()
    assert info == {"n_total": 10, "n_dead": 3, "n_live": 7, "n_sampled": 4}
    assert sample_live(count, None)[0].tolist() == [1, 2, 4, 5, 6, 8, 9]
    assert sample_live(count, 4, seed=1, min_count=3)[1]["n_live"] == 5


def test_every_layer_gets_the_same_number_of_features():
    g = torch.Generator().manual_seed(0)
    counts = {layer: (torch.rand(50, generator=g) < 0.5 + 0.1 * layer).long() for layer in range(4)}
    fewest = min(int(c.sum()) for c in counts.values())
    picks, infos = sample_per_layer(counts, 40, seed=3)
    assert {len(p) for p in picks.values()} == {fewest}
    for layer, p in picks.items():
        assert all(counts[layer][p] > 0) and infos[layer]["n_sampled"] == fewest
    again, _ = sample_per_layer(counts, 40, seed=3)
    assert all(torch.equal(picks[k], again[k]) for k in picks)
    assert not torch.equal(picks[0], picks[1])  # each layer draws on its own

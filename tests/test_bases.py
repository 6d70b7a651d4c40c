"""Bases and their sign rule, and the four scores with their undefined counts, on synthetic data
with known answers: a planted unit beats random directions; random directions on noise score
about 0 in every score; PCA and ICA are scikit-learn's; a signed unit is scored by its stated rule."""

import numpy as np
import pytest
import synthetic_scoring as ss
import torch

from analyses.bases import (
    fit_ica,
    fit_pca,
    half_unit,
    parse_bases,
    projection_basis,
    random_directions,
    rotation_columns,
    signed_neurons,
)
from analyses.scoring import ScoringConfig, score_many
from analyses.scoring.kinds import KINDS, summarize_values
from interp.errors import InterpError

D = 24


def planted_acts(tokens, seed):
    """D-dim activations: noise, plus unit direction e_0 scaled by 'token 7 is here'."""
    g = torch.Generator().manual_seed(100 + seed)
    x = 0.1 * torch.randn(*tokens.shape, D, generator=g)
    x[..., 0] += 3 * ss.on_token(tokens, 7, seed=seed)
    return x


def score(dicts, acts_rule, cfg, n=300):
    tt, ta, ht, ha = ss.split(acts_rule, n, n)
    return score_many({k: (d, None) for k, d in dicts.items()}, ss.batches(tt, ta), ss.batches(ht, ha), cfg)


CFG = ScoringConfig(n_top_heldout=30, n_random_heldout=60, n_boot=200)


def test_a_planted_monosemantic_unit_scores_far_above_random_directions_in_every_score():
    planted = projection_basis("planted", torch.eye(D)[:, :1], ss.HOOK)  # e_0: half-unit 0 is the planted side
    rand = projection_basis("random", random_directions(D, 20, seed=3), ss.HOOK)
    res = score({"planted": planted, "random": rand}, planted_acts, ScoringConfig(n_top_heldout=30, n_random_heldout=60,
                                                                                  n_boot=200, n_features=None))
    p = res["planted"].by_feature()[0]
    assert min(p.score, p.score_random, p.score_bands) > 0.8 and p.detection_auroc > 0.9
    r = res["random"].summary["kinds"]
    for kind in ("top_random", "random_only", "bands"):
        assert r[kind]["mean_undefined_at_chance"] < 0.5, (kind, r[kind])
    assert r["detection"]["mean_undefined_at_chance"] < 0.8


def test_random_directions_on_iid_noise_score_about_0_in_every_score():
    def noise(tokens, seed):
        return torch.randn(*tokens.shape, D, generator=torch.Generator().manual_seed(7 + seed))

    rand = projection_basis("random", random_directions(D, 20, seed=4), ss.HOOK)
    s = score({"random": rand}, noise, CFG, n=400)["random"].summary["kinds"]
    for kind in KINDS:
        m, chance = s[kind]["mean_undefined_at_chance"], s[kind]["chance"]
        assert abs(m - chance) < 0.08, (kind, s[kind])
        assert s[kind]["n"] == 40  # 20 directions, both sides


def test_pca_and_ica_are_scikit_learns_components():
    from sklearn.decomposition import PCA, FastICA

    rng = np.random.default_rng(0)
    x = (rng.laplace(size=(2000, 8)) @ rng.normal(size=(8, 8))).astype(np.float32)
    mean, comps = fit_pca(x)
    ref = PCA(n_components=8, svd_solver="full").fit(x)
    np.testing.assert_allclose(np.abs(comps), np.abs(ref.components_), atol=1e-4)
    np.testing.assert_allclose(mean, ref.mean_, atol=1e-5)
    basis = projection_basis("pca", torch.from_numpy(comps.T), ss.HOOK, mean=torch.from_numpy(mean))
    z = basis.encode(torch.from_numpy(x)).numpy()
    t = ref.transform(x) * np.sign((comps * ref.components_).sum(1))  # the same components up to sign
    np.testing.assert_allclose(z[:, :8] - z[:, 8:], t, atol=1e-3)  # positive side minus negative side = the value
    mean, comps = fit_ica(x, 4, seed=1)
    ref = FastICA(n_components=4, whiten="unit-variance", random_state=1).fit(x)
    np.testing.assert_allclose(comps, ref.components_, rtol=1e-4, atol=1e-5)


def test_pca_with_fewer_tokens_than_dimensions_is_refused_in_one_line():
    with pytest.raises(InterpError, match="at least 8 tokens"):
        fit_pca(np.zeros((5, 8), dtype=np.float32))


def test_unknown_basis_is_refused_in_one_line():
    assert parse_bases("neurons, sae,random") == ["neurons", "sae", "random"]
    with pytest.raises(InterpError, match="unknown basis 'nerons'"):
        parse_bases("nerons,sae")


def test_rotation_columns_are_orthonormal():
    Q = rotation_columns(16, 10, seed=0)
    torch.testing.assert_close(Q.T @ Q, torch.eye(10), atol=1e-5, rtol=0)


def test_a_unit_that_is_negative_where_its_truth_is_active_is_scored_on_its_negative_side():
    """Neuron 0 is -1 on token 7 and slightly positive noise elsewhere: by the rule its positive
    side (noise) scores about 0 and its negative side, a unit of its own, reads token 7 near 1;
    truth and simulation are both the side's positive part, so neither is penalised by the other sign."""
    def rule(tokens, seed):
        g = torch.Generator().manual_seed(seed)
        x = 0.05 * torch.rand(*tokens.shape, 1, generator=g)
        x[..., 0] -= ss.on_token(tokens, 7, seed=seed)
        return x

    res = score({"n": signed_neurons(ss.neurons(1))}, rule, CFG)["n"].by_feature()
    assert half_unit(1, 1) == (0, "-")
    neg, pos = res[1], res[0]
    assert neg.score > 0.95 and neg.explanation.terms[0].token == 7
    assert neg.score_bands > 0.9
    assert abs(pos.score) < 0.25


def test_undefined_scores_are_counted_and_both_means_given():
    s = summarize_values([0.5, None, 0.7, None], "top_random", n_boot=50)
    assert s["n"] == 4 and s["n_undefined"] == 2
    assert s["mean_undefined_at_chance"] == pytest.approx(0.3) and s["mean_defined"] == pytest.approx(0.6)
    d = summarize_values([1.0, None], "detection", n_boot=50)
    assert d["mean_undefined_at_chance"] == pytest.approx(0.75)  # undefined AUROC counts at chance, 0.5

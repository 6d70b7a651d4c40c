"""analyses/lexical.py: the R^2 of token and bigram lookup tables, with back-off for sparse groups."""

import json
from collections import defaultdict

import numpy as np
import pytest

from analyses.lexical import START, lexical_ceiling, per_unit, summarize_ceiling
from interp.errors import InterpError


def brute_force(a, tokens, prev, min_count):
    """In-sample R^2 of the backed-off group-means predictor, one token at a time."""
    tok_rows, big_rows = defaultdict(list), defaultdict(list)
    for i, (p, t) in enumerate(zip(prev, tokens)):
        tok_rows[t].append(i)
        big_rows[(p, t)].append(i)
    mu = a.mean()
    out = {}
    for name in ("token", "bigram"):
        pred = np.empty(len(a))
        for i, (p, t) in enumerate(zip(prev, tokens)):
            if name == "bigram" and len(big_rows[(p, t)]) >= min_count:
                pred[i] = a[big_rows[(p, t)]].mean()
            elif len(tok_rows[t]) >= min_count:
                pred[i] = a[tok_rows[t]].mean()
            else:
                pred[i] = mu
        out[name] = 1 - ((a - pred) ** 2).sum() / ((a - mu) ** 2).sum()
    return out


def corpus(rng, n=3000, vocab=40):
    tokens = rng.zipf(1.5, n) % vocab  # a few frequent tokens and a long tail, as in text
    starts = np.zeros(n, dtype=bool)
    starts[::100] = True
    prev = np.r_[START, tokens[:-1]]
    prev[starts] = START
    return tokens, starts, prev


def test_matches_a_brute_force_group_means_predictor():
    rng = np.random.default_rng(0)
    tokens, starts, prev = corpus(rng, 600, 60)
    A = rng.normal(size=(600, 3)) + 0.5 * (tokens % 3 == 0)[:, None]
    for m in (1, 2, 5):
        c = lexical_ceiling(A, tokens, starts, min_count=m)
        for j in range(3):
            want = brute_force(A[:, j], tokens, prev, m)
            assert c["token"][j] == pytest.approx(want["token"]) and c["bigram"][j] == pytest.approx(want["bigram"])


def test_a_token_unit_a_bigram_unit_and_a_noise_unit():
    rng = np.random.default_rng(1)
    tokens, starts, prev = corpus(rng)
    tok_unit = (tokens == 3) * 2.0 + (tokens == 7) * 1.0
    big_unit = ((prev == 1) & (tokens == 2)) * 1.0  # fires on 2 only after 1
    noise = rng.exponential(size=len(tokens)) * (rng.random(len(tokens)) < 0.2)
    c = lexical_ceiling(np.stack([tok_unit, big_unit, noise], 1), tokens, starts)
    assert c["token"][0] == pytest.approx(1) and c["bigram"][0] == pytest.approx(1)
    # rare (p, 2) bigrams back off to token 2's mean, which the (1, 2) bigram lifts: close to 1, not 1
    assert 0.95 < c["bigram"][1] < 1 and c["token"][1] < 0.9 and c["n_backed_off_bigram_tokens"] > 0
    assert c["token_loo"][1] < c["bigram_loo"][1]
    # noise: the in-sample table is optimistic, leave-one-out and epsilon-squared are about 0
    assert 0 < c["bigram"][2] < 0.6
    assert c["bigram_loo"][2] < 0.02 and abs(c["bigram_adj"][2]) < 0.05 and abs(c["token_adj"][2]) < 0.05


def test_windows_equal_flat_tokens_with_a_start_per_window():
    rng = np.random.default_rng(2)
    W, ctx, F = 6, 16, 4
    tokens = rng.integers(0, 5, (W, ctx))
    acts = rng.normal(size=(W, ctx, F)) + (tokens == 2)[..., None]
    starts = np.zeros(W * ctx, dtype=bool)
    starts[::ctx] = True
    a = lexical_ceiling(acts.astype(np.float16), tokens)
    b = lexical_ceiling(acts.astype(np.float16).reshape(-1, F), tokens.reshape(-1), starts)
    no_starts = lexical_ceiling(acts.astype(np.float16).reshape(-1, F), tokens.reshape(-1))
    np.testing.assert_allclose(a["bigram"], b["bigram"])
    assert not np.allclose(a["bigram_loo"], no_starts["bigram_loo"])  # the window's start is a bigram of its own


def test_valid_drops_tokens_and_constant_units_are_undefined():
    rng = np.random.default_rng(3)
    tokens, starts, prev = corpus(rng, 500, 20)
    A = np.stack([rng.normal(size=500), np.full(500, 0.3)], 1)
    valid = ~starts
    c = lexical_ceiling(A, tokens, starts, valid=valid)
    want = brute_force(A[valid, 0], tokens[valid], prev[valid], 2)
    assert c["n_tokens"] == int(valid.sum()) and c["bigram"][0] == pytest.approx(want["bigram"])
    assert np.isnan(c["token"][1])
    s = summarize_ceiling(c, n_boot=100)
    json.dumps(s), json.dumps(per_unit(c))
    assert s["bigram"]["n"] == 1 and s["bigram"]["n_undefined"] == 1
    assert s["token"]["ci95"][0] <= s["token"]["mean"] <= s["token"]["ci95"][1]


def test_bad_input():
    with pytest.raises(InterpError, match="one token id per row"):
        lexical_ceiling(np.zeros((5, 2)), np.zeros(4, dtype=int))
    with pytest.raises(InterpError, match="same windows"):
        lexical_ceiling(np.zeros((2, 5, 2)), np.zeros((2, 4), dtype=int))
    with pytest.raises(InterpError, match="min_count"):
        lexical_ceiling(np.zeros((5, 2)), np.zeros(5, dtype=int), min_count=0)


def test_reads_a_heldout_acts_file(tmp_path):
    from safetensors.numpy import save_file

    from analyses.lexical import ceiling_of_file

    rng = np.random.default_rng(4)
    windows = rng.integers(0, 9, (4, 8))
    acts = (rng.normal(size=(4, 8, 3)) + (windows == 1)[..., None]).astype(np.float16)
    save_file({"features": np.array([5, 9, 11]), "acts": acts}, str(tmp_path / "heldout_acts.safetensors"))
    c = ceiling_of_file(tmp_path / "heldout_acts.safetensors", windows)
    np.testing.assert_allclose(c["bigram"], lexical_ceiling(acts, windows)["bigram"])
    assert c["features"].tolist() == [5, 9, 11]

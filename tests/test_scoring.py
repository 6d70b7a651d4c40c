"""Interpretability scores: planted features score near 1, random ones near 0, on synthetic data."""

import json

import synthetic_scoring as ss
import torch

from analyses.dictionary import Dictionary
from analyses.scoring import ScoringConfig, collect_examples, detection_auroc, score_features


def run(rule, n_feat, cfg=ScoringConfig(), features=None, tokenizer=None, out=None, **kw):
    tt, ta, ht, ha = ss.split(rule, **kw)
    ids = torch.arange(n_feat) if features is None else features
    return score_features(ss.neurons(n_feat), ss.batches(tt, ta), ss.batches(ht, ha), ids, cfg, tokenizer=tokenizer, out=out)


def test_a_feature_firing_on_one_token_scores_near_1_and_is_explained_by_it():
    r = run(lambda t, s: ss.on_token(t, 7, seed=s).unsqueeze(-1), 1)
    s = r.scores[0]
    assert s.score >= 0.95, s.score
    assert s.explanation.terms[0].token == 7 and s.explanation.terms[0].prev is None
    assert s.detection_auroc >= 0.99
    assert s.n_firing_contexts > 5 and s.n_silent_contexts > 5  # both classes really present


def test_random_activations_score_near_0():
    cfg = ScoringConfig(n_top_heldout=50, n_random_heldout=100)
    r = run(lambda t, s: ss.random_sparse((*t.shape, 6), seed=10 + s), 6, cfg, n_heldout=400)
    for s in r.scores:
        assert abs(s.score) < 0.1, (s.feature, s.score, s.explanation.text)
        assert s.n_heldout_tokens >= 150 * 32 - 150  # the top and random examples, a few window ends short


def test_a_context_dependent_feature_is_explained_by_its_bigram_and_scores_high():
    r = run(lambda t, s: ss.on_bigram(t, 10, 11).unsqueeze(-1), 1)
    s = r.scores[0]
    first = s.explanation.terms[0]
    assert (first.prev, first.token) == (10, 11), s.explanation.text
    # token 11 without 10 before it must not be predicted to fire
    assert all(x.weight < 0.2 for x in s.explanation.terms if x.token == 11 and x.prev is None)
    assert s.score >= 0.95 and s.detection_auroc >= 0.99


def test_detection_is_near_1_for_a_planted_feature_and_near_half_for_a_random_one():
    def rule(t, s):
        return torch.stack([ss.on_token(t, 7, seed=s), ss.random_sparse(t.shape, 0.02, seed=20 + s)], -1)

    cfg = ScoringConfig(n_top_heldout=50, n_random_heldout=100)
    planted, rand = run(rule, 2, cfg, n_heldout=400).scores
    assert planted.detection_auroc >= 0.99
    assert rand.n_firing_contexts >= 20 and rand.n_silent_contexts >= 20
    assert abs(rand.detection_auroc - 0.5) < 0.12, rand.detection_auroc


def test_detection_auroc_ranks_contexts_by_their_peak():
    acts = torch.tensor([[0.0, 2.0], [0.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    valid = torch.ones(4, 2, dtype=torch.bool)
    good = torch.tensor([[0.0, 0.9], [0.1, 0.0], [0.8, 0.0], [0.0, 0.2]])
    assert detection_auroc(good, acts, valid, 0.5) == (1.0, 2, 2)
    bad = torch.tensor([[0.0, 0.1], [0.9, 0.0], [0.0, 0.0], [0.0, 0.7]])
    assert detection_auroc(bad, acts, valid, 0.5)[0] == 0.0
    assert detection_auroc(good, acts * 0, valid, 0.5) == (None, 0, 4)


def test_dead_features_are_skipped_counted_and_left_out_of_the_mean():
    def rule(t, s):
        return torch.stack([ss.on_token(t, 7, seed=s), torch.zeros(t.shape), ss.on_token(t, 9, seed=s)], -1)

    r = run(rule, 3)
    assert [s.feature for s in r.scores] == [0, 2] and r.dead == [1]
    assert r.summary["n_dead"] == 1 and r.summary["n_live"] == 2 and r.summary["n_scored"] == 2
    assert abs(r.summary["mean_score"] - sum(s.score for s in r.scores) / 2) < 1e-12


def test_sampling_draws_the_asked_number_of_live_features_with_a_fixed_seed():
    def rule(t, s):
        cols = [ss.on_token(t, 1 + f, seed=s) if f % 3 else torch.zeros(t.shape) for f in range(12)]
        return torch.stack(cols, -1)

    a = run(rule, 12, ScoringConfig(n_features=5), n_train=60, n_heldout=60)
    b = run(rule, 12, ScoringConfig(n_features=5), n_train=60, n_heldout=60)
    ids = [s.feature for s in a.scores]
    assert ids == [s.feature for s in b.scores] and len(ids) == 5
    assert all(i % 3 for i in ids)  # never a dead one
    assert a.summary["n_live"] == 8 and a.summary["n_dead"] == 4 and a.summary["n_sampled"] == 5
    assert [s.score for s in a.scores] == [s.score for s in b.scores]


def test_sae_features_and_neurons_with_the_same_activations_score_the_same():
    tt, ta, ht, ha = ss.split(lambda t, s: torch.stack([ss.on_token(t, 7, seed=s), ss.on_bigram(t, 10, 11)], -1))
    perm = torch.tensor([[0.0, 1.0], [1.0, 0.0]])  # an SAE whose feature 0 reads neuron 1 and vice versa
    sae = Dictionary(encode=lambda x: torch.relu(x @ perm), W_dec=perm, hook_name=ss.HOOK)
    by_sae = score_features(sae, ss.batches(tt, ta), ss.batches(ht, ha)).by_feature()
    by_neuron = score_features(ss.neurons(2), ss.batches(tt, ta), ss.batches(ht, ha)).by_feature()
    for f in (0, 1):
        assert by_sae[f].score == by_neuron[1 - f].score
        assert by_sae[f].explanation.text == by_neuron[1 - f].explanation.text


def brute_top(acts: torch.Tensor, L: int, k: int):  # acts [W, ctx] -> (peaks, stretch ids) of the k best firing stretches
    W, ctx = acts.shape
    n_sp = -(-(ctx - 1) // L)
    peaks = []
    for w in range(W):
        for j in range(n_sp):
            seg = acts[w, 1 + j * L : min(1 + (j + 1) * L, ctx)]
            peaks.append((float(seg.max()), w * n_sp + j))
    best = sorted([p for p in peaks if p[0] > 0], key=lambda p: -p[0])[:k]
    return [p[0] for p in best], [p[1] for p in best]


def test_examples_match_brute_force_and_random_ones_depend_only_on_the_text():
    tokens = ss.corpus(23, ctx=30, seed=3)  # 29 tokens after BOS: stretches of 8, 8, 8 and 5
    g = torch.Generator().manual_seed(4)
    acts = torch.rand(23, 30, 5, generator=g) * (torch.rand(23, 30, 5, generator=g) < 0.1)
    ex = collect_examples(ss.neurons(5), ss.batches(tokens, acts, per=4), torch.arange(5), "heldout", 8, 6, 7, seed=0)
    for f in range(5):
        peaks, sids = brute_top(acts[..., f], 8, 6)
        torch.testing.assert_close(ex.top_value[f, : len(peaks)], torch.tensor(peaks))
        assert set(ex.top_sid[f, : len(sids)].tolist()) == set(sids)
    tok, prev, valid = ex.stretch_tokens(torch.tensor([3, 7]))  # window 0's last, short stretch; window 1's last
    assert valid[0].tolist() == [True] * 5 + [False] * 3
    assert tok[0, :5].tolist() == tokens[0, 25:30].tolist() and prev[0, :5].tolist() == tokens[0, 24:29].tolist()
    assert ex.top_acts.shape == (5, 6, 8)
    # the same text batched otherwise, for other features: the same random examples
    other = collect_examples(ss.neurons(5), ss.batches(tokens, acts.flip(-1), per=9), torch.tensor([1, 3]), "heldout", 8, 6, 7, seed=0)
    assert other.rand_sid.tolist() == ex.rand_sid.tolist() and len(set(ex.rand_sid.tolist())) == 7
    fresh = collect_examples(ss.neurons(5), ss.batches(tokens, acts), torch.arange(5), "heldout", 8, 6, 7, seed=1)
    assert fresh.rand_sid.tolist() != ex.rand_sid.tolist()  # another seed, other random examples
    for i, s in enumerate(ex.rand_sid.tolist()):  # their activations are the stretch's
        w, j = divmod(s, 4)
        n = min(8, 29 - 8 * j)
        torch.testing.assert_close(ex.rand_acts[:, i, :n], acts[w, 1 + 8 * j : 1 + 8 * j + n].T)


def test_scores_are_saved_readably_keyed_by_feature(tmp_path):
    run(lambda t, s: ss.on_token(t, 7, seed=s).unsqueeze(-1), 1, tokenizer=ss.Tokenizer(), out=tmp_path)
    expl = json.loads((tmp_path / "explanations.json").read_text())
    rec = expl["0"]
    assert rec["text"].startswith('" w7" (0.9')
    assert rec["score"] >= 0.95 and rec["detection_auroc"] >= 0.99
    assert rec["n_train_top"] == 20 and rec["n_heldout_top"] == 20 and rec["n_heldout_random"] == 20
    assert rec["explanation"]["terms"][0]["token"] == 7
    summary = json.loads((tmp_path / "scores.json").read_text())
    assert summary["summary"]["n_scored"] == 1 and summary["meta"]["n_heldout_tokens"] == 300 * 32
    assert summary["meta"]["config"]["seed"] == 0


def test_auroc_equals_sklearns_with_ties():
    from sklearn.metrics import roc_auc_score

    from analyses.scoring.detection import auroc

    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        scores = torch.randint(0, 6, (200,), generator=g).double().numpy()  # many ties
        labels = (torch.rand(200, generator=g) < 0.3).numpy()
        assert abs(auroc(scores, labels) - roc_auc_score(labels, scores)) < 1e-12


def test_many_dictionaries_in_one_pass_score_as_they_would_alone():
    from analyses.scoring import score_many

    tt, ta, ht, ha = ss.split(lambda t, s: torch.stack([ss.on_token(t, 7, seed=s), ss.on_bigram(t, 10, 11)], -1))
    other = Dictionary(encode=lambda x: torch.relu(x.flip(-1)), W_dec=torch.eye(2), hook_name="blocks.1.mlp.hook_post")

    def both(tokens, acts):  # two hooks per batch, as one forward pass of a model records them
        for t, a in ss.batches(tokens, acts):
            yield t, {ss.HOOK: a[ss.HOOK], "blocks.1.mlp.hook_post": a[ss.HOOK] * 2}

    many = score_many({"n0": (ss.neurons(2), None), "s1": (other, None)}, both(tt, ta), both(ht, ha))
    alone = score_features(ss.neurons(2), ss.batches(tt, ta), ss.batches(ht, ha))
    assert [s.score for s in many["n0"].scores] == [s.score for s in alone.scores]
    assert [s.explanation.text for s in many["s1"].scores] == [s.explanation.text for s in alone.scores][::-1]
    assert many["n0"].meta["heldout_random_examples"] == many["s1"].meta["heldout_random_examples"]

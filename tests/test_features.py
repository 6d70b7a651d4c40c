"""Feature statistics from one streaming pass agree with brute force on small random data."""

import json
import math
import re

import pytest
import torch

from analyses.bands import BandSampler, smallest_per_group
from analyses.dictionary import Dictionary, neuron_dictionary
from analyses.features import FeatureStatsConfig, compute_feature_stats, parse_features
from analyses.logits import decoder_neighbours, effective_unembed, logit_effects
from interp.errors import InterpError


def random_setup(n_windows=24, ctx=16, d_in=8, n_feat=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, 50, (n_windows, ctx), generator=g)
    acts = torch.randn(n_windows, ctx, d_in, generator=g)
    W_enc = torch.randn(d_in, n_feat, generator=g)
    b_enc = torch.randn(n_feat, generator=g) - 1.0  # most features sparse-ish
    W_dec = torch.randn(n_feat, d_in, generator=g)
    dic = Dictionary(encode=lambda x: torch.relu(x @ W_enc + b_enc), W_dec=W_dec, hook_name="blocks.0.hook_resid_post")
    z = torch.relu(acts @ W_enc + b_enc)  # [w, ctx, F]
    return tokens, acts, dic, z


def batches(tokens, acts, per=5):
    for i in range(0, len(tokens), per):
        yield tokens[i : i + per], {"blocks.0.hook_resid_post": acts[i : i + per]}


CFG = FeatureStatsConfig(n_top=6, top_span=8, ctx_before=3, ctx_after=2, n_bands=4, per_band=3, n_bins=16)


def test_density_mean_max_match_brute_force():
    tokens, acts, dic, z = random_setup()
    s = compute_feature_stats(dic, batches(tokens, acts), cfg=CFG)
    body = z[:, 1:]  # position 0 (BOS) is left out
    n = body.shape[0] * body.shape[1]
    assert s.meta["n_tokens"] == n
    torch.testing.assert_close(s["density"], (body > 0).sum((0, 1)).double() / n)
    torch.testing.assert_close(s["max"], body.amax((0, 1)))
    fired = (body > 0).sum((0, 1)).clamp(min=1)
    torch.testing.assert_close(s["mean"], body.sum((0, 1)) / fired, rtol=1e-5, atol=1e-6)


def test_top_examples_match_brute_force_with_contexts():
    tokens, acts, dic, z = random_setup()
    s = compute_feature_stats(dic, batches(tokens, acts), cfg=CFG)
    w, ctx, F = z.shape
    zb = z.clone()
    zb[:, 0] = 0
    for f in range(F):
        # brute force: the peak of each 8-token stretch, the 6 largest of those that fire
        peaks = []
        for wi in range(w):
            for s0 in range(0, ctx, 8):
                seg = zb[wi, s0 : s0 + 8, f]
                p = int(seg.argmax())
                if seg[p] > 0:
                    peaks.append((float(seg[p]), wi * ctx + s0 + p))
        peaks.sort(reverse=True)
        want = peaks[:6]
        got_v = s["top_value"][f]
        n = len(want)
        assert (got_v[n:] == 0).all() and (s["top_index"][f, n:] == -1).all()
        torch.testing.assert_close(got_v[:n], torch.tensor([v for v, _ in want]))
        assert s["top_index"][f, :n].tolist() == [i for _, i in want]
        for j in range(n):  # the context: 6 tokens inside the window, the feature's value on each
            idx, start = int(s["top_index"][f, j]), int(s["top_start"][f, j])
            wi, pos = divmod(idx, ctx)
            assert start == wi * ctx + min(max(pos - 3, 0), ctx - 6)
            assert s["top_tokens"][f, j].tolist() == tokens.view(-1)[start : start + 6].tolist()
            torch.testing.assert_close(s["top_acts"][f, j].float(), zb.reshape(-1, F)[start : start + 6, f], rtol=1e-3, atol=1e-3)


def test_bands_count_every_token_and_sample_inside_their_band():
    tokens, acts, dic, z = random_setup(n_windows=40)
    s = compute_feature_stats(dic, batches(tokens, acts, per=3), cfg=CFG)
    zb = z.clone()
    zb[:, 0] = 0
    flat = zb.reshape(-1, z.shape[-1])
    for f in range(z.shape[-1]):
        v = flat[:, f]
        edges = s["band_edges"][f]
        assert edges[0] == 0 and edges[-1] >= s["max"][f]
        # edges lie within half a bin of the exact fractions of the max (bins are at most 2 max / n_bins wide)
        exact = torch.linspace(0, float(s["max"][f]), 5)
        assert (edges - exact).abs().max() <= s["hist_width"][f] / 2 + 1e-6
        assert s["hist_width"][f] * CFG.n_bins >= s["max"][f] > s["hist_width"][f] * CFG.n_bins / 2
        assert int(s["hist_count"][f].sum()) == int((v > 0).sum()) == int(s["band_count"][f].sum())
        for b in range(4):
            lo, hi = float(edges[b]), float(edges[b + 1])
            inside = ((v > 0) & (v >= lo) & (v < hi)) if b < 3 else ((v > 0) & (v >= lo))
            assert int(s["band_count"][f, b]) == int(inside.sum())
            idx = s["band_index"][f, b]
            got = idx[idx >= 0]
            assert len(got) == min(3, int(inside.sum()))  # a full sample whenever the band has enough tokens
            assert len(set(got.tolist())) == len(got)
            assert inside[got].all()
            torch.testing.assert_close(s["band_value"][f, b, : len(got)], v[got])


def firing(z):  # z [w, ctx, F] -> (row, col, value) of its entries > 0
    flat = z.reshape(-1, z.shape[-1])
    row, col = (flat > 0).nonzero(as_tuple=True)
    return row, col, flat[row, col]


def test_band_samples_are_uniform_through_grid_merges():
    # 400 features see the same 12 tokens in one band and sample 3 with independent keys: each token
    # should be picked with probability 1/4. The max grows batch after batch, so every feature's
    # grid merges bins several times before the end.
    n = 400
    bs = BandSampler(n, 8, 3, before=0, length=1, generator=torch.Generator().manual_seed(0))
    fmax = torch.zeros(n)
    for i in range(12):
        z = torch.zeros(1, 2, n)
        z[0, 1] = 1.0 + 0.01 * i
        fmax = torch.maximum(fmax, z[0, 1])
        bs.update(z, *firing(z), fmax, first_token=2 * i)
    z = torch.zeros(1, 2, n)
    z[0, 1] = 1000.0  # one huge token: everything before merges into the lowest bin
    fmax = torch.full((n,), 1000.0)
    bs.update(z, *firing(z), fmax, first_token=100)
    out = bs.bands(fmax, 2)
    picked = out["band_index"][:, 0]  # [n, 3]
    assert (picked >= 0).all() and out["band_count"][:, 0].eq(12).all()
    counts = torch.bincount(((picked - 1) // 2).flatten(), minlength=12).float()
    expected = n * 3 / 12
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 35.0, (chi2, counts)  # 11 degrees of freedom: p < 0.001 above ~31.3


def test_smallest_per_group_keeps_m_smallest_keys():
    groups = torch.tensor([2, 0, 2, 2, 0, 1, 2])
    keys = torch.tensor([0.5, 0.9, 0.1, 0.7, 0.2, 0.3, 0.05])
    which, slot = smallest_per_group(groups, keys, 2)
    kept = sorted(zip(groups[which].tolist(), slot.tolist(), keys[which].tolist()))
    assert kept == [(0, 0, pytest.approx(0.2)), (0, 1, pytest.approx(0.9)), (1, 0, pytest.approx(0.3)),
                    (2, 0, pytest.approx(0.05)), (2, 1, pytest.approx(0.1))]


def test_feature_subset_equals_the_same_features_of_the_full_pass():
    tokens, acts, dic, _ = random_setup()
    full = compute_feature_stats(dic, batches(tokens, acts), cfg=CFG)
    sub = compute_feature_stats(dic, batches(tokens, acts), features=torch.tensor([3, 7]), cfg=CFG)
    for name in ("density", "max", "top_value", "top_index", "band_count", "hist_count"):
        torch.testing.assert_close(sub[name], full[name][[3, 7]])


def test_parse_features():
    assert parse_features("all", 5).tolist() == [0, 1, 2, 3, 4]
    assert parse_features("1-3,0,3", 5).tolist() == [0, 1, 2, 3]
    with pytest.raises(InterpError):
        parse_features("9", 5)
    with pytest.raises(InterpError):
        parse_features("a-b", 5)


def test_logit_effects_and_neighbours_brute_force():
    g = torch.Generator().manual_seed(3)
    dirs = torch.randn(5, 6, generator=g)
    W_U = torch.randn(6, 30, generator=g)
    out = logit_effects(dirs, W_U, k=4, hist_bins=7, chunk=2)
    full = dirs @ W_U
    assert out["logit_top_ids"].tolist() == full.argsort(1, descending=True)[:, :4].tolist()
    assert out["logit_bottom_ids"].tolist() == full.argsort(1)[:, :4].tolist()
    assert out["logit_hist_count"].sum(1).tolist() == [30] * 5
    W = torch.randn(9, 6, generator=g)
    ids, cos = decoder_neighbours(W, torch.tensor([0, 4]), k=3)
    Wn = torch.nn.functional.normalize(W, dim=1)
    for row, f in enumerate([0, 4]):
        sims = Wn @ Wn[f]
        sims[f] = -2
        assert ids[row].tolist() == sims.argsort(descending=True)[:3].tolist()
        torch.testing.assert_close(cos[row], sims.sort(descending=True).values[:3])


def test_effective_unembed_folds_layernorm_weight_and_centering(tiny_model):
    W = effective_unembed(tiny_model)
    d = torch.randn(tiny_model.cfg.d_model)
    w = tiny_model.ln_final.w.detach()
    want = ((d - d.mean()) * w) @ tiny_model.W_U.detach()
    torch.testing.assert_close(d @ W, want, rtol=1e-4, atol=1e-4)


def test_neurons_are_the_identity_dictionary(tiny_model):
    dic = neuron_dictionary(tiny_model, "blocks.1.mlp.hook_post")
    x = torch.randn(3, tiny_model.cfg.d_mlp)
    assert dic.encode(x) is x
    torch.testing.assert_close(dic.W_dec, tiny_model.W_out[1].detach())
    assert math.isclose(dic.n_features, tiny_model.cfg.d_mlp)


def test_script_json_cannot_close_its_element():
    from analyses.dashboard.html import esc, script_json

    evil = ['</script><script>alert(1)</script>', "<!-- x -->", "a & b", "\u2028"]
    text = script_json(evil)
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == evil  # JSON.parse gives the exact strings back
    assert esc('<b a="1">\'x\' & y</b>') == "&lt;b a=&quot;1&quot;&gt;&#x27;x&#x27; &amp; y&lt;/b&gt;"


def test_dashboard_html_holds_corpus_text_only_escaped(tmp_path):
    import synthetic_dashboard as sd

    from analyses.dashboard import make_dashboard

    model = sd.tiny_model()
    cache = sd.make_cache(model, tmp_path / "acts")
    index, stats = make_dashboard(sd.dictionary(model), cache, tmp_path / "out", model=model, prompts=[sd.EVIL],
                                  explanations={1: {"explanation": "<script>alert(3)</script>", "score": 1}},
                                  cfg=FeatureStatsConfig(n_top=4, n_bands=2, per_band=2, n_bins=8))
    pages = [index, tmp_path / "out" / "prompts.html", *sorted((tmp_path / "out" / "features").iterdir())]
    assert len(pages) == 2 + 16
    for p in pages:
        html = p.read_text()
        # the only <script elements are the page's own: its script files and one JSON block
        assert html.count("<script") == html.count('<script src="') + 1, p
        blocks = re.findall(r'<script type="application/json" id="[a-z-]+">(.*?)</script>', html, flags=re.S)
        assert len(blocks) == 1 and "<" not in blocks[0], p
        rest = html.replace(blocks[0], "")
        for tag in ("<script>alert", "<img", "<b>", "<!-- x"):  # the corpus's markup never appears raw
            assert tag not in rest, (p, tag)
    vocab = (tmp_path / "out" / "assets" / "vocab.js").read_text()
    assert "<" not in vocab and "\\u003c" in vocab  # token "<" is in the vocabulary, escaped
    assert "&lt;script&gt;alert(3)&lt;/script&gt;" in (tmp_path / "out" / "features" / "1.html").read_text()


def test_neuron_dashboard_from_a_recorded_cache(tiny_model, tiny_windows, tmp_path):
    from analyses.dashboard import make_dashboard
    from interp.recording import record

    hook = "blocks.1.mlp.hook_post"
    cache = record(tiny_model, tiny_windows, [hook], tmp_path / "acts", progress=False)
    dic = neuron_dictionary(tiny_model, hook)
    index, stats = make_dashboard(dic, cache, tmp_path / "out", model=tiny_model, cfg=FeatureStatsConfig(n_top=3, n_bins=8))
    assert len(list((tmp_path / "out" / "features").iterdir())) == tiny_model.cfg.d_mlp
    body = torch.cat([acts[hook][:, 1:] for _, acts in cache.iter_windows([hook])])  # GELU neurons fire when positive; BOS left out
    torch.testing.assert_close(stats["density"], (body > 0).double().mean((0, 1)))
    ids, _ = decoder_neighbours(tiny_model.W_out[1].detach(), torch.arange(tiny_model.cfg.d_mlp), k=10)
    assert stats["neighbour_ids"].tolist() == ids.tolist()  # neighbours by W_out rows
    assert "Neuron 5" in (tmp_path / "out" / "features" / "5.html").read_text()


def test_prompt_view_activations_do_not_depend_on_batching():
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    from analyses.prompts import prompt_activations
    from interp.gpt2_tokenizer import gpt2_tokenizer

    tok = gpt2_tokenizer()
    cfg = HookedTransformerConfig(n_layers=2, d_model=32, d_head=8, n_heads=4, d_mlp=64, d_vocab=len(tok), n_ctx=64,
                                  act_fn="gelu_new", normalization_type="LN", model_name="t", seed=0)
    model = HookedTransformer(cfg).eval()
    dic = neuron_dictionary(model, "blocks.1.mlp.hook_post")
    prompts = ["short one", "a much longer prompt, with many more tokens in it than the first"]
    together = prompt_activations(model, dic, prompts, tok, per_token=5)
    alone = [prompt_activations(model, dic, [p], tok, per_token=5)[0] for p in prompts]
    assert together == alone  # padding after a prompt cannot reach it through causal attention
    assert together[0]["tokens"] == tok("short one")["input_ids"]  # BOS is run but not shown
    assert all(len(a) <= 5 and all(v > 0 for _, v in a) for a in together[1]["acts"])

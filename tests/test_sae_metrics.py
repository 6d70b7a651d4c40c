"""Metrics: known values for the pure functions; the CE and KL scores equal a computation
written out by hand on a tiny random HookedTransformer; evaluate_sae equals the pure
functions applied to all tokens at once."""

import math

import pytest
import torch

from sae import SAEConfig, TrainConfig, create_sae, evaluate_sae
from sae import metrics as M

HOOK = "blocks.1.hook_resid_post"


def test_pure_metrics_on_known_numbers():
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    x_hat = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    assert M.mse(x, x_hat) == pytest.approx(0.5)
    # total variance: each row is 0.5 from the mean in each coordinate -> 4 * 0.25 = 1
    assert M.explained_variance(x, x_hat) == pytest.approx(0.0)
    assert M.fvu(x, x_hat) == pytest.approx(1.0)
    assert M.cosine(x, x_hat) == pytest.approx(0.5)
    assert M.l2_ratio(x, x_hat) == pytest.approx(0.5)
    z = torch.tensor([[0.0, 2.0, 0.0, 1.0], [0.0, 3.0, 0.0, 0.0]])
    assert M.l0(z) == pytest.approx(1.5)
    density = M.feature_density(z)
    assert density.tolist() == [0.0, 1.0, 0.0, 0.5]
    assert M.dead_fraction(density) == 0.5 and M.dense_fraction(density, 0.6) == 0.25
    hist = M.density_histogram(density, bins=7, lowest=-7.0)
    assert hist["dead"] == 2 and sum(hist["counts"]) == 2 and hist["counts"][-1] == 2


def sae_for(model, arch="topk"):
    sae = create_sae(SAEConfig(arch, model.cfg.d_model, 96, k=6 if arch == "topk" else None, hook_name=HOOK))
    sae.init_weights(torch.Generator().manual_seed(0), TrainConfig())
    with torch.no_grad():
        sae.b_enc.fill_(0.05)
        sae.b_dec.normal_(0, 0.1, generator=torch.Generator().manual_seed(1))
    return sae.requires_grad_(False)


def by_hand_topk(sae, act):  # the SAE written out: topk of (x - b_dec) W_enc + b_enc, then decode
    pre = (act - sae.b_dec) @ sae.W_enc + sae.b_enc
    v, i = pre.topk(sae.cfg.k, dim=-1)
    return torch.zeros_like(pre).scatter(-1, i, v.relu()) @ sae.W_dec + sae.b_dec


def next_token_ce(logits, tokens):
    logp = logits.log_softmax(-1)[:, :-1]
    return float(-logp.gather(-1, tokens[:, 1:, None]).mean())


def kl_to(clean, other):
    p = clean.log_softmax(-1)
    return float((p.exp() * (p - other.log_softmax(-1))).sum(-1).mean())


@torch.no_grad()
def test_ce_and_kl_scores_equal_the_hand_computation(tiny_model, tiny_windows):
    model, tokens, sae = tiny_model, tiny_windows[:8], sae_for(tiny_model)
    clean = model(tokens)
    spliced = model.run_with_hooks(tokens, fwd_hooks=[(HOOK, lambda a, hook: by_hand_topk(sae, a))])
    zeroed = model.run_with_hooks(tokens, fwd_hooks=[(HOOK, lambda a, hook: a * 0)])
    ce_clean, ce_sae, ce_zero = (next_token_ce(logits, tokens) for logits in (clean, spliced, zeroed))
    expected = (ce_zero - ce_sae) / (ce_zero - ce_clean)
    assert ce_sae != pytest.approx(ce_clean, abs=1e-3)  # the SAE really changes the model
    assert M.ce_loss_score(model, tokens, sae, HOOK) == pytest.approx(expected, rel=1e-5)
    assert M.ce_loss_with_sae(model, tokens, sae) == pytest.approx(ce_sae, rel=1e-5)
    assert M.ce_loss_without_sae(model, tokens) == pytest.approx(ce_clean, rel=1e-5)
    kl_sae, kl_zero = kl_to(clean, spliced), kl_to(clean, zeroed)
    assert M.kl_div_score(model, tokens, sae) == pytest.approx((kl_zero - kl_sae) / kl_zero, rel=1e-5)


@torch.no_grad()
def test_evaluate_sae_equals_the_pure_functions_over_all_tokens(tiny_model, tiny_windows):
    model, sae = tiny_model, sae_for(tiny_model, "relu")
    windows = tiny_windows[:12]
    out = evaluate_sae(sae, model, windows, batch_size=5)  # 5 + 5 + 2 windows
    _, cache = model.run_with_cache(windows, names_filter=HOOK)
    x = cache[HOOK].reshape(-1, sae.cfg.d_in)
    z = sae.encode(x)
    x_hat = sae.decode(z)
    assert out["n_tokens"] == windows.numel()
    for name, fn in [("mse", M.mse), ("explained_variance", M.explained_variance), ("fvu", M.fvu),
                     ("cosine", M.cosine), ("l2_ratio", M.l2_ratio)]:
        assert out[name] == pytest.approx(fn(x, x_hat), rel=1e-6, abs=1e-9), name
    assert out["l0"] == pytest.approx(M.l0(z))
    density = M.feature_density(z)
    assert out["dead_fraction"] == pytest.approx(M.dead_fraction(density))
    assert out["dense_fraction"] == pytest.approx(M.dense_fraction(density))
    whole = M.reconstruction_losses(model, windows, sae)
    for name in ("ce_loss_score", "kl_div_score", "ce_loss_with_sae", "ce_loss_without_sae", "ce_loss_with_ablation"):
        assert out[name] == pytest.approx(whole[name], rel=1e-5), name
    assert all(math.isfinite(out[k]) for k in ("ce_loss_score", "kl_div_score"))


def test_evaluate_can_leave_bos_out_of_reconstruction_and_ablation():
    import torch
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    from sae import SAEConfig, create_sae, evaluate_sae

    torch.manual_seed(0)
    model = HookedTransformer(HookedTransformerConfig(n_layers=2, d_model=16, d_head=4, n_heads=4, d_mlp=32,
                                                      d_vocab=50, n_ctx=16, act_fn="relu", normalization_type="LN")).eval()
    sae = create_sae(SAEConfig("topk", d_in=16, d_sae=64, k=4, hook_name="blocks.0.hook_resid_post"))
    tokens = torch.randint(0, 50, (6, 12))
    full = evaluate_sae(sae, model, tokens, skip_bos=False)
    skip = evaluate_sae(sae, model, tokens, skip_bos=True)
    assert full["n_tokens"] == 72 and skip["n_tokens"] == 66
    # by hand: reconstruction statistics over positions 1.. only
    _, cache = model.run_with_cache(tokens, names_filter=["blocks.0.hook_resid_post"])
    x = cache["blocks.0.hook_resid_post"][:, 1:].reshape(-1, 16)
    x_hat = sae(x)
    ev = 1 - (x - x_hat).pow(2).sum() / (x - x.mean(0)).pow(2).sum()
    assert abs(skip["explained_variance"] - float(ev)) < 1e-4
    # the BOS position stays clean in the ablation, so ablating hurts less than ablating everything
    assert skip["ce_loss_with_ablation"] != full["ce_loss_with_ablation"]


@pytest.mark.parametrize("hook", [HOOK, "blocks.0.hook_resid_pre", "blocks.2.mlp.hook_post", "hook_embed"])
def test_the_shared_prefix_gives_the_metrics_of_three_full_forwards(tiny_model, tiny_windows, hook):
    d_in = tiny_model.cfg.d_mlp if "mlp" in hook else tiny_model.cfg.d_model
    sae = create_sae(SAEConfig("relu", d_in, 48, hook_name=hook))
    sae.init_weights(torch.Generator().manual_seed(0), TrainConfig())
    fast = evaluate_sae(sae, tiny_model, tiny_windows[:6], batch_size=4, shared_prefix=True)
    slow = evaluate_sae(sae, tiny_model, tiny_windows[:6], batch_size=4, shared_prefix=False)
    whole = M.reconstruction_losses(tiny_model, tiny_windows[:6], sae)
    for k, v in slow.items():
        if isinstance(v, float):
            assert fast[k] == pytest.approx(v, rel=1e-5, abs=1e-6), k
    for k in ("ce_loss_with_sae", "ce_loss_with_ablation", "kl_div_with_sae", "kl_div_with_ablation"):
        assert fast[k] == pytest.approx(whole[k], rel=1e-5, abs=1e-6), k

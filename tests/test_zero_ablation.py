"""The zero-ablated pass computed once (sae/zero_ablation.py) equals the ablated full forward of
every window, on a tiny GPT-2-shaped and a tiny Llama-shaped (RMSNorm, rotary, gated MLP, grouped
KV) model, with and without BOS kept clean, at each residual hook; evaluate_sae's shortcut gives
the metrics of three full forwards."""

import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from sae import SAEConfig, TrainConfig, create_sae, evaluate_sae, metrics, zero_ablation
from sae.zero_ablation import ZeroAblated


def llama_shaped() -> HookedTransformer:
    torch.manual_seed(0)
    cfg = HookedTransformerConfig(n_layers=3, d_model=32, d_head=8, n_heads=4, n_key_value_heads=2, d_mlp=64,
                                  d_vocab=101, n_ctx=64, act_fn="silu", normalization_type="RMS",
                                  positional_embedding_type="rotary", gated_mlp=True, final_rms=True, seed=0)
    return HookedTransformer(cfg).eval()


@pytest.fixture(params=["gpt2", "llama"])
def model(request, tiny_model):
    return tiny_model if request.param == "gpt2" else llama_shaped()


HOOKS = ["blocks.0.hook_resid_pre", "blocks.1.hook_resid_mid", "blocks.1.hook_resid_post", "blocks.2.hook_resid_post"]


@pytest.mark.parametrize("first", [0, 1])
@pytest.mark.parametrize("hook", HOOKS)
@torch.no_grad()
def test_the_shared_ablated_pass_equals_each_windows_full_forward(model, hook, first):
    tokens = torch.randint(0, 101, (5, 16), generator=torch.Generator().manual_seed(2))
    tokens[:3, 0], tokens[3:, 0] = 7, 9  # two first tokens: BOS-kept passes are shared within each group
    full = model.run_with_hooks(tokens, fwd_hooks=[(hook, metrics.zero_hook(first))]).log_softmax(-1)
    start = int(hook.split(".")[1])
    _, cache = model.run_with_cache(tokens, names_filter=f"blocks.{start}.hook_resid_pre")
    groups = ZeroAblated(model, hook, first, start).log_probs(tokens, cache[f"blocks.{start}.hook_resid_pre"])
    assert sorted(int(r) for rows, _ in groups for r in rows) == list(range(5))
    assert len(groups) == (1 if first == 0 else 2)
    for rows, lp in groups:
        assert lp.shape[:2] == ((1, 1) if first == 0 else (1, 16))
        torch.testing.assert_close(lp.expand(len(rows), 16, -1), full[rows], rtol=0, atol=1e-5)


def test_the_shortcut_is_only_for_residual_hooks_inside_blocks():
    assert all(zero_ablation.applies(h) for h in HOOKS)
    for h in ("blocks.1.hook_mlp_out", "blocks.1.hook_attn_out", "blocks.1.attn.hook_z", "blocks.1.mlp.hook_post",
              "hook_embed", "ln_final.hook_normalized"):
        assert not zero_ablation.applies(h), h


@pytest.mark.parametrize("skip_bos", [False, True])
@pytest.mark.parametrize("hook", HOOKS)
def test_evaluate_with_the_shortcut_gives_the_metrics_of_three_full_forwards(model, hook, skip_bos):
    sae = create_sae(SAEConfig("topk", model.cfg.d_model, 64, k=4, hook_name=hook))
    sae.init_weights(torch.Generator().manual_seed(0), TrainConfig())
    windows = torch.randint(0, 101, (7, 16), generator=torch.Generator().manual_seed(3))
    windows[:, 0] = 100  # windows begin with BOS
    fast = evaluate_sae(sae, model, windows, batch_size=3, skip_bos=skip_bos)
    slow = evaluate_sae(sae, model, windows, batch_size=3, skip_bos=skip_bos, shared_prefix=False)
    for k, v in slow.items():  # the scores are ratios of these; a random model's CE gap is ~0.003 nats,
        if isinstance(v, float) and not k.endswith("_score"):  # which turns 1e-7 in a loss into 1e-4
            assert fast[k] == pytest.approx(v, rel=1e-5, abs=1e-6), k

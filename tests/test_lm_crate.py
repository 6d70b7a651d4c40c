"""CRATE's block computes the paper's equations (numbers worked out by hand), keeps TL's hook names,
and exposes its sparse code at mlp.hook_post."""

import math
from types import SimpleNamespace

import torch

from interp.lm.build import build_model
from interp.lm.config import LMConfig
from interp.lm.crate import ISTA


def test_ista_step_matches_the_equations_worked_by_hand():
    # D [4, 2], eta = lambda = 0.1; two tokens, x = (2, 1) and x = (0, -1)
    ista = ISTA(SimpleNamespace(d_mlp=4, d_model=2), eta=0.1, lambd=0.1)
    with torch.no_grad():
        ista.D.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, -1.0]]))
    x = torch.tensor([[[2.0, 1.0], [0.0, -1.0]]])  # [batch 1, pos 2, d 2]
    _, cache = _run_with_hooks(ista, x)
    # token 1: x D^T = (2, 1, 3, 1); z0 = relu(0.1 * that - 0.01) = (.19, .09, .29, .09)
    #   z0 D = (.57, .29); x - z0 D = (1.43, .71); (x - z0 D) D^T = (1.43, .71, 2.14, .72)
    #   pre = z0 + 0.1 * that - 0.01 = (.323, .151, .494, .152) = z; out = z D = (.969, .493)
    # token 2: x D^T = (0, -1, -1, 1); z0 = (0, 0, 0, .09); x - z0 D = (-.09, -.91)
    #   (x - z0 D) D^T = (-.09, -.91, -1, .82); pre = (-.019, -.101, -.11, .162); z = (0, 0, 0, .162)
    #   out = .162 * (1, -1)
    torch.testing.assert_close(cache["z0"][0], torch.tensor([[0.19, 0.09, 0.29, 0.09], [0.0, 0.0, 0.0, 0.09]]))
    torch.testing.assert_close(cache["pre"][0], torch.tensor([[0.323, 0.151, 0.494, 0.152], [-0.019, -0.101, -0.11, 0.162]]))
    torch.testing.assert_close(cache["post"][0], torch.tensor([[0.323, 0.151, 0.494, 0.152], [0.0, 0.0, 0.0, 0.162]]))
    torch.testing.assert_close(cache["out"][0], torch.tensor([[0.969, 0.493], [0.162, -0.162]]))


def _run_with_hooks(ista, x):
    cache = {}
    handles = [getattr(ista, f"hook_{n}").register_forward_hook(lambda m, i, o, n=n: cache.__setitem__(n, o.detach()))
               for n in ("z0", "pre", "post")]
    try:
        cache["out"] = ista(x).detach()
    finally:
        for h in handles:
            h.remove()
    return cache["out"], cache


def _layer_norm(x, w, b):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + 1e-5) * w + b


def test_crate_block_is_residual_attention_then_ista_replacing_the_stream():
    torch.manual_seed(0)
    cfg = LMConfig(arch="crate", n_layers=1, d_model=8, n_heads=2, n_ctx=5, d_vocab=11, seed=3)
    model = build_model(cfg)
    block = model.blocks[0]
    with torch.no_grad():  # non-trivial norms and biases, so that a misplaced one shows
        for p in (block.ln1.w, block.ln1.b, block.ln2.w, block.ln2.b, block.attn.b_O):
            p.add_(torch.randn(p.shape) * 0.3)
    x = torch.randn(1, 5, 8)  # the residual stream entering the block
    got, cache = model.run_with_cache(x, start_at_layer=0, stop_at_layer=1, names_filter=lambda n: True)

    U, W_O, b_O, D = block.attn.W_QKV.detach(), block.attn.W_O.detach(), block.attn.b_O.detach(), block.mlp.D.detach()
    h = _layer_norm(x[0], block.ln1.w.detach(), block.ln1.b.detach())  # [pos, d]
    attn = torch.zeros(5, 8)
    for head in range(2):
        u = h @ U[head]  # [pos, d_head]: query = key = value
        for q in range(5):
            scores = torch.tensor([float(u[q] @ u[k]) / math.sqrt(4) for k in range(q + 1)])  # causal: keys 0..q
            weights = torch.softmax(scores, dim=0)
            z = sum(weights[k] * u[k] for k in range(q + 1))
            attn[q] += z @ W_O[head]
    attn += b_O
    mid = x[0] + attn
    y = _layer_norm(mid, block.ln2.w.detach(), block.ln2.b.detach())
    z0 = torch.relu(0.1 * y @ D.T - 0.01)
    z = torch.relu(z0 + 0.1 * (y - z0 @ D) @ D.T - 0.01)
    expected = z @ D  # no residual around ISTA

    torch.testing.assert_close(cache["blocks.0.hook_attn_out"][0], attn, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(cache["blocks.0.hook_resid_mid"][0], mid, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(cache["blocks.0.mlp.hook_post"][0], z, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(cache["blocks.0.hook_mlp_out"][0], expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got[0], expected, rtol=1e-5, atol=1e-5)
    assert (z == 0).float().mean() > 0.2  # the code is sparse: ReLU with a threshold


def test_patching_the_sparse_code_changes_the_block_output():
    model = build_model(LMConfig(arch="crate", n_layers=2, d_model=16, n_heads=2, n_ctx=8, d_vocab=20))
    tokens = torch.randint(0, 20, (2, 8))
    clean = model(tokens)
    zeroed = model.run_with_hooks(tokens, fwd_hooks=[("blocks.1.mlp.hook_post", lambda z, hook: torch.zeros_like(z))])
    # with z = 0 the last block writes 0 into the stream: logits depend only on ln_final's bias
    expected = model.unembed(model.ln_final(torch.zeros(2, 8, 16)))
    torch.testing.assert_close(zeroed, expected)
    assert not torch.allclose(clean, zeroed)


def test_generation_cache_gives_the_logits_of_a_full_forward(tmp_path, monkeypatch):
    from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache

    from interp.gpt2_tokenizer import gpt2_tokenizer

    monkeypatch.setenv("INTERP_HOME", str(tmp_path))
    gpt2_tokenizer.cache_clear()
    tok = gpt2_tokenizer()  # TL's cached forward needs a tokenizer (for its padding mask)
    gpt2_tokenizer.cache_clear()
    model = build_model(LMConfig(arch="crate", n_layers=2, d_model=16, n_heads=2, n_ctx=12, d_vocab=len(tok), seed=1), tok)
    tokens = torch.randint(0, len(tok), (2, 9))
    cache = TransformerLensKeyValueCache.init_cache(model.cfg, model.cfg.device, 2)
    model(tokens[:, :6], past_kv_cache=cache)
    step_by_step = [model(tokens[:, i : i + 1], past_kv_cache=cache)[:, -1] for i in range(6, 9)]
    full = model(tokens)
    torch.testing.assert_close(torch.stack(step_by_step, 1), full[:, 6:9], rtol=1e-5, atol=1e-5)

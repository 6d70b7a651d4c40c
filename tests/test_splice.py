"""sae.spliced: the SAE's reconstruction at its hook, its parts as hook points (SAELens's names)."""

import pytest
import torch

from sae import SAEConfig, SAEError, TrainConfig, create_sae, spliced

H1, H2 = "blocks.1.hook_resid_post", "blocks.2.hook_resid_pre"


def _sae(d_in, hook, seed=0, d_sae=64):
    sae = create_sae(SAEConfig("relu", d_in, d_sae, hook_name=hook))
    sae.init_weights(torch.Generator().manual_seed(seed), TrainConfig())
    with torch.no_grad():
        sae.b_dec.normal_(generator=torch.Generator().manual_seed(seed + 1))
    return sae


@pytest.fixture
def toks(tiny_windows):
    return tiny_windows[:3]


def _hand(sae):
    return lambda act, hook: sae(act)


@torch.no_grad()
def test_with_error_term_and_no_edit_equals_clean(tiny_model, toks):
    sae = _sae(32, H1)
    clean = tiny_model(toks)
    with spliced(tiny_model, {H1: sae}, error_term=True):
        out = tiny_model(toks)
    assert (out - clean).abs().max() < 1e-5
    pure = tiny_model.run_with_hooks(toks, fwd_hooks=[(H1, _hand(sae))])
    assert (pure - clean).abs().max() > 1e-2  # the splice without the error term does change the model


@torch.no_grad()
def test_without_error_term_equals_a_hand_written_splice_and_parts_are_hooks(tiny_model, toks):
    sae = _sae(32, H1)
    hand = tiny_model.run_with_hooks(toks, fwd_hooks=[(H1, _hand(sae))])
    clean, clean_cache = tiny_model.run_with_cache(toks)
    with spliced(tiny_model, {H1: sae}, error_term=False):
        out, cache = tiny_model.run_with_cache(toks)
    assert torch.allclose(out, hand, atol=1e-5)
    x = clean_cache[H1]
    z = sae.encode(x)
    assert torch.allclose(cache[f"{H1}.hook_sae_input"], x, atol=1e-6)
    assert torch.allclose(cache[f"{H1}.hook_sae_acts_post"], z, atol=1e-6)
    assert torch.allclose(cache[f"{H1}.hook_sae_recons"], sae.decode(z), atol=1e-5)
    assert torch.allclose(cache[f"{H1}.hook_sae_output"], sae.decode(z), atol=1e-5)
    assert torch.allclose(cache[H1], sae.decode(z), atol=1e-5)  # the hook itself shows the spliced output
    assert f"{H1}.hook_sae_error" not in cache  # no error term, so that part is not run
    assert (z > 0).any()
    # gone afterwards
    assert not any("hook_sae" in k for k in tiny_model.hook_dict)
    assert torch.equal(tiny_model(toks), clean)


@torch.no_grad()
def test_several_hooks_at_once_and_an_edit_through_the_error_term(tiny_model, toks):
    a, b = _sae(32, H1, 0), _sae(32, H2, 5)
    hand = tiny_model.run_with_hooks(toks, fwd_hooks=[(H1, _hand(a)), (H2, _hand(b))])
    with spliced(tiny_model, {H1: a, H2: b}, error_term=False):
        out, cache = tiny_model.run_with_cache(toks)
    assert torch.allclose(out, hand, atol=1e-5)
    assert f"{H1}.hook_sae_acts_post" in cache and f"{H2}.hook_sae_acts_post" in cache

    # zero latent 3 with the error term: the stream moves by exactly -z_3 W_dec[3]
    def edit(z, hook):
        z[..., 3] = 0
        return z

    def expected(x, hook):
        z = a.encode(x)
        return x - z[..., 3:4] * a.W_dec[3] / a.cfg.activation_scale

    want = tiny_model.run_with_hooks(toks, fwd_hooks=[(H1, expected)])
    with spliced(tiny_model, {H1: a}, error_term=True):
        got, cache = tiny_model.run_with_cache(toks, names_filter=lambda n: n.startswith(H1))
        got = tiny_model.run_with_hooks(toks, fwd_hooks=[(f"{H1}.hook_sae_acts_post", edit)])
    assert torch.allclose(got, want, atol=1e-5)
    assert torch.allclose(cache[f"{H1}.hook_sae_error"], cache[f"{H1}.hook_sae_input"] - cache[f"{H1}.hook_sae_recons"], atol=1e-5)


@torch.no_grad()
def test_attention_head_hooks_are_read_flattened(tiny_model, toks):
    hook = "blocks.0.attn.hook_z"
    sae = _sae(32, hook)
    hand = tiny_model.run_with_hooks(toks, fwd_hooks=[(hook, lambda act, hook: sae(act.flatten(-2)).reshape(act.shape))])
    with spliced(tiny_model, {hook: sae}, error_term=False):
        out = tiny_model(toks)
    assert torch.allclose(out, hand, atol=1e-5)


def test_bad_splices_are_one_clear_error(tiny_model):
    with pytest.raises(SAEError, match="no hook"), spliced(tiny_model, {"blocks.9.hook_resid_post": _sae(32, "x")}):
        pass
    with pytest.raises(SAEError, match="d_in=16"), spliced(tiny_model, {H1: _sae(16, H1)}):
        pass
    with pytest.raises(SAEError, match="already spliced"), spliced(tiny_model, {H1: _sae(32, H1)}), \
            spliced(tiny_model, {H1: _sae(32, H1)}):
        pass
    assert not any("hook_sae" in k for k in tiny_model.hook_dict)

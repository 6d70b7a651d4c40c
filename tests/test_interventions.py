"""Ablate, Clamp and Add on each kind of unit equal hand-written hook edits, at each kind of position."""

import math

import pytest
import torch

from sae import (
    Ablate,
    Add,
    Clamp,
    Direction,
    Latent,
    Neuron,
    SAEConfig,
    SAEError,
    TrainConfig,
    apply,
    create_sae,
    spliced,
)

HOOK = "blocks.1.hook_resid_post"
POSITIONS = ["all", "firing", [1, 3, 7]]


def _sae():
    sae = create_sae(SAEConfig("relu", 32, 64, hook_name=HOOK))
    sae.init_weights(torch.Generator().manual_seed(0), TrainConfig())
    return sae


def _new(kind, v):
    return {"zero": torch.zeros_like(v), "mean": torch.full_like(v, 0.25), "clamp": torch.full_like(v, 3.0),
            "add": v + 1.5}[kind]


def _mask(positions, v):
    if positions == "all":
        return torch.ones_like(v, dtype=torch.bool)
    if positions == "firing":
        return v > 0
    m = torch.zeros_like(v, dtype=torch.bool)
    m[:, positions] = True
    return m


def _iv(kind, unit, positions):
    return {"zero": lambda: Ablate(unit, positions=positions), "mean": lambda: Ablate(unit, "mean", mean=0.25, positions=positions),
            "clamp": lambda: Clamp(unit, 3.0, positions=positions), "add": lambda: Add(unit, 1.5, positions=positions)}[kind]()


@pytest.mark.parametrize("positions", POSITIONS, ids=str)
@pytest.mark.parametrize("kind", ["zero", "mean", "clamp", "add"])
@torch.no_grad()
def test_neuron_edits_equal_hand_hooks(tiny_model, tiny_windows, kind, positions):
    toks = tiny_windows[:2]

    def hand(act, hook):
        a = act.clone()
        v = a[..., 5]
        a[..., 5] = torch.where(_mask(positions, v), _new(kind, v), v)
        return a

    want = tiny_model.run_with_hooks(toks, fwd_hooks=[("blocks.1.mlp.hook_post", hand)])
    with apply(tiny_model, [_iv(kind, Neuron(1, 5), positions)]):
        got = tiny_model(toks)
    assert torch.allclose(got, want, atol=1e-6)
    assert (got - tiny_model(toks)).abs().max() > 1e-4


@pytest.mark.parametrize("positions", POSITIONS, ids=str)
@pytest.mark.parametrize("kind", ["zero", "mean", "clamp", "add"])
@torch.no_grad()
def test_direction_edits_equal_hand_hooks(tiny_model, tiny_windows, kind, positions):
    toks = tiny_windows[:2]
    v = torch.randn(32, generator=torch.Generator().manual_seed(3))
    u = v / v.norm()

    def hand(act, hook):
        p = act @ u
        new = torch.where(_mask(positions, p), _new(kind, p), p)
        return act + (new - p)[..., None] * u

    want = tiny_model.run_with_hooks(toks, fwd_hooks=[(HOOK, hand)])
    with apply(tiny_model, [_iv(kind, Direction(HOOK, v * 7), positions)]):
        got = tiny_model(toks)
    assert torch.allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("positions", POSITIONS, ids=str)
@pytest.mark.parametrize("kind", ["zero", "clamp", "add"])
@torch.no_grad()
def test_latent_edits_equal_a_hand_splice_with_the_error_term(tiny_model, tiny_windows, kind, positions):
    toks, sae = tiny_windows[:2], _sae()

    def hand(x, hook):
        z = sae.encode(x)
        z2 = z.clone()
        z2[..., 9] = torch.where(_mask(positions, z[..., 9]), _new(kind, z[..., 9]), z[..., 9])
        return x + sae.decode(z2) - sae.decode(z)

    want = tiny_model.run_with_hooks(toks, fwd_hooks=[(HOOK, hand)])
    with apply(tiny_model, [_iv(kind, Latent(HOOK, 9, sae=sae), positions)]):
        got = tiny_model(toks)
    assert torch.allclose(got, want, atol=1e-5)
    with spliced(tiny_model, {HOOK: sae}), apply(tiny_model, [_iv(kind, Latent(HOOK, 9), positions)]):
        assert torch.allclose(tiny_model(toks), want, atol=1e-5)  # the SAE found at its splice
    assert not any("hook_sae" in k for k in tiny_model.hook_dict)


@torch.no_grad()
def test_crate_z0_edit_is_re_solved_by_the_second_ista_step():
    from interp.lm.build import build_model
    from interp.lm.config import LMConfig
    model = build_model(LMConfig(arch="crate", n_layers=2, d_model=16, n_heads=2, n_ctx=8, d_vocab=20))
    toks = torch.arange(8)[None] % 20
    with apply(model, [Clamp(Neuron(0, 3, site="hook_z0"), 2.0)]):
        _, cache = model.run_with_cache(toks)
    assert torch.allclose(cache["blocks.0.mlp.hook_z0"][..., 3], torch.tensor(2.0))
    ista = model.blocks[0].mlp
    x = cache["blocks.0.ln2.hook_normalized"]
    z0 = cache["blocks.0.mlp.hook_z0"]
    pre = z0 + ista.eta * ((x - z0 @ ista.D) @ ista.D.T) - ista.eta * ista.lambd
    assert torch.allclose(cache["blocks.0.mlp.hook_post"], pre.relu(), atol=1e-5)


def test_bad_units_and_strengths_are_one_clear_error(tiny_model):
    sae = _sae()
    cases = [
        (lambda: Clamp(Latent(HOOK, 64, sae=sae), 1.0), "not a valid latent"),
        (lambda: Clamp(Neuron(3, 0), 1.0), "layer 3 is not in the model"),
        (lambda: Clamp(Neuron(0, 64), 1.0), "not a valid neuron"),
        (lambda: Clamp(Neuron(0, 1, site="hook_z0"), 1.0), "only in CRATE"),
        (lambda: Clamp(Latent(HOOK, 1), 1.0), "needs its SAE"),
        (lambda: Clamp(Direction(HOOK, torch.ones(16)), 1.0), "16 entries"),
        (lambda: Add(Direction("blocks.7.hook_resid_post", torch.ones(32)), 1.0), "no hook"),
        (lambda: Add(Neuron(0, 1), math.nan), "finite"),
        (lambda: Clamp(Neuron(0, 1), math.inf), "finite"),
        (lambda: Ablate(Neuron(0, 1), "median"), "zero' or 'mean"),
        (lambda: Add(Neuron(0, 1), 1.0, positions=[-1]), "positions"),
        (lambda: Add(Direction(HOOK, torch.zeros(32)), 1.0), "non-zero"),
        (lambda: Clamp(Latent("blocks.1.hook_mlp_out", 1, sae=create_sae(SAEConfig("relu", 16, 8))), 1.0), "d_in=16"),
    ]
    for make, msg in cases:
        with pytest.raises(SAEError, match=msg), apply(tiny_model, [make()]):
            pass
    assert not tiny_model.hook_dict[HOOK]._forward_hooks


@torch.no_grad()
def test_a_bool_mask_of_positions_edits_exactly_there(tiny_model, tiny_windows):
    toks = tiny_windows[:2]
    mask = torch.rand(2, toks.shape[1], generator=torch.Generator().manual_seed(3)) > 0.5

    def hand(act, hook):
        a = act.clone()
        a[..., 5] = torch.where(mask, torch.full_like(a[..., 5], 3.0), a[..., 5])
        return a

    want = tiny_model.run_with_hooks(toks, fwd_hooks=[("blocks.1.mlp.hook_post", hand)])
    with apply(tiny_model, [Clamp(Neuron(1, 5), 3.0, positions=mask)]):
        got = tiny_model(toks)
    assert torch.allclose(got, want, atol=1e-6)
    with pytest.raises(SAEError, match="bool tensor"):
        Clamp(Neuron(1, 5), 3.0, positions=mask.float())
    with pytest.raises(SAEError, match="positions mask has shape"), apply(tiny_model, [Clamp(Neuron(1, 5), 3.0, positions=mask[:1])]):
        tiny_model(toks)

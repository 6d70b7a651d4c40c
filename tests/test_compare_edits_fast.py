"""compare-edits' fast path (the prefix before the layer run once, a unit's edits stacked along the
batch) gives the straightforward path's per-unit numbers; apply_stacked equals apply per block."""

import torch

from interp.pipelines import compare_edits as CE
from sae import Ablate, Add, Clamp, Neuron, apply, apply_stacked

g = torch.Generator().manual_seed(3)
TRAIN = torch.randint(0, 101, (16, 16), generator=g)
EVAL = torch.randint(0, 101, (6, 16), generator=g)


def _units(model, out, fast, batch_size):
    cfg = CE.EditConfig(units=("neurons", "random"), units_per_layer=4, stat_windows=16, batch_size=batch_size,
                        n_boot=50, clamp_ladder=(0.0, 2.0), add_ladder=(1.0, 4.0), fast=fast)
    res = CE.compare_edits(model, [1], TRAIN, EVAL, out, cfg, log=lambda s: None)
    return res["rows"][0]["kinds"]


def test_the_fast_path_gives_the_straightforward_numbers(tiny_model, tmp_path):
    slow = _units(tiny_model, tmp_path / "slow", False, 4)
    for batch_size in (4, 16):  # windows split across forwards, and edits stacked several to a forward
        fast = _units(tiny_model, tmp_path / f"fast{batch_size}", True, batch_size)
        for kind in ("neurons", "random"):
            a, b = slow[kind]["units"], fast[kind]["units"]
            assert [u["unit"] for u in a] == [u["unit"] for u in b] and len(a) == 4
            for ua, ub in zip(a, b):
                assert abs(ua["necessity"] - ub["necessity"]) < 1e-5
                for ladder in ("clamp", "add"):
                    for pa, pb in zip(ua["ladders"][ladder], ub["ladders"][ladder]):
                        for key in ("sufficiency", "collateral_kl", "full_kl", "ce_change"):
                            assert abs(pa[key] - pb[key]) < 1e-5, (kind, ladder, key)


@torch.no_grad()
def test_apply_stacked_equals_apply_block_by_block(tiny_model):
    toks = EVAL[:2]
    mask = torch.rand(toks.shape, generator=g) < 0.5
    groups = [[Clamp(Neuron(1, 2), 3.0, positions=mask)], [Add(Neuron(1, 5), -2.0)], [Ablate(Neuron(0, 1), positions=mask)]]
    with apply_stacked(tiny_model, groups):
        stacked = tiny_model(toks.repeat(len(groups), 1)).chunk(len(groups))
    for grp, got in zip(groups, stacked):
        with apply(tiny_model, grp):
            want = tiny_model(toks)
        assert torch.allclose(got, want, atol=1e-5)

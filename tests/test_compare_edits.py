"""compare-edits on a tiny model: a planted unit (one neuron wired to one token's logit) is found
sufficient and cheap, random directions are not; the zero edit is exact with the error term and not
without it; reruns skip finished layers; bad requests are one line."""

import copy
import json
import math

import numpy as np
import pytest
import torch

from analyses import edits as E
from interp.cli import main
from interp.errors import InterpError
from interp.pipelines import compare_edits as CE
from sae import SAEConfig, TrainConfig, create_sae, save_sae

LAYER, NEURON, TOKEN = 2, 3, 7
g = torch.Generator().manual_seed(5)
TRAIN = torch.randint(0, 101, (24, 16), generator=g)
EVAL = torch.randint(0, 101, (8, 16), generator=g)


@pytest.fixture(scope="module")
def planted(tiny_model):
    """The tiny model with neuron 3 of the last layer writing a direction u that only token 7's
    unembedding reads: every other column of W_U is made orthogonal to u."""
    m = copy.deepcopy(tiny_model)
    with torch.no_grad():
        u = torch.randn(m.cfg.d_model, generator=torch.Generator().manual_seed(0))
        u = u - u.mean()  # the final LayerNorm centres its input: keep u in what survives
        u = u / u.norm()
        W_U = m.W_U.data
        W_U -= u[:, None] * (u @ W_U)[None, :]
        W_U[:, TOKEN] = 3.0 * u
        m.blocks[LAYER].mlp.W_out.data[NEURON] = 2.0 * u
    return m


def _run(model, out, units=("neurons", "random"), **kw):
    cfg = CE.EditConfig(units=units, units_per_layer=kw.pop("n", 12), stat_windows=24, batch_size=8, n_boot=200,
                        always=kw.pop("always", ()))
    return CE.compare_edits(model, [LAYER], TRAIN, EVAL, out, cfg, log=kw.pop("log", lambda s: None), **kw)


def test_a_planted_unit_is_sufficient_and_cheap_and_random_directions_are_not(planted, tmp_path):
    res = _run(planted, tmp_path / "e", always=(NEURON,))
    kinds = res["rows"][0]["kinds"]
    wired = next(u for u in kinds["neurons"]["units"] if u["unit"] == NEURON)
    assert wired["promoted"][0] == TOKEN
    rand = kinds["random"]["units"]
    assert len(rand) >= 10
    top = wired["ladders"]["add"][-1]
    assert top["sufficiency"] > 1.5  # its token's log-probability rises by nats where it did not fire
    assert top["collateral_kl"] < 0.1 * top["full_kl"]  # and almost nothing else moves
    def within(u, budget):  # the best effect of the unit's add ladder within a collateral budget
        pts = u["ladders"]["add"]
        return E.effect_at_kl([p["collateral_kl"] for p in pts], [p["sufficiency"] for p in pts], budget)

    assert within(wired, 0.01) > 2.0
    assert within(wired, 0.01) > 3 * max(within(u, 0.01) for u in rand)
    mean_random_auc = sum(u["curves"]["add"]["auc"] for u in rand) / len(rand)
    assert wired["curves"]["add"]["auc"] > 2 * mean_random_auc
    # the other neurons of the tiny model do not act on one token either
    others = [u["curves"]["add"]["auc"] for u in kinds["neurons"]["units"] if u["unit"] != NEURON]
    assert wired["curves"]["add"]["auc"] > 2 * max(others)
    assert (tmp_path / "e" / "report.html").read_text().count("<script>") >= 1
    assert "| 2 | neurons |" in (tmp_path / "e" / "report.md").read_text()


def test_zero_edit_is_exact_with_the_error_term_and_costs_without_it(tiny_model, tmp_path):
    hook = CE.site_hook("sae", LAYER)
    sae = create_sae(SAEConfig("relu", tiny_model.cfg.d_mlp, 128, hook_name=hook))
    sae.init_weights(torch.Generator().manual_seed(0), TrainConfig())
    save_sae(sae, tmp_path / "saes" / hook)
    res = _run(tiny_model, tmp_path / "e", units=("sae", "sae-noerror", "neurons"), sae_dir=tmp_path / "saes", n=8)
    kinds = res["rows"][0]["kinds"]
    assert kinds["sae"]["zero_edit"]["exact"] and kinds["neurons"]["zero_edit"]["max_abs_logprob_diff"] == 0
    assert not kinds["sae-noerror"]["zero_edit"]["exact"]
    assert kinds["sae-noerror"]["zero_edit"]["mean_kl"] > 1e-4
    assert kinds["sae"]["n_units"] >= 4 and all(0 < u["density"] < 1 for u in kinds["sae"]["units"])
    d = sorted(u["density"] for u in kinds["sae"]["units"])
    assert d[-1] > 2 * d[0]  # drawn across densities, not from one end


def test_a_rerun_skips_finished_layers(tiny_model, tmp_path, monkeypatch):
    _run(tiny_model, tmp_path / "e", n=4)
    said = []
    monkeypatch.setattr(CE, "edit_layer", lambda *a, **k: pytest.fail("a finished layer was edited again"))
    res = _run(tiny_model, tmp_path / "e", n=4, log=said.append)
    assert any("finished in an earlier run" in s for s in said)
    assert res["rows"][0]["kinds"]["neurons"]["n_units"] == 4
    with pytest.raises(InterpError, match="other settings"):
        _run(tiny_model, tmp_path / "e", n=5)


def test_bad_requests_are_one_line_and_write_nothing(tiny_model, tmp_path, capsys):
    with pytest.raises(InterpError, match="layer 9 does not exist"):
        CE.compare_edits(tiny_model, [9], TRAIN, EVAL, tmp_path / "a", CE.EditConfig(units=("neurons",)))
    with pytest.raises(InterpError, match="z0 needs a CRATE model"):
        CE.compare_edits(tiny_model, [0], TRAIN, EVAL, tmp_path / "a", CE.EditConfig(units=("z0",)))
    assert not (tmp_path / "a").exists()
    assert main(["compare-edits", "--units", "neurons,bogus", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown unit kind 'bogus'" in err[0]
    assert not (tmp_path / "b").exists()


def test_effect_within_a_kl_budget_reads_the_curve():
    kl, eff = [0.0, 0.1, 0.3], [0.0, 1.0, 2.0]
    assert E.effect_at_kl(kl, eff, 0.05) == pytest.approx(0.5)
    assert E.effect_at_kl(kl, eff, 0.2) == pytest.approx(1.5)
    assert E.effect_at_kl(kl, eff, 1.0) == pytest.approx(2.0)
    assert E.effect_at_kl([0.1, 0.2], [1.0, 2.0], 0.05) == 0.0  # even the zero edit costs more
    assert E.auc(kl, eff, kl_max=0.2, n=3) == pytest.approx((0 + 1.0 + 1.5) / 3)


def test_off_target_kl_equals_the_renormalised_kl():
    torch.manual_seed(0)
    c = torch.randn(3, 7, 50).log_softmax(-1)
    e = (c + torch.randn(3, 7, 50)).log_softmax(-1)
    p = torch.tensor([3, 9, 11])
    keep = torch.ones(50, dtype=torch.bool)
    keep[p] = False
    cr, er = c[..., keep].log_softmax(-1), e[..., keep].log_softmax(-1)
    assert torch.allclose(E.off_target_kl(c, e, p), (cr.exp() * (cr - er)).sum(-1), atol=1e-5)
    point = E.edit_point(c, e, torch.zeros(3, 7, dtype=torch.long), torch.ones(3, 7, dtype=torch.bool), p)
    assert point["collateral_kl"] == pytest.approx(float((cr.exp() * (cr - er)).sum(-1).mean()), abs=1e-5)


def test_spearman_and_the_density_draw():
    assert E.spearman([1, 2, 3, 4], [10, 20, 30, 45])["rho"] == pytest.approx(1.0)
    assert E.spearman([1, 2, 3, 4], [4, 3, 2, 1])["rho"] == pytest.approx(-1.0)
    assert E.spearman([1, 2], [1, 2])["rho"] is None
    dens = torch.linspace(0.01, 0.9, 100).numpy()[::-1].copy()
    ok = dens > 0.05
    ids = E.pick_across_densities(dens, ok, 5)
    assert len(ids) == 5 and all(ok[i] for i in ids)
    assert min(dens[ids]) < 0.1 and max(dens[ids]) > 0.85


def test_readability_scores_pick_the_units_and_are_rank_correlated(tiny_model, tmp_path):
    """With a compare-layers run's units.json, only its scored units are drawn, each carries its
    score, and the summary holds Spearman's rho over them."""
    scored = {5: 0.9, 11: 0.1, 20: 0.5, 33: 0.7, 41: 0.3, 60: 0.2}
    folder = tmp_path / "depth" / "layers" / f"L{LAYER:02d}"
    folder.mkdir(parents=True)
    units = [{"seed": 0, "unit": i, "side": "+", "top_random": s} for i, s in scored.items()]
    units.append({"seed": 0, "unit": -3, "side": "-", "top_random": 1.0})  # a sign-flipped half-unit: not a unit id
    (folder / "units.json").write_text(json.dumps({"neurons": units}))
    res = _run(tiny_model, tmp_path / "e", units=("neurons",), readability=tmp_path / "depth", n=50)
    got = res["rows"][0]["kinds"]["neurons"]
    assert {u["unit"] for u in got["units"]} <= set(scored) and got["n_units"] >= 3
    assert all(u["readability"] == scored[u["unit"]] for u in got["units"])
    sp = got["summary"]["spearman_readability_vs_add_effect_at_kl_0.2"]
    effects = [u["curves"]["add"]["effect_at_kl_0.2"] for u in got["units"]]
    assert sp["n"] == got["n_units"]
    assert sp["rho"] == pytest.approx(E.spearman([u["readability"] for u in got["units"]], effects)["rho"])
    with pytest.raises(InterpError, match="no compare-layers scores for layer"):
        _run(tiny_model, tmp_path / "f", units=("neurons",), readability=tmp_path / "nowhere")
    assert not (tmp_path / "f").exists()


def _normal_pairs(n: int, r: float, seed: int):
    """n pairs from a bivariate normal of correlation r; Spearman's rho is then 6/pi asin(r/2)."""
    g = np.random.default_rng(seed)
    x = g.standard_normal(n)
    return x, r * x + math.sqrt(1 - r * r) * g.standard_normal(n)


def test_spearman_bootstrap_ci_covers_a_known_correlation():
    true = 6 / math.pi * math.asin(0.6 / 2)  # 0.582
    x, y = _normal_pairs(300, 0.6, 0)
    got = E.spearman(x, y, n_boot=1000, seed=0)
    assert got["n"] == 300 and got["lo"] < true < got["hi"] and got["lo"] > 0.4 and got["hi"] < 0.75
    assert got["lo"] <= got["rho"] <= got["hi"]
    x0, y0 = _normal_pairs(300, 0.0, 1)
    null = E.spearman(x0, y0, n_boot=1000, seed=0)
    assert null["lo"] < 0 < null["hi"]
    # resampling units: of 100 synthetic sets of 50 pairs, the 95% CI holds the true rho in about 95
    covered = [E.spearman(*_normal_pairs(50, 0.6, s), n_boot=500, seed=s) for s in range(100)]
    share = np.mean([c["lo"] <= true <= c["hi"] for c in covered])
    assert 0.85 <= share <= 1.0
    widths = [E.spearman(*_normal_pairs(n, 0.6, 5), n_boot=500)["hi"] - E.spearman(*_normal_pairs(n, 0.6, 5), n_boot=500)["lo"]
              for n in (30, 300)]
    assert widths[1] < widths[0] / 2
    tied = E.spearman([1, 1, 1, 2], [1, 2, 3, 4], n_boot=200)  # resamples with all-tied ranks are left out, not NaN
    assert tied["lo"] is not None and math.isfinite(tied["lo"])

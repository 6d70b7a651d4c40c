"""The layer-depth comparison: neurons vs SAE features at each layer, resumable, on one held-out text."""

import json

import numpy as np
import pytest
import torch

import analyses.depth as depth
from analyses.depth import DepthConfig, compare_layers
from analyses.report import diff_ci, slope_ci
from analyses.scoring import ScoringConfig
from interp.errors import InterpError
from interp.recording import windows_sha256

CFG = DepthConfig(site="mlp_post", arch="topk", k=4, expansion=2, sae_batch_size=128, features_per_layer=6,
                  eval_tokens=64, checkpoint_every=4,
                  scoring=ScoringConfig(example_len=8, n_top_train=5, n_random_train=5, n_top_heldout=5,
                                        n_random_heldout=5, n_boot=200))


def windows(n, seed, ctx=17):  # random token windows that begin with a BOS-like token 0
    w = torch.randint(1, 101, (n, ctx), generator=torch.Generator().manual_seed(seed))
    w[:, 0] = 0
    return w


TRAIN, HELD = windows(64, 1), windows(24, 2)


@pytest.fixture
def counted(monkeypatch):
    """Counts the layers actually scored."""
    calls = []
    real = depth.score_layer

    def score_layer(model, layer, *a, **kw):
        calls.append(layer)
        return real(model, layer, *a, **kw)

    monkeypatch.setattr(depth, "score_layer", score_layer)
    return calls


def run(model, layers, out, cfg=CFG):
    return compare_layers(model, layers, TRAIN, HELD, out, cfg, log=lambda s: None, progress=False)


def test_two_layers_end_to_end_write_reports_that_state_sample_sizes(tiny_model, tmp_path, counted):
    res = run(tiny_model, [0, 2], tmp_path)
    assert counted == [0, 2]
    assert [r["layer"] for r in res["rows"]] == [0, 2]
    for r in res["rows"]:
        assert r["neurons"]["n_scored"] == r["sae"]["n_scored"] == 6 == len(r["sae"]["scores"])
        assert r["neurons"]["n_total"] == 64 and r["sae"]["n_total"] == 128
        lo, hi = r["sae"]["ci95"]
        assert lo <= r["sae"]["mean_score"] <= hi
        q = r["sae_quality"]
        assert q["d_sae"] == 128 and q["k"] == 4 and abs(q["l0"] - 4) < 1e-6
        assert -1 < q["explained_variance"] <= 1
        assert q["skip_bos"] and q["n_eval_tokens"] == 3 * 16  # 3 held-out windows, BOS left out as in training
        assert 0 <= q["dead_fraction_train"] < 1
    assert res["sample_sizes"] == {"features_per_layer_asked": 6, "scored_per_layer_and_kind": [6], "equal": True, "n_boot": 200}
    md = (tmp_path / "report.md").read_text()
    assert "6 features of each kind at every layer" in md and "| 2 |" in md
    page = (tmp_path / "report.html").read_text()
    assert "* plotly.js v" in page and "<script src" not in page  # plotly's JavaScript is in the page itself
    assert page.count('class="plotly-graph-div"') == 5
    assert json.loads((tmp_path / "results.json").read_text())["layers"] == [0, 2]
    for layer in (0, 2):
        assert (tmp_path / "layers" / f"L{layer:02d}" / "sae" / "explanations.json").exists()
        assert (tmp_path / "saes" / f"blocks.{layer}.mlp.hook_post" / "cfg.json").exists()


def test_every_layer_is_scored_on_the_same_heldout_text(tiny_model, tmp_path):
    rows = run(tiny_model, [0, 2], tmp_path)["rows"]
    want = windows_sha256(HELD)
    assert [r["text"]["heldout_tokens_sha256"] for r in rows] == [want, want]
    assert rows[0]["text"]["heldout_random_examples"] == rows[1]["text"]["heldout_random_examples"]
    assert len(rows[0]["text"]["heldout_random_examples"]) == 5
    # and the feature samples differ between layers: each layer draws with its own seed
    assert rows[0]["neurons"]["features"] != rows[1]["neurons"]["features"]


def test_a_rerun_skips_finished_layers_and_adding_a_layer_scores_only_it(tiny_model, tmp_path, counted):
    first = run(tiny_model, [0, 2], tmp_path)
    done = tmp_path / "layers" / "L00" / "done.json"
    stamp = done.stat().st_mtime_ns
    sae_stamp = (tmp_path / "saes" / "blocks.0.mlp.hook_post" / "sae_weights.safetensors").stat().st_mtime_ns
    again = run(tiny_model, [0, 2], tmp_path)
    assert counted == [0, 2]  # nothing scored the second time
    assert done.stat().st_mtime_ns == stamp
    assert again["rows"] == first["rows"]
    run(tiny_model, [0, 1, 2], tmp_path)
    assert counted == [0, 2, 1]
    assert (tmp_path / "acts" / "train.1" / "manifest.json").exists()  # only layer 1 recorded again
    assert list(json.loads((tmp_path / "acts" / "train.1" / "manifest.json").read_text())["hooks"]) == ["blocks.1.mlp.hook_post"]
    assert (tmp_path / "saes" / "blocks.0.mlp.hook_post" / "sae_weights.safetensors").stat().st_mtime_ns == sae_stamp


def test_a_rerun_with_other_settings_is_refused(tiny_model, tmp_path):
    run(tiny_model, [0], tmp_path)
    with pytest.raises(InterpError, match="features_per_layer"):
        run(tiny_model, [0], tmp_path, DepthConfig(**{**CFG.__dict__, "features_per_layer": 3}))


def test_an_existing_sae_of_another_shape_is_refused(tiny_model, tmp_path):
    run(tiny_model, [0], tmp_path / "a")
    (tmp_path / "b" / "saes").mkdir(parents=True)
    src = tmp_path / "a" / "saes" / "blocks.0.mlp.hook_post"
    import shutil

    shutil.copytree(src, tmp_path / "b" / "saes" / "blocks.0.mlp.hook_post")
    with pytest.raises(InterpError, match="expansion 3"):
        run(tiny_model, [0], tmp_path / "b", DepthConfig(**{**CFG.__dict__, "expansion": 3}))


def test_the_gap_and_the_depth_trend_are_exact_means_with_cis_that_cover_them():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.5, 0.1, 200), rng.normal(0.3, 0.1, 200)
    mean, lo, hi = diff_ci(a, b, 2000, 0)
    assert mean == pytest.approx(b.mean() - a.mean())
    assert lo < -0.2 < hi and hi - lo < 0.06  # se of the difference is 0.01
    layers = [0, 4, 8, 12]
    scores = [rng.normal(0.6 - 0.02 * x, 0.1, 100) for x in layers]  # falls by 0.02 per layer
    slope, lo, hi = slope_ci(layers, scores, 2000, 0)
    assert slope == pytest.approx(np.polyfit(layers, [s.mean() for s in scores], 1)[0])
    assert lo < -0.02 < hi and hi < 0


def test_train_sae_from_a_cache_shares_the_helpers_and_trains_one_sae_per_hook(tiny_model, tmp_path):
    from interp.cli import main
    from interp.recording import record
    from sae import load_sae

    hooks = ["blocks.0.mlp.hook_post", "blocks.2.mlp.hook_post"]
    record(tiny_model, TRAIN, hooks, tmp_path / "acts", progress=False)
    code = main(["train-sae", "--activations", str(tmp_path / "acts"), "--layers", "0,2", "--site", "mlp_post", "--tokens", "512",
                 "--batch-size", "128", "--expansion", "2", "--k", "4", "--out", str(tmp_path / "saes")])
    assert code == 0
    for h in hooks:
        s = load_sae(tmp_path / "saes" / h)
        assert (s.cfg.d_in, s.cfg.d_sae, s.cfg.k, s.cfg.hook_name) == (64, 128, 4, h)
        assert json.loads((tmp_path / "saes" / h / "train_state.json").read_text())["step"] == 4

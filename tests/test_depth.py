"""The layer-depth comparison: neurons vs SAE features at each layer, resumable, on one held-out text."""

import json

import numpy as np
import pytest
import torch

import interp.pipelines.compare_layers as depth
from analyses.report import ceiling_figure, diff_ci
from analyses.scoring import ScoringConfig
from interp.errors import InterpError
from interp.models.processing import TL_PROCESSING
from interp.pipelines.compare_layers import DepthConfig, compare_layers
from interp.recording import windows_sha256

CFG = DepthConfig(site="mlp_post", arch="topk", k=4, expansion=2, sae_batch_size=128, features_per_layer=6,
                  eval_tokens=64, checkpoint_every=4, fit_tokens=512, ica_components=8,
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
    assert res["bases"] == ["neurons", "sae", "random", "pca"]
    for r in res["rows"]:
        for b in res["bases"]:
            row = r["bases"][b]
            assert row["n_scored"] == 6 == len(row["units"])
            for _kind, k in row["kinds"].items():
                assert k["n"] == 6 and 0 <= k["n_undefined"] <= 6
                lo, hi = k["ci95_undefined_at_chance"]
                assert lo <= k["mean_undefined_at_chance"] <= hi
        assert r["bases"]["neurons"]["n_total"] == 2 * 64 and r["bases"]["sae"]["n_total"] == 128  # half-neurons: both signs
        assert r["bases"]["pca"]["n_total"] == 2 * 64 and r["fits"]["pca"]["n_fit_tokens"] == 512
        assert set(r["calibrated"]["top_random"]) == {"neurons", "sae", "random", "pca"}
        assert r["calibrated"]["top_random"]["random"]["mean"] == 0
        q = r["sae_quality"][0]
        assert q["d_sae"] == 128 and q["k"] == 4 and abs(q["l0"] - 4) < 1e-6
        assert -1 < q["explained_variance"] <= 1
        assert q["skip_bos"] and q["n_eval_tokens"] == 3 * 16  # 3 held-out windows, BOS left out as in training
        assert q["training"]["reached"] and q["training"]["tokens"] == 1024  # one epoch: 64 windows of 16 tokens after BOS
    assert res["sample_sizes"]["scored_per_layer_and_basis"] == [6] and res["sample_sizes"]["equal"]
    md = (tmp_path / "report.md").read_text()
    assert "6 units of every dictionary at every layer" in md and "| 2 | SAE features |" in md
    assert "Sign rule: a unit fires where its activation is > 0" in md
    assert "undefined / n" in md and "minus random" in md
    page = (tmp_path / "report.html").read_text()
    assert "* plotly.js v" in page and "<script src" not in page  # plotly's JavaScript is in the page itself
    assert page.count('class="plotly-graph-div"') == 6  # 4 score kinds, the lexical ceiling beside the score, SAE quality
    assert json.loads((tmp_path / "results.json").read_text())["layers"] == [0, 2]
    for layer in (0, 2):
        assert (tmp_path / "layers" / f"L{layer:02d}" / "sae" / "s0" / "explanations.json").exists()
        assert (tmp_path / "layers" / f"L{layer:02d}" / "units.json").exists()
        from safetensors.torch import load_file

        kept = load_file(str(tmp_path / "layers" / f"L{layer:02d}" / "pca" / "heldout_acts.safetensors"))
        assert kept["acts"].shape == (24, 17, 6) and kept["features"].shape == (6,)  # every held-out token, each scored unit
        meta = json.loads((tmp_path / "saes" / f"blocks.{layer}.mlp.hook_post" / "cfg.json").read_text())["metadata"]
        # the SAELens metadata train-sae writes (one writer: sae.runs.sae_metadata), from the train recording
        assert meta["context_size"] == 17 and meta["prepend_bos"] is True
        assert meta["dataset_path"] == str(tmp_path / "acts" / "train")
        assert meta["model_from_pretrained_kwargs"] == TL_PROCESSING


def test_every_basis_two_seeds_and_a_matched_ev_target(tiny_model, tmp_path):
    cfg = DepthConfig(**{**CFG.__dict__, "bases": ("neurons", "sae", "random", "rotated", "pca", "ica", "sae-random-model"),
                         "seeds": 2, "target_ev": 0.99, "sae_tokens": 256, "sae_token_cap": 512})
    res = run(tiny_model, [1], tmp_path, cfg)
    r = res["rows"][0]
    assert set(r["bases"]) == set(cfg.bases)
    assert r["bases"]["sae"]["n_seeds"] == 2 and r["bases"]["random"]["n_seeds"] == 2 and r["bases"]["sae-random-model"]["n_seeds"] == 1
    assert r["bases"]["sae"]["n_scored"] == 12 and len(r["bases"]["sae"]["per_seed"]) == 2
    assert r["fits"]["ica"]["n_components"] == 8
    # an EV of 0.99 is out of reach in 512 tokens: every SAE is kept, flagged, and trained to the cap
    assert [q["training"]["tokens"] for q in r["sae_quality"]] == [512, 512]
    assert not any(q["training"]["reached"] for q in r["sae_quality"])
    assert len(res["target_missed"]) == 3  # two seeds and the random model's SAE
    assert "MISSED the EV target" in (tmp_path / "report.md").read_text()
    w0 = (tmp_path / "saes" / "blocks.1.mlp.hook_post" / "sae_weights.safetensors").read_bytes()
    w1 = (tmp_path / "saes" / "blocks.1.mlp.hook_post.seed1" / "sae_weights.safetensors").read_bytes()
    assert w0 != w1  # the seeds differ
    assert (tmp_path / "random-model" / "acts" / "train" / "manifest.json").exists()


def test_every_layer_is_scored_on_the_same_heldout_text(tiny_model, tmp_path):
    rows = run(tiny_model, [0, 2], tmp_path)["rows"]
    want = windows_sha256(HELD)
    assert [r["text"]["heldout_tokens_sha256"] for r in rows] == [want, want]
    assert rows[0]["text"]["heldout_random_examples"] == rows[1]["text"]["heldout_random_examples"]
    assert len(rows[0]["text"]["heldout_random_examples"]) == 5
    # and the feature samples differ between layers: each layer draws with its own seed
    assert [u["unit"] for u in rows[0]["bases"]["neurons"]["units"]] != [u["unit"] for u in rows[1]["bases"]["neurons"]["units"]]


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
    # a rerun that recomputes the layers reproduces every number
    import shutil

    shutil.rmtree(tmp_path / "layers")
    third = run(tiny_model, [0, 2], tmp_path)
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("seconds", "fits")} for r in rows]  # noqa: E731
    assert strip(third["rows"]) == strip(first["rows"])


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


def test_the_gap_is_an_exact_mean_with_a_ci_that_covers_it():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.5, 0.1, 200), rng.normal(0.3, 0.1, 200)
    mean, lo, hi = diff_ci(a, b, 2000, 0)
    assert mean == pytest.approx(b.mean() - a.mean())
    assert lo < -0.2 < hi and hi - lo < 0.06  # se of the difference is 0.01


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


def test_bad_bases_and_unfittable_pca_are_refused_in_one_line(tiny_model, tmp_path, capsys):
    from interp.cli import main

    assert main(["compare-layers", "--model", "smollm2-135m", "--bases", "neurons,sea", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "unknown basis 'sea'" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(InterpError, match="pca basis of blocks.0.mlp.hook_post .64 dimensions. cannot be fit on 48"):
        run(tiny_model, [0], tmp_path / "y", DepthConfig(**{**CFG.__dict__, "fit_tokens": 48}))
    assert not (tmp_path / "y" / "saes").exists()  # refused before any SAE was trained


def test_the_lexical_ceiling_and_the_density_matched_comparison_are_in_results_units_and_reports(tiny_model, tmp_path):
    from analyses.lexical import lexical_ceiling

    res = run(tiny_model, [1, 2], tmp_path)
    r = res["rows"][0]
    assert set(r["lexical"]) == set(res["bases"])
    units = json.loads((tmp_path / "layers" / "L01" / "units.json").read_text())
    # one neuron half-unit of each side, recomputed from the model itself: the ceiling belongs to the right unit
    _, cache = tiny_model.run_with_cache(HELD, names_filter="blocks.1.mlp.hook_post")
    a = cache["blocks.1.mlp.hook_post"].numpy()
    valid = np.ones(HELD.shape, dtype=bool)
    valid[:, 0] = False
    for side in "+-":
        u = next(u for u in units["neurons"] if u["side"] == side)
        x = np.maximum(a[..., u["unit"]] * (1 if side == "+" else -1), 0)[..., None]
        want = lexical_ceiling(x, HELD.numpy(), valid=valid)
        assert u["lexical"]["bigram"] == pytest.approx(float(want["bigram"][0]), abs=2e-3)
        assert u["lexical"]["token_loo"] == pytest.approx(float(want["token_loo"][0]), abs=2e-3)
    for b in res["bases"]:
        s = r["lexical"][b]["bigram"]
        vals = [u["lexical"]["bigram"] for u in units[b] if u["lexical"]["bigram"] is not None]
        assert s["n"] == len(vals) and s["mean"] == pytest.approx(np.mean(vals))
        assert 0 <= s["mean"] <= 1 and r["lexical"][b]["n_tokens"] == 24 * 16
    # density-matched, against neurons and against the random null, with the raw difference beside it
    d = r["density"]["neurons"]["differences"]["sae"]
    raw = np.mean([u["top_random"] or 0 for u in units["sae"]]) - np.mean([u["top_random"] or 0 for u in units["neurons"]])
    assert d["raw_difference"] == pytest.approx(raw) and d["n_units"] <= 6
    assert set(r["density"]["random"]["differences"]) == {"neurons", "sae", "pca"}
    # ceiling-matched: the same comparison within bins of the bigram ceiling; the ceiling's own trend with depth
    c = r["ceiling_matched"]["random"]
    assert c["edges"] == pytest.approx(np.linspace(0, 1, 6).tolist()) and set(c["differences"]) == {"neurons", "sae", "pca"}
    assert sum(b["bases"]["sae"]["n"] for b in c["bins"]) + c["n_zero_density"]["sae"] == len(vals_sae := [
        u for u in units["sae"] if u["lexical"]["bigram"] is not None])
    assert res["ceiling_trend"]["raw"]["sae"]["layers"][0]["mean"] == pytest.approx(np.mean([u["lexical"]["bigram"] for u in vals_sae]))
    assert [x["depth"] for x in res["ceiling_trend"]["minus_random"]["neurons"]["layers"]] == [1, 2]
    assert res["lexical_text"] and res["density_text"] and res["ceiling_text"]
    md, page = (tmp_path / "report.md").read_text(), (tmp_path / "report.html").read_text()
    for text in (md, page):
        assert "Lexical ceiling" in text and "bigram R²" in text and "Density-matched" in text and "within density bins" in text
        assert "Ceiling-matched" in text and "within lexical-ceiling bins" in text
    # the ceiling per layer and basis is plotted beside the scores, one line per basis (plus its leave-one-out)
    assert "Score and lexical ceiling by depth" in page
    fig = ceiling_figure(res)
    ceil = [t for t in fig.data if t.xaxis == "x2"]
    assert len(ceil) == 2 * len(res["bases"]) and list(ceil[0].x) == [1, 2]
    assert list(ceil[0].y) == pytest.approx([row["lexical"][res["bases"][0]]["bigram"]["mean"] for row in res["rows"]])

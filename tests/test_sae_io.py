"""The SAE folder: SAELens's cfg.json + sae_weights.safetensors, round trips, input-scale
folding, reading SAELens-written folders, and one-line errors."""

import json

import pytest
import torch
from safetensors.torch import save_file

from sae import SAEConfig, SAEError, TrainConfig, Trainer, create_sae, load_sae, save_sae

D, S = 12, 40


def trained_like(arch: str, scale: float = 1.0):
    """An SAE with random weights and nonzero biases, as training leaves it."""
    sae = create_sae(SAEConfig(arch, D, S, k=5 if "topk" in arch else None, hook_name="blocks.1.hook_resid_post",
                               model_name="tiny", activation_scale=scale))
    g = torch.Generator().manual_seed(0)
    sae.init_weights(g, TrainConfig(jumprelu_init_threshold=0.2))
    with torch.no_grad():
        sae.b_enc.normal_(0, 0.2, generator=g)
        sae.b_dec.normal_(0, 1.0, generator=g)
        if arch == "relu":
            sae.W_dec.mul_(torch.rand(S, 1, generator=g) + 0.5)  # decoder norms to fold at save
        if arch == "batchtopk":
            sae.threshold.fill_(0.15)
    return sae


def inputs(n: int = 50) -> torch.Tensor:
    return torch.randn(n, D, generator=torch.Generator().manual_seed(1)) * 2 + 0.5


@pytest.mark.parametrize("arch", ["relu", "topk", "batchtopk", "jumprelu"])
def test_save_then_load_reconstructs_the_same(arch, tmp_path):
    sae = trained_like(arch, scale=2.5)
    x = inputs()
    with torch.no_grad():
        before = sae(x)
        loaded = load_sae(save_sae(sae, tmp_path / "a"), device="cpu")
        assert torch.allclose(loaded(x), before, atol=1e-5)
        # a saved SAE saved again is the same to the bit
        again = load_sae(save_sae(loaded, tmp_path / "b"), device="cpu")
        assert torch.equal(again.encode(x), loaded.encode(x))
        assert torch.equal(again.decode(loaded.encode(x)), loaded.decode(loaded.encode(x)))


def test_folded_input_scale_matches_the_training_time_path(tmp_path):
    sae = create_sae(SAEConfig("topk", D, S, k=5))
    trainer = Trainer(sae, TrainConfig(steps=20, lr=1e-2, lr_warmup_steps=1))
    x = inputs(256) * 7.0  # raw activations far from norm sqrt(d_in)
    trainer.initialize(x)
    for _ in range(5):
        trainer.step(x)
    s = sae.cfg.activation_scale
    assert s == pytest.approx(D ** 0.5 / float(x.norm(dim=1).mean()), rel=1e-6)
    with torch.no_grad():
        xs = x * s  # what training saw
        pre = (xs - sae.b_dec) @ sae.W_enc + sae.b_enc
        v, i = pre.topk(5, dim=1)
        z = torch.zeros_like(pre).scatter(1, i, v.relu())
        recon_scaled = z @ sae.W_dec + sae.b_dec
        saved = load_sae(save_sae(sae, tmp_path), device="cpu")
        assert saved.cfg.activation_scale == 1.0
        assert torch.allclose(saved(x), recon_scaled / s, atol=1e-4)
        assert torch.allclose(saved.encode(x), z / s, atol=1e-5)


def test_cfg_json_follows_saelens(tmp_path):
    for arch, name in [("relu", "standard"), ("topk", "topk"), ("batchtopk", "jumprelu"), ("jumprelu", "jumprelu")]:
        cfg = json.loads((save_sae(trained_like(arch), tmp_path / arch) / "cfg.json").read_text())
        assert cfg["architecture"] == name
        assert (cfg["d_in"], cfg["d_sae"], cfg["dtype"], cfg["normalize_activations"]) == (D, S, "float32", "none")
        assert cfg["hook_name"] == cfg["metadata"]["hook_name"] == "blocks.1.hook_resid_post"
        assert cfg["model_name"] == cfg["metadata"]["model_name"] == "tiny"
        assert cfg.get("k") == (5 if "topk" in arch else None)
    from safetensors.torch import load_file
    w = load_file(tmp_path / "batchtopk" / "sae_weights.safetensors")
    assert {k: tuple(v.shape) for k, v in w.items()} == {
        "W_enc": (D, S), "W_dec": (S, D), "b_enc": (S,), "b_dec": (D,), "threshold": (S,)}


def write_folder(path, cfg: dict, tensors: dict):
    path.mkdir(parents=True, exist_ok=True)
    (path / "cfg.json").write_text(json.dumps(cfg))
    save_file({k: v.contiguous() for k, v in tensors.items()}, path / "sae_weights.safetensors")


def random_tensors(g):
    return {"W_enc": torch.randn(D, S, generator=g), "W_dec": torch.randn(S, D, generator=g),
            "b_enc": torch.randn(S, generator=g) * 0.1, "b_dec": torch.randn(D, generator=g)}


def test_reads_a_saelens_6_standard_sae_without_b_dec_on_input(tmp_path):
    t = random_tensors(torch.Generator().manual_seed(2))
    write_folder(tmp_path, {"architecture": "standard", "d_in": D, "d_sae": S, "dtype": "float32", "device": "cpu",
                            "apply_b_dec_to_input": False, "normalize_activations": "none",
                            "metadata": {"sae_lens_version": "6.5.0", "model_name": "gpt2",
                                         "hook_name": "blocks.3.hook_resid_pre"}}, t)
    sae = load_sae(tmp_path, device="cpu")
    x = inputs()
    z = (x @ t["W_enc"] + t["b_enc"]).relu()  # SAELens's equation with apply_b_dec_to_input=False
    assert (sae.cfg.architecture, sae.cfg.hook_name, sae.cfg.model_name) == ("relu", "blocks.3.hook_resid_pre", "gpt2")
    with torch.no_grad():
        assert torch.allclose(sae.encode(x), z, atol=1e-5)
        assert torch.allclose(sae(x), z @ t["W_dec"] + t["b_dec"], atol=1e-4)


def test_reads_a_topk_sae_that_rescales_by_decoder_norm(tmp_path):
    t = random_tensors(torch.Generator().manual_seed(3))
    write_folder(tmp_path, {"architecture": "topk", "d_in": D, "d_sae": S, "k": 4, "dtype": "float32",
                            "rescale_acts_by_decoder_norm": True, "hook_name": "blocks.0.hook_mlp_out",
                            "metadata": {"sae_lens_version": "6.5.0"}}, t)
    sae = load_sae(tmp_path, device="cpu")
    x = inputs()
    n = t["W_dec"].norm(dim=1)
    pre = ((x - t["b_dec"]) @ t["W_enc"] + t["b_enc"]) * n
    v, i = pre.topk(4, dim=1)
    recon = torch.zeros_like(pre).scatter(1, i, v.relu()) @ (t["W_dec"] / n[:, None]) + t["b_dec"]
    with torch.no_grad():
        assert torch.allclose(sae(x), recon, atol=1e-4)


def test_reads_a_pre_6_topk_config(tmp_path):
    t = random_tensors(torch.Generator().manual_seed(4))
    write_folder(tmp_path, {"d_in": D, "d_sae": S, "hook_point": "blocks.2.hook_resid_post", "model_name": "gpt2",
                            "activation_fn_str": "topk", "activation_fn_kwargs": {"k": 3}, "dtype": "float32"}, t)
    sae = load_sae(tmp_path, device="cpu")
    assert (sae.cfg.architecture, sae.cfg.k, sae.cfg.hook_name) == ("topk", 3, "blocks.2.hook_resid_post")
    with torch.no_grad():
        assert ((sae.encode(inputs()) != 0).sum(1) <= 3).all()


def one_line_error(fn) -> str:
    with pytest.raises(SAEError) as e:
        fn()
    assert "\n" not in str(e.value)
    return str(e.value)


def test_user_mistakes_give_one_clear_line(tmp_path):
    assert "unknown SAE architecture 'gated'" in one_line_error(
        lambda: create_sae(SAEConfig("gated", D, S)))
    assert "k=50" in one_line_error(lambda: create_sae(SAEConfig("topk", D, S, k=50)))
    assert "needs k" in one_line_error(lambda: create_sae(SAEConfig("topk", D, S)))
    sae = trained_like("topk")
    assert "d_in=12" in one_line_error(lambda: sae.encode(torch.zeros(3, D + 1)))

    folder = save_sae(sae, tmp_path / "ok")
    (folder / "sae_weights.safetensors").write_bytes((folder / "sae_weights.safetensors").read_bytes()[:500])
    assert "truncated" in one_line_error(lambda: load_sae(folder))
    (folder / "sae_weights.safetensors").unlink()
    assert "no sae_weights.safetensors" in one_line_error(lambda: load_sae(folder))
    assert "no SAE folder" in one_line_error(lambda: load_sae(tmp_path / "missing"))

    cfg = json.loads((save_sae(sae, tmp_path / "arch") / "cfg.json").read_text())
    (tmp_path / "arch" / "cfg.json").write_text(json.dumps({**cfg, "architecture": "gated"}))
    assert "unknown SAE architecture" in one_line_error(lambda: load_sae(tmp_path / "arch"))
    (tmp_path / "arch" / "cfg.json").write_text(json.dumps({**cfg, "k": S + 1}))
    assert f"k={S + 1}" in one_line_error(lambda: load_sae(tmp_path / "arch"))
    (tmp_path / "arch" / "cfg.json").write_text(json.dumps({**cfg, "d_in": D + 1}))
    assert "do not belong together" in one_line_error(lambda: load_sae(tmp_path / "arch"))

"""cfg.json says what SAELens's metadata says about the activations an SAE read (context size, BOS,
dataset, the model's TransformerLens processing), whichever way it was trained; SAELens folders
saved with normalize_activations "expected_average_only_in" load with their input scale folded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

import sae as saelib
from interp.cli import main
from interp.models.processing import TL_PROCESSING
from sae.errors import SAEError


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("saelens_cfg")
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=4, n_positions=64)).eval().save_pretrained(root / "tiny-gpt2")
    (root / "text").mkdir()
    for i in range(4):
        (root / "text" / f"doc{i}.txt").write_text(f"Document {i} says the whale is white and the sea is deep. " * 200)
    common = ["--layer", "0", "--arch", "topk", "--k", "4", "--expansion", "2", "--batch-size", "256"]
    assert main(["record", "--model", str(root / "tiny-gpt2"), "--layers", "0", "--tokens", "1024", "--context-size", "32",
                 "--text", str(root / "text"), "--split", "all", "--out", str(root / "acts")]) == 0
    assert main(["train-sae", "--activations", str(root / "acts"), *common, "--tokens", "1024", "--out", str(root / "from-cache")]) == 0
    assert main(["train-sae", "--model", str(root / "tiny-gpt2"), "--text", str(root / "text"), "--context-size", "32",
                 *common, "--tokens", "4096", "--out", str(root / "from-model")]) == 0
    return root


@pytest.mark.parametrize("run", ["from-cache", "from-model"])
def test_cfg_json_carries_saelens_metadata(world, run):
    cfg = json.loads((world / run / "cfg.json").read_text())
    meta = cfg["metadata"]
    assert meta["context_size"] == 32
    assert meta["prepend_bos"] is True  # GPT-2 folders start windows with BOS
    assert meta["model_from_pretrained_kwargs"] == TL_PROCESSING
    assert meta["dataset_path"] == str(world / ("acts" if run == "from-cache" else "text"))
    assert meta["hook_name"] == cfg["hook_name"] == "blocks.0.hook_resid_post"
    assert meta["model_name"] == cfg["model_name"] == "tiny-gpt2"
    assert cfg["normalize_activations"] == "none"


def _scaled_folder(folder: Path, scale: float | None) -> saelib.SAE:
    """A relu SAE saved as SAELens saves a checkpoint trained on inputs times `scale`."""
    g = torch.Generator().manual_seed(1)
    sae = saelib.create_sae(saelib.SAEConfig("relu", 8, 32))
    with torch.no_grad():
        for p in sae.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        sae.W_dec.div_(sae.W_dec.norm(dim=1, keepdim=True))
    saelib.save_sae(sae, folder)
    cfg = json.loads((folder / "cfg.json").read_text())
    cfg["normalize_activations"] = "expected_average_only_in"
    (folder / "cfg.json").write_text(json.dumps(cfg))
    if scale is not None:
        (folder / "activation_scaler.json").write_text(json.dumps({"scaling_factor": scale, "has_whitening": False}))
    return sae


def test_expected_average_only_in_folds_the_input_scale(tmp_path):
    s = 3.7
    trained = _scaled_folder(tmp_path, s)
    loaded = saelib.load_sae(tmp_path, device="cpu")
    x = torch.randn(64, 8, generator=torch.Generator().manual_seed(2)) * 2
    z = trained.encode(x * s)  # what the SAE computed in training: scaled inputs
    assert 0 < (z > 0).float().mean() < 1
    torch.testing.assert_close(loaded.encode(x), z, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(loaded(x), trained(x * s) / s, rtol=1e-5, atol=1e-5)


def test_expected_average_only_in_without_its_factor_is_refused(tmp_path):
    _scaled_folder(tmp_path, None)
    with pytest.raises(SAEError, match="holds no positive scaling factor"):
        saelib.load_sae(tmp_path, device="cpu")

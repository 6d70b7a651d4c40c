"""load_model(..., processing=False) is TransformerLens's from_pretrained_no_processing: the weights
as they are (LayerNorm kept, nothing centred or folded), the same next-token distribution, other
activations; every recording and SAE records which was used (SAELens's model_from_pretrained_kwargs);
and an SAE is refused on a model processed otherwise."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from interp.cli import main
from interp.errors import InterpError
from interp.lm.build import build_model
from interp.lm.config import LMConfig
from interp.lm.folder import save_lm_folder
from interp.models import check_processing, load_model
from interp.models.converted import save_converted
from interp.models.processing import NO_PROCESSING, TL_PROCESSING

HOOK = "blocks.0.hook_resid_post"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("processing")
    torch.manual_seed(0)
    hf = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=4, n_positions=64)).eval()
    with torch.no_grad():  # LayerNorm weights and biases away from 1 and 0, so that folding them shows
        for block in hf.transformer.h:
            block.ln_1.weight.uniform_(0.5, 1.5)
            block.ln_1.bias.normal_(0, 0.2)
    hf.save_pretrained(root / "tiny-gpt2")
    (root / "text").mkdir()
    for i in range(4):
        (root / "text" / f"doc{i}.txt").write_text(f"Document {i} says the whale is white and the sea is deep. " * 200)
    return root


def test_no_processing_keeps_the_weights_as_they_are(world):
    raw = load_model(world / "tiny-gpt2", processing=False)
    done = load_model(world / "tiny-gpt2")
    hf = GPT2LMHeadModel.from_pretrained(world / "tiny-gpt2")
    assert raw.cfg.normalization_type == "LN" and done.cfg.normalization_type == "LNPre"
    torch.testing.assert_close(raw.blocks[0].ln1.w, hf.transformer.h[0].ln_1.weight)
    assert raw.from_pretrained_kwargs == NO_PROCESSING and done.from_pretrained_kwargs == TL_PROCESSING
    tokens = torch.randint(0, 50257, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        lr, cr = raw.run_with_cache(tokens, names_filter=HOOK)
        ld, cd = done.run_with_cache(tokens, names_filter=HOOK)
        torch.testing.assert_close(lr.log_softmax(-1), ld.log_softmax(-1), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(lr.log_softmax(-1), hf(tokens).logits.log_softmax(-1), rtol=1e-4, atol=1e-4)
    # center_writing_weights: the processed residual stream has mean zero over d_model, the raw one not
    assert cd[HOOK].mean(-1).abs().max() < 1e-6 < 1e-4 < cr[HOOK].mean(-1).abs().max()


def test_a_model_trained_here_has_one_form(tmp_path):
    cfg = LMConfig(arch="gpt2", n_layers=1, d_model=16, n_heads=2, n_ctx=8, d_vocab=20)
    save_lm_folder(build_model(cfg), cfg, tmp_path / "lm")
    a, b = load_model(tmp_path / "lm"), load_model(tmp_path / "lm", processing=False)
    assert a.from_pretrained_kwargs == b.from_pretrained_kwargs == NO_PROCESSING  # used as trained
    for k, v in a.state_dict().items():
        torch.testing.assert_close(v, b.state_dict()[k])
    check_processing("an SAE", TL_PROCESSING, a)  # nothing to refuse: there is no other form
    check_processing("an SAE", {}, b)


def test_a_converted_folder_without_its_original_weights_cannot_be_unprocessed(world, tmp_path):
    save_converted(load_model(world / "tiny-gpt2"), tmp_path / "converted")
    with pytest.raises(InterpError, match="holds weights already processed by TransformerLens and not the original ones"):
        load_model(tmp_path / "converted", processing=False)


def test_a_saelens_partial_processing_is_refused_on_either_form(world):
    model = load_model(world / "tiny-gpt2")
    check_processing("an SAE", {}, model)  # SAELens's {} is from_pretrained's default: processed
    check_processing("an SAE", None, model)  # an SAE that records nothing is not refused
    with pytest.raises(InterpError, match=r"weight processing fold_ln=True, center_writing_weights=False.*cannot be matched"):
        check_processing("an SAE", {"center_writing_weights": False}, model)


def test_recordings_and_saes_record_the_processing(world, tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_HOME", str(tmp_path / "home"))
    common = ["--text", str(world / "text"), "--context-size", "32"]
    assert main(["record", "--model", str(world / "tiny-gpt2"), "--no-processing", "--layers", "0", "--tokens", "1024",
                 "--split", "all", *common, "--out", str(tmp_path / "acts")]) == 0
    header = json.loads((tmp_path / "acts" / "manifest.json").read_text())["header"]
    assert header["model_from_pretrained_kwargs"] == NO_PROCESSING
    sae = ["--layer", "0", "--k", "4", "--expansion", "2", "--batch-size", "256", "--tokens", "1024"]
    assert main(["train-sae", "--activations", str(tmp_path / "acts"), *sae, "--out", str(tmp_path / "from-cache")]) == 0
    assert main(["train-sae", "--model", str(world / "tiny-gpt2"), "--no-processing", *common, *sae,
                 "--out", str(tmp_path / "from-model")]) == 0
    for run in ("from-cache", "from-model"):
        assert json.loads((tmp_path / run / "cfg.json").read_text())["metadata"]["model_from_pretrained_kwargs"] == NO_PROCESSING
    argv = ["eval-sae", str(tmp_path / "from-model"), *common, "--split", "all", "--tokens", "256"]
    assert main(argv + ["--no-processing"]) == 0  # the model processed as the SAE's was
    assert main(argv + ["--overwrite"]) == 2  # refused (the line itself: tests/test_bad_inputs_cli.py)

"""train-sae on a model reads as much text as its shuffle buffer needs (one block of 8 batches),
whatever --tokens is: a short run is not refused for want of text the corpus has."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from interp.cli import main


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("budget")
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, n_positions=128)).eval().save_pretrained(root / "tiny-gpt2")
    (root / "text").mkdir()
    for i in range(40):  # about 80,000 GPT-2 tokens
        (root / "text" / f"doc{i}.txt").write_text(" ".join(f"Item {i}-{j} of a long list." for j in range(250)))
    return root


@pytest.mark.parametrize(("tokens", "batch", "context"), [(1024, 256, 32), (20000, 4096, 128)])
def test_few_training_tokens_still_fill_a_shuffle_block(world, tmp_path, monkeypatch, tokens, batch, context):
    monkeypatch.setenv("INTERP_HOME", str(tmp_path / "home"))
    out = tmp_path / "sae"
    assert main(["train-sae", "--model", str(world / "tiny-gpt2"), "--text", str(world / "text"), "--layer", "0",
                 "--k", "4", "--expansion", "2", "--tokens", str(tokens), "--batch-size", str(batch),
                 "--context-size", str(context), "--out", str(out)]) == 0
    assert json.loads((out / "run.json").read_text())["steps"] == tokens // batch

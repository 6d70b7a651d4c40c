"""A small corpus, model and dictionary whose features are known, for dashboard tests.

The model's residual stream after block 0 is exactly the token embedding (positions, attention
and MLP outputs are zeroed), so feature j of the dictionary fires on the token TARGETS[j] and
nowhere else. The corpus is full of HTML: a dashboard must show it as text."""

from __future__ import annotations

import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from analyses.dictionary import Dictionary
from interp.gpt2_tokenizer import gpt2_tokenizer
from interp.recording import record
from interp.tokens import pack_windows, special_tokens

HOOK = "blocks.0.hook_resid_post"
EVIL = '<script>alert(1)</script> "quoted" & \'single\' <b>bold</b> </script><!-- x --> <img src=x onerror=alert(2)>'
TEXT = [
    EVIL,
    "Call me Ishmael. Some years ago, never mind how long precisely, I thought I would sail about.",
    'The page said <script>alert("hi")</script> and the reader saw the text, not a dialog.',
    "We the People of the United States, in Order to form a more perfect Union, establish Justice.",
    "if (a < b && c > d) { return \"<\" + tag + \">\"; }",
]
TARGET_TEXT = ["<", "script", ">", "alert", '"', " the", " &", " of", ".", ","]  # feature j fires on these


def tiny_model(d_model: int = 32, seed: int = 0) -> HookedTransformer:
    tok = gpt2_tokenizer()
    cfg = HookedTransformerConfig(n_layers=1, d_model=d_model, d_head=8, n_heads=d_model // 8, d_mlp=64,
                                  d_vocab=len(tok), n_ctx=64, act_fn="gelu_new", normalization_type="LN",
                                  model_name="tiny-dashboard", seed=seed)
    model = HookedTransformer(cfg).eval()
    with torch.no_grad():
        model.W_pos.zero_()
        for b in model.blocks:
            b.attn.W_O.zero_()
            b.attn.b_O.zero_()
            b.mlp.W_out.zero_()
            b.mlp.b_out.zero_()
    model.set_tokenizer(tok, default_padding_side="right")
    return model


def target_ids() -> list[int]:
    tok = gpt2_tokenizer()
    ids = []
    for t in TARGET_TEXT:
        got = tok(t, add_special_tokens=False)["input_ids"]
        assert len(got) == 1, (t, got)
        ids.append(got[0])
    return ids


def dictionary(model: HookedTransformer, n_random: int = 6, seed: int = 0) -> Dictionary:
    """len(TARGET_TEXT) token detectors, then `n_random` random directions."""
    E = model.W_E.detach()
    det = E[target_ids()]  # [n_targets, d]
    g = torch.Generator().manual_seed(seed)
    rnd = torch.randn(n_random, E.shape[1], generator=g)
    W = torch.cat([det / det.norm(dim=1, keepdim=True), rnd / rnd.norm(dim=1, keepdim=True)])  # [F, d]
    thresh = torch.cat([0.9 * det.norm(dim=1), torch.full((n_random,), 0.05)])  # detectors: only their own token

    def encode(x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x @ W.T - thresh)

    return Dictionary(encode=encode, W_dec=W, hook_name=HOOK, model_name=model.cfg.model_name)


def corpus_windows(context_size: int = 24, repeat: int = 6) -> torch.Tensor:
    tok = gpt2_tokenizer()
    bos, sep = special_tokens(tok)
    docs = [tok(t, add_special_tokens=False)["input_ids"] for t in TEXT] * repeat
    return pack_windows(docs, context_size, bos, sep)


def make_cache(model: HookedTransformer, folder, context_size: int = 24):
    return record(model, corpus_windows(context_size), [HOOK], folder, batch_size=8, progress=False)

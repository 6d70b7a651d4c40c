"""The prompt view's data: for each of a set of prompts, which features fire on each token.

Precomputed when the dashboard is built, so the dashboard stays a folder of static files that
opens from disk (no server, no model in the browser). Prompts come from `--prompts FILE` (one
prompt per line, or a .json list of strings) plus a few defaults."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from analyses.dictionary import Dictionary
from interp.errors import InterpError
from interp.sites import hook_layer
from interp.tokens import special_tokens

DEFAULT_PROMPTS = [
    "The capital of France is Paris, and the capital of Japan is Tokyo.",
    "Call me Ishmael. Some years ago - never mind how long precisely - I thought I would sail about a little.",
    "We the People of the United States, in Order to form a more perfect Union, establish Justice.",
    "def mean(xs):\n    return sum(xs) / len(xs)\n",
    'She typed <b>"bold"</b> & then <script>alert(1)</script> into the form.',
]


def read_prompts(path: str | Path | None, defaults: bool = True) -> list[str]:
    """The defaults (unless `defaults` is False) followed by the prompts in `path`."""
    prompts = list(DEFAULT_PROMPTS) if defaults else []
    if path is None:
        return prompts
    p = Path(path)
    if not p.is_file():
        raise InterpError(f"no prompt file at {p}; give a text file with one prompt per line, or a .json list of strings.")
    if p.suffix == ".json":
        try:
            got = json.loads(p.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise InterpError(f"{p} is not valid JSON; give a list of strings, or a text file with one prompt per line.") from None
        if not isinstance(got, list) or not all(isinstance(s, str) for s in got):
            raise InterpError(f"{p} must hold a JSON list of strings.")
    else:
        got = [line for line in p.read_text(errors="replace").splitlines() if line.strip()]
    return prompts + got


def prompt_activations(
    model,
    dictionary: Dictionary,
    prompts: list[str],
    tokenizer,
    features: torch.Tensor | None = None,  # only these features are listed (None: all)
    per_token: int = 16,
    max_tokens: int = 256,
) -> list[dict]:
    """[{text, tokens: [ids], acts: [[[feature, value], ...] per token, largest first]}].

    Each prompt runs as interp's windows do: BOS first (not shown), then the text's tokens."""
    bos, _ = special_tokens(tokenizer)
    layer = hook_layer(dictionary.hook_name)
    device = next(model.parameters()).device
    keep = None if features is None else features.to(device)
    seqs = [([bos] + tokenizer(text, add_special_tokens=False)["input_ids"])[: min(max_tokens, model.cfg.n_ctx)] for text in prompts]
    out = []
    for c0 in range(0, len(seqs), 16):
        chunk = seqs[c0 : c0 + 16]
        n = max(len(s) for s in chunk)
        # one forward for the chunk, padded at the end: attention is causal, so padding after a
        # prompt cannot change its activations
        batch = torch.tensor([s + [bos] * (n - len(s)) for s in chunk], device=device)
        got = {}

        def grab(act, hook):
            got["x"] = act.detach()

        with torch.no_grad(), model.hooks(fwd_hooks=[(dictionary.hook_name, grab)]):
            model(batch, stop_at_layer=layer + 1)
        for j, ids in enumerate(chunk):
            x = got["x"][j, : len(ids)].reshape(len(ids), -1)  # [T, d_in] (attn.hook_z flattened over heads)
            with torch.no_grad():
                z = dictionary.encode(x).float()  # [T, n_features]
            fid = torch.arange(z.shape[1], device=z.device)
            if keep is not None:
                z, fid = z[:, keep], keep
            k = min(per_token, z.shape[1])
            v, i = z[1:].topk(k, dim=1)  # position 0 is BOS: left out, as in the statistics
            acts = [[[f, float(f"{a:.4g}")] for a, f in zip(vals, idx) if a > 0] for vals, idx in zip(v.tolist(), fid[i].tolist())]
            out.append({"text": prompts[c0 + j], "tokens": ids[1:], "acts": acts})
    return out

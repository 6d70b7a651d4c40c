"""What feature statistics need from a dictionary: an encoder and the decoder's directions.

An SAE is one dictionary; a layer's neurons are another, the identity dictionary: every neuron is
a feature whose activation is the neuron's value. Analyses take a `Dictionary` and never look
inside an SAE, so both go through the same code."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from interp.errors import InterpError
from interp.sites import RESIDUAL_HOOKS, hook_layer


@dataclass
class Dictionary:
    encode: Callable[[torch.Tensor], torch.Tensor]  # acts [n, d_in] -> feature activations [n, n_features]
    W_dec: torch.Tensor  # [n_features, d_out]: each feature's output direction
    hook_name: str  # where the activations are read, a TransformerLens hook name
    model_name: str = ""
    # "hook": W_dec rows live where the activations were read (an SAE's decoder);
    # "resid": they are already residual-stream directions (neurons, through W_out)
    decoder_space: str = "hook"
    kind: str = "sae"  # "sae" or "neurons": only changes the words the dashboard uses

    @property
    def n_features(self) -> int:
        return int(self.W_dec.shape[0])


def sae_dictionary(sae) -> Dictionary:
    """An SAE object with .encode, .W_dec and .cfg (d_in, d_sae, hook_name, model_name)."""
    return Dictionary(
        encode=sae.encode,
        W_dec=sae.W_dec.detach().float().cpu(),
        hook_name=sae.cfg.hook_name,
        model_name=getattr(sae.cfg, "model_name", "") or "",
    )


def neuron_dictionary(model, hook: str) -> Dictionary:
    """A layer's neurons at `hook` as the features of the identity dictionary.

    MLP neurons (`mlp.hook_post`) write W_out's rows into the residual stream, so those rows are
    their decoder; residual-stream sites (resid_*, mlp_out, attn_out) are their own basis, so the
    decoder is the identity; `attn.hook_z` dimensions write rows of W_O."""
    layer = hook_layer(hook)
    if hook.endswith("mlp.hook_post"):
        W_dec = model.W_out[layer]  # [d_mlp, d_model]
    elif hook.endswith("attn.hook_z"):
        W_dec = model.W_O[layer].reshape(-1, model.cfg.d_model)  # [n_heads * d_head, d_model]
    elif hook.split(".")[-1] in RESIDUAL_HOOKS:
        W_dec = torch.eye(model.cfg.d_model)
    else:
        raise InterpError(f"neurons at {hook!r} have no output direction; use mlp_post, attn_z or a residual-stream site.")
    return Dictionary(
        encode=_identity,
        W_dec=W_dec.detach().float().cpu(),
        hook_name=hook,
        model_name=model.cfg.model_name,
        decoder_space="resid",
        kind="neurons",
    )


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x

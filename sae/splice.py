"""Splice SAEs into a TransformerLens model at their hooks, with the SAE's parts as hook points.

    with spliced(model, {"blocks.1.hook_resid_post": sae}, error_term=True):
        logits, cache = model.run_with_cache(tokens)
        z = cache["blocks.1.hook_resid_post.hook_sae_acts_post"]

While spliced, the hook point H computes, on the activation x it receives:

    H.hook_sae_input      x                              (attention heads [.., n_heads, d_head] flattened)
    H.hook_sae_acts_post  z = encode(x)                  [..., d_sae]: edit latents here
    H.hook_sae_recons     x_hat = decode(z)
    H.hook_sae_error      x - decode(encode(x))          (the clean reconstruction's error; error_term only)
    H.hook_sae_output     x_hat (+ error)                 what the rest of the model reads

(SAELens's names). With error_term=True and no edit, the output is x to float rounding; an edit
of the latents moves the output by exactly decode(z_edited) - decode(z). Hooks put on H itself
(run_with_hooks, run_with_cache) see the spliced output. The parts are added as children of the
original HookPoint and removed on exit, so nothing else about the model changes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch

from interp.sites import RESIDUAL_HOOKS
from sae.errors import SAEError

PARTS = ("hook_sae_input", "hook_sae_acts_post", "hook_sae_recons", "hook_sae_error", "hook_sae_output")
_ATTR = "_interp_splice"


class _Splice:
    """Holds one spliced SAE and computes the splice for its hook point. `enabled` False lets the
    activation through untouched (generate() runs the default continuation that way)."""

    def __init__(self, sae: Any, error_term: bool):
        self.sae, self.error_term, self.enabled = sae, error_term, True

    def __call__(self, hp: Any, act: torch.Tensor) -> torch.Tensor | None:
        if not self.enabled:
            return None
        sae, d_in = self.sae, self.sae.cfg.d_in
        flat = act.flatten(-2) if act.shape[-1] != d_in and act.ndim >= 2 and act.shape[-2] * act.shape[-1] == d_in else act
        x = hp.hook_sae_input(flat.to(sae.W_dec.dtype))
        z_clean = sae.encode(x)
        x_hat_clean = sae.decode(z_clean)
        z = hp.hook_sae_acts_post(z_clean.clone() if _hooked(hp.hook_sae_acts_post) else z_clean)
        edited = _hooked(hp.hook_sae_acts_post)
        x_hat = hp.hook_sae_recons(sae.decode(z) if edited else x_hat_clean)
        out = x_hat
        if self.error_term:
            out = x_hat + hp.hook_sae_error(x - x_hat_clean)
        out = hp.hook_sae_output(out)
        return out.reshape(act.shape).to(act.dtype)


def _hooked(hp: Any) -> bool:
    return bool(hp._forward_hooks)


def check_sae_fits(model: Any, hook_name: str, sae: Any) -> None:
    """One clear SAEError unless `sae` can read the activations at `hook_name` of `model`."""
    if hook_name not in model.hook_dict:
        raise SAEError(f"the model {getattr(model.cfg, 'model_name', '')!r} has no hook {hook_name!r}; "
                       f"hooks look like blocks.0.hook_resid_post (it has {model.cfg.n_layers} layers).")
    d_in = _site_width(model, hook_name)
    if d_in is not None and d_in != sae.cfg.d_in:
        raise SAEError(f"the SAE reads vectors of size d_in={sae.cfg.d_in} but {hook_name} of this model "
                       f"carries size {d_in}; pass an SAE trained on this model's hook.")


def _site_width(model: Any, hook_name: str) -> int | None:
    cfg, last = model.cfg, hook_name.rsplit(".", 1)[-1]
    if last in RESIDUAL_HOOKS:
        return cfg.d_model
    if ".mlp." in hook_name and last in ("hook_post", "hook_pre", "hook_z0"):
        return cfg.d_mlp
    if last == "hook_z" and ".attn." in hook_name:
        return cfg.n_heads * cfg.d_head
    return None


@contextmanager
def spliced(model: Any, saes: Mapping[str, Any], error_term: bool = True) -> Iterator[Any]:
    """Run `model` with each SAE's reconstruction at its hook (see the module doc). `saes` maps a
    hook name to an SAE; several at once are fine. Yields the model."""
    if not saes:
        raise SAEError("spliced() needs at least one {hook_name: sae}.")
    for name, sae in saes.items():
        check_sae_fits(model, name, sae)
        if getattr(model.hook_dict[name], _ATTR, None) is not None:
            raise SAEError(f"an SAE is already spliced at {name}; leave that splice first.")
    from transformer_lens.hook_points import HookPoint  # heavy: only when splicing

    handles = []
    try:
        for name, sae in saes.items():
            hp = model.hook_dict[name]
            for part in PARTS:
                hp.add_module(part, HookPoint())
            splice = _Splice(sae, error_term)
            object.__setattr__(hp, _ATTR, splice)
            # prepend: the splice runs before any hook a user adds to this point, which then sees
            # the spliced output
            handles.append(hp.register_forward_hook(lambda mod, inp, out, s=splice: s(mod, out), prepend=True))
        model.setup()  # the new children become hook points (hook_dict, names)
        yield model
    finally:
        for h in handles:
            h.remove()
        for name in saes:
            hp = model.hook_dict.get(name) or _find(model, name)
            if hp is None:
                continue
            for part in PARTS:
                if part in hp._modules:
                    hp._modules[part].remove_hooks("both", including_permanent=True)
                    del hp._modules[part]
            if getattr(hp, _ATTR, None) is not None:
                object.__delattr__(hp, _ATTR)
        model.setup()


def _find(model: Any, name: str) -> Any | None:
    return dict(model.named_modules()).get(name)


def splice_at(model: Any, hook_name: str) -> _Splice | None:
    """The splice at hook_name right now (its .sae, .error_term, .enabled), or None."""
    hp = model.hook_dict.get(hook_name)
    return getattr(hp, _ATTR, None) if hp is not None else None


def spliced_sae(model: Any, hook_name: str) -> Any | None:
    """The SAE spliced at hook_name right now, or None."""
    splice = splice_at(model, hook_name)
    return splice.sae if splice is not None else None

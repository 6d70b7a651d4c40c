"""Sites and layers to TransformerLens hook names, checked against the model.

A site names one kind of activation in every block; the hook names are TransformerLens's, so any
tool in the ecosystem (SAELens, Neuronpedia) reads the same activations under the same name."""

from __future__ import annotations

from interp.errors import InterpError

SITES = {
    "resid_pre": "blocks.{L}.hook_resid_pre",
    "resid_mid": "blocks.{L}.hook_resid_mid",
    "resid_post": "blocks.{L}.hook_resid_post",
    "attn_out": "blocks.{L}.hook_attn_out",
    "mlp_out": "blocks.{L}.hook_mlp_out",
    "mlp_post": "blocks.{L}.mlp.hook_post",  # MLP neurons
    "attn_z": "blocks.{L}.attn.hook_z",  # per-head outputs, flattened to n_heads * d_head
}
# the hooks that live in the residual stream's basis (d_model wide), by their last name part
RESIDUAL_HOOKS = ("hook_resid_pre", "hook_resid_mid", "hook_resid_post", "hook_mlp_out", "hook_attn_out")


def parse_ranges(spec: str, skip_empty: bool = False) -> list[int]:
    """'0,6,11', '0-3' or a mix like '0-9,42' -> the integers in that order (ValueError if unreadable);
    skip_empty: empty parts ('1,,2', a trailing comma) are passed over instead of refused."""
    out: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        if "-" in part[1:]:
            lo, hi = part.split("-", 1)
            out.extend(range(int(lo), int(hi) + 1))
        elif part or not skip_empty:
            out.append(int(part))
    return out


def parse_layers(spec: str | list[int], n_layers: int) -> list[int]:
    """'all', '0,6,11', '0-3' or a list -> sorted unique layers, each checked against the model."""
    if isinstance(spec, str):
        spec = spec.strip()
        if spec == "all":
            return list(range(n_layers))
        try:
            layers = parse_ranges(spec)
        except ValueError:
            raise InterpError(f"cannot read layers {spec!r}: use 'all', a list like '0,6,11' or a range like '0-3'.") from None
    else:
        layers = [int(x) for x in spec]
    for layer in layers:
        if not 0 <= layer < n_layers:
            raise InterpError(f"layer {layer} does not exist: this model has layers 0 to {n_layers - 1}.")
    if not layers:
        raise InterpError("no layers given: use 'all' or a list like '0,6,11'.")
    return sorted(set(layers))


def hook_name(site: str, layer: int) -> str:
    if site not in SITES:
        raise InterpError(f"unknown site {site!r}: choose one of {', '.join(SITES)}.")
    return SITES[site].format(L=layer)


def hook_layer(name: str) -> int:
    """'blocks.7.hook_resid_post' -> 7."""
    parts = name.split(".")
    if len(parts) < 3 or parts[0] != "blocks" or not parts[1].isdigit():
        raise InterpError(f"{name!r} is not a per-block TransformerLens hook name like 'blocks.7.hook_resid_post'.")
    return int(parts[1])


def hook_width(model, name: str) -> int:
    """The width of one token's activation at a hook (hook_z is flattened over heads)."""
    cfg = model.cfg
    if name not in model.hook_dict:
        raise InterpError(f"the model has no hook {name!r}.")
    if name.endswith("mlp.hook_post") or name.endswith("mlp.hook_pre"):
        if cfg.d_mlp is None:
            raise InterpError(f"{name!r}: this model has no MLP neurons.")
        return int(cfg.d_mlp)
    if name.endswith("attn.hook_z"):
        return int(cfg.n_heads * cfg.d_head)
    return int(cfg.d_model)


def check_context(model, context_size: int) -> None:
    """Windows longer than the model's positional range would fail deep inside the forward."""
    n_ctx = int(model.cfg.n_ctx)
    if context_size > n_ctx:
        raise InterpError(f"--context-size {context_size} is longer than the {n_ctx} positions {model.cfg.model_name} reads; use at most {n_ctx}.")


def stop_layer(names: list[str]) -> int:
    """The `stop_at_layer` that runs just far enough to reach every hook in `names`."""
    return max(hook_layer(n) for n in names) + 1

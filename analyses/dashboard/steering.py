"""The steering example of a feature page: on a few fixed prompts, the model's default continuation
next to the continuation with the feature steered (added to, or clamped at, a multiple of its max
activation), both sampled from the same seed, as Neuronpedia shows them.

Precomputed when the dashboard is built, and only when asked (`interp dashboard --steer-prompts
default|FILE`): each prompt's default continuation is made once, and each feature costs prompts x
(one prompt forward + max_new_tokens one-position forwards with a KV cache) for its steered one
(bench/results/dashboard_steering.md has the time per feature before and after)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from interp.errors import InterpError
from interp.sites import RESIDUAL_HOOKS, hook_layer
from sae import Add, Clamp, Direction, Latent, Neuron, generate

DEFAULT_STEER_PROMPTS = ["I think that", "The best way to spend a weekend is", "Once upon a time,"]
MODES = ("add", "clamp")


@dataclass(frozen=True)
class SteerConfig:
    prompts: tuple[str, ...]
    strength: float = 5.0  # x the feature's max activation over the dashboard's tokens
    mode: str = "add"  # add: the unit's value + strength x max; clamp: the unit set to strength x max
    max_new_tokens: int = 16
    seed: int = 0
    temperature: float = 1.0

    def __post_init__(self):
        if self.mode not in MODES:
            raise InterpError(f"the steering mode must be one of {', '.join(MODES)}, got {self.mode!r}.")
        if not torch.isfinite(torch.tensor(float(self.strength))):
            raise InterpError(f"--steer-strength must be a finite number, got {self.strength!r}.")
        if not (torch.isfinite(torch.tensor(float(self.temperature))) and self.temperature >= 0):
            raise InterpError(f"--steer-temperature must be finite and >= 0, got {self.temperature!r}.")
        if self.max_new_tokens < 1:
            raise InterpError(f"--steer-tokens must be at least 1, got {self.max_new_tokens}.")
        if not self.prompts or any(not p.strip() for p in self.prompts):
            raise InterpError("every steering prompt must hold some text (the prompt file has an empty one, or none).")


def steering_unit(kind: str, hook: str, sae: Any = None, width: int | None = None) -> Callable[[int], Any]:
    """feature id -> the sae unit that steering edits: an SAE's latent, an MLP neuron (or CRATE code
    entry), or a coordinate of a residual-stream site `width` wide."""
    if kind != "neurons":
        return lambda f: Latent(hook, f, sae=sae)
    if hook.endswith("mlp.hook_post"):
        layer = hook_layer(hook)
        return lambda f: Neuron(layer, f)
    if hook.rsplit(".", 1)[-1] in RESIDUAL_HOOKS and width:
        return lambda f: Direction(hook, torch.nn.functional.one_hot(torch.tensor(f), width).float())
    raise InterpError(f"steering examples edit SAE latents, MLP neurons or residual coordinates; {hook} neurons "
                      "cannot be steered one at a time (drop --steer-prompts).")


def check_steering(model: Any, cfg: SteerConfig) -> None:
    """Refuse, before any work, prompts that with max_new_tokens overrun the model's context."""
    for p in cfg.prompts:
        n = int(model.to_tokens(p).shape[1])
        if n + cfg.max_new_tokens > model.cfg.n_ctx:
            raise InterpError(f"the steering prompt {p[:40]!r} ({n} tokens) plus --steer-tokens {cfg.max_new_tokens} exceeds "
                              f"the model's context of {model.cfg.n_ctx}; shorten it or lower --steer-tokens.")


def steering_examples(model: Any, unit_of: Callable[[int], Any], features: list[int], maxes: list[float],
                      cfg: SteerConfig, progress: Callable[[int], None] | None = None) -> dict[int, dict]:
    """{feature: {"value": the edit's value, "runs": [{prompt, default: [ids], steered: [ids]}]}};
    a feature that never fired (max 0) gets value None and no runs. The default continuation does
    not depend on the feature (the default run never edits), so each prompt's is made once, with
    the first feature's, and every later feature runs only its steered continuation."""
    out: dict[int, dict] = {}
    defaults: dict[str, Any] = {}
    for f, mx in zip(features, maxes):
        if not mx > 0:
            out[f] = {"value": None, "runs": []}
        else:
            value = float(cfg.strength * mx)
            unit = unit_of(f)
            edit = Add(unit, value) if cfg.mode == "add" else Clamp(unit, value)
            runs = []
            for p in cfg.prompts:
                g = generate(model, p, [edit], seed=cfg.seed, max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature,
                             default=defaults.get(p))
                defaults[p] = g.default
                runs.append({"prompt": p, "default": g.default.tokens, "steered": g.steered.tokens})
            out[f] = {"value": value, "runs": runs}
        if progress is not None:
            progress(1)
    return out


"""Units an intervention acts on: an SAE latent, a neuron (or CRATE code entry), a direction.

    Latent("blocks.1.hook_resid_post", 42, sae=sae)   # read and edited at {hook}.hook_sae_acts_post
    Neuron(1, 7)                                       # blocks.1.mlp.hook_post (GPT-2 neurons, CRATE's code z)
    Neuron(1, 7, site="hook_z0")                       # CRATE's first ISTA estimate: the second step re-solves
    Direction("blocks.1.hook_resid_post", v)           # the projection on v / |v|

Each unit knows its hook point (`point`), reads its value [batch, pos] from that point's
activation and writes a new value back (`write`). A latent needs its SAE spliced at `hook`: pass
`sae=` and apply() splices it (with the error term) for the duration, or splice it yourself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from sae.errors import SAEError
from sae.splice import check_sae_fits, spliced_sae


class _Coordinate:
    """A unit that is one coordinate (`index`) of the activation at its hook point."""

    index: int

    def read(self, act: torch.Tensor) -> torch.Tensor:
        return act[..., self.index]

    def write(self, act: torch.Tensor, old: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
        act[..., self.index] = new
        return act


@dataclass(frozen=True, eq=False)
class Latent(_Coordinate):
    hook: str
    index: int
    sae: Any = None

    @property
    def point(self) -> str:
        return f"{self.hook}.hook_sae_acts_post"

    def resolve_sae(self, model: Any) -> Any:
        sae = self.sae if self.sae is not None else spliced_sae(model, self.hook)
        if sae is None:
            raise SAEError(f"latent {self.index} at {self.hook} needs its SAE: pass Latent(..., sae=sae) "
                           "or run inside sae.spliced(model, {hook: sae}).")
        return sae

    def check(self, model: Any) -> None:
        sae = self.resolve_sae(model)
        check_sae_fits(model, self.hook, sae)
        _check_index(self.index, sae.cfg.d_sae, f"latent (feature) id at {self.hook}; the SAE has d_sae")

    def read_raw(self, model: Any, act: torch.Tensor) -> torch.Tensor:
        """The latent's value from the raw activation at `hook` (no splice needed)."""
        sae = self.resolve_sae(model)
        flat = act.flatten(-2) if act.shape[-1] != sae.cfg.d_in and act.ndim == 4 else act
        return sae.encode(flat)[..., self.index]

    @property
    def raw_point(self) -> str:
        return self.hook

    def describe(self) -> str:
        return f"latent {self.index} at {self.hook}"


@dataclass(frozen=True, eq=False)
class Neuron(_Coordinate):
    layer: int
    index: int
    site: str = "hook_post"  # blocks.L.mlp.<site>: hook_post (MLP neurons, CRATE's code), hook_z0 (CRATE)

    @property
    def point(self) -> str:
        return f"blocks.{self.layer}.mlp.{self.site}"

    raw_point = point

    def check(self, model: Any) -> None:
        n = model.cfg.n_layers
        if not isinstance(self.layer, int) or not 0 <= self.layer < n:
            raise SAEError(f"layer {self.layer} is not in the model, which has layers 0..{n - 1}.")
        if self.point not in model.hook_dict:
            raise SAEError(f"the model has no hook {self.point} (hook_z0 exists only in CRATE models).")
        _check_index(self.index, model.cfg.d_mlp, "neuron id; the MLP has d_mlp")

    def read_raw(self, model: Any, act: torch.Tensor) -> torch.Tensor:
        return act[..., self.index]

    def describe(self) -> str:
        return f"neuron {self.index} at {self.point}"


@dataclass(frozen=True, eq=False)
class Direction:
    hook: str
    vector: torch.Tensor
    unit: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self):
        v = torch.as_tensor(self.vector, dtype=torch.float32).flatten()
        norm = float(v.norm())
        if not torch.isfinite(v).all() or norm == 0:
            raise SAEError("a direction must be a finite, non-zero vector.")
        object.__setattr__(self, "unit", v / norm)

    @property
    def point(self) -> str:
        return self.hook

    raw_point = point

    def check(self, model: Any) -> None:
        if self.hook not in model.hook_dict:
            raise SAEError(f"the model has no hook {self.hook!r}; directions live at residual hooks such as "
                           f"blocks.0.hook_resid_post (it has {model.cfg.n_layers} layers).")
        if ".hook_sae_" not in self.hook and self.hook.rsplit(".", 1)[-1].startswith("hook_resid") \
                and self.unit.numel() != model.cfg.d_model:
            raise SAEError(f"the direction has {self.unit.numel()} entries but {self.hook} has d_model="
                           f"{model.cfg.d_model}.")

    def _u(self, act: torch.Tensor) -> torch.Tensor:
        if act.shape[-1] != self.unit.numel():
            raise SAEError(f"the direction has {self.unit.numel()} entries but {self.hook} carries "
                           f"vectors of size {act.shape[-1]}.")
        return self.unit.to(act.device, act.dtype)

    def read(self, act: torch.Tensor) -> torch.Tensor:
        return act @ self._u(act)

    def write(self, act: torch.Tensor, old: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
        return act + (new - old)[..., None] * self._u(act)

    def read_raw(self, model: Any, act: torch.Tensor) -> torch.Tensor:
        return self.read(act)

    def describe(self) -> str:
        return f"direction at {self.hook}"


Unit = Latent | Neuron | Direction


def _check_index(index: Any, size: int, what: str) -> None:
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < size:
        raise SAEError(f"{index!r} is not a valid {what} {size} (ids 0..{size - 1}).")

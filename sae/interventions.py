"""Interventions on units (sae/units.py), applied as TransformerLens hooks by one context:

    with apply(model, [Clamp(Latent(hook, 42, sae=sae), 5.0), Ablate(Neuron(1, 7), positions="firing")]):
        logits = model(tokens)

- Ablate(unit, value="zero" | "mean", mean=None): set the unit to 0, or to its mean (`mean=`, else
  the mean over every position of the current forward pass).
- Clamp(unit, value): set the unit to `value`.
- Add(unit, alpha): add alpha to the unit's value; for a Direction that is alpha * v / |v| added to
  the activation, for an SAE latent alpha * W_dec[i] added to the reconstruction.
- positions: "all", "firing" (where the unit's own value is > 0 before the edit), a list of
  token positions (absolute: apply().offset counts the positions already in a KV cache), or a
  [batch, pos] bool tensor shaped like the forward pass it is applied to.

Several interventions at one hook run in the order given. apply() splices the SAE of every
Latent that brings one (error_term=True) unless one is already spliced at its hook.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from sae.errors import SAEError
from sae.splice import splice_at, spliced
from sae.units import Direction, Latent, Neuron

Positions = str | Sequence[int] | torch.Tensor


def _finite(x: Any, what: str) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise SAEError(f"{what} must be a number, got {x!r}.") from None
    if not math.isfinite(v):
        raise SAEError(f"{what} must be finite, got {x!r}.")
    return v


def _check_positions(p: Any) -> Positions:
    if isinstance(p, torch.Tensor):
        if p.dtype != torch.bool or p.ndim != 2:
            raise SAEError(f"a positions mask is a [batch, pos] bool tensor, got {p.dtype} of shape {tuple(p.shape)}.")
        return p
    if p in ("all", "firing"):
        return p
    if isinstance(p, str) or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in p):
        raise SAEError(f"positions must be 'all', 'firing' or a list of token positions >= 0, got {p!r}.")
    return tuple(p)


class _Checked:
    """Checks an intervention's fields on construction: `positions`, and the field named by `number`
    (Clamp's value, Add's alpha) made a finite float, with `number`'s words in the error."""

    number: tuple[str, str] | None = None  # (field, how an error names it)

    def __post_init__(self):
        if self.number is not None:
            field, what = self.number
            object.__setattr__(self, field, _finite(getattr(self, field), what))
        object.__setattr__(self, "positions", _check_positions(self.positions))


@dataclass(frozen=True, eq=False)
class Ablate(_Checked):
    unit: Any
    value: str = "zero"
    mean: float | None = None
    positions: Positions = "all"

    def __post_init__(self):
        if self.value not in ("zero", "mean"):
            raise SAEError(f"Ablate value must be 'zero' or 'mean', got {self.value!r}.")
        if self.mean is not None:
            object.__setattr__(self, "mean", _finite(self.mean, "the mean"))
        super().__post_init__()

    def edit(self, old: torch.Tensor) -> torch.Tensor:
        if self.value == "zero":
            return torch.zeros_like(old)
        m = self.mean if self.mean is not None else float(old.mean())
        return torch.full_like(old, m)


@dataclass(frozen=True, eq=False)
class Clamp(_Checked):
    unit: Any
    value: float
    positions: Positions = "all"
    number = ("value", "the clamp value")

    def edit(self, old: torch.Tensor) -> torch.Tensor:
        return torch.full_like(old, self.value)


@dataclass(frozen=True, eq=False)
class Add(_Checked):
    unit: Any
    alpha: float
    positions: Positions = "all"
    number = ("alpha", "the strength alpha")

    def edit(self, old: torch.Tensor) -> torch.Tensor:
        return old + self.alpha


Intervention = Ablate | Clamp | Add


class Applied:
    """What apply() yields. `enabled` False makes every edit (and the splices apply() made) a
    no-op; `offset` is the number of positions before the current forward's first one (KV cache);
    with `record` True each intervention's pre-edit unit values [batch, pos] are appended to
    `records[i]`."""

    def __init__(self, interventions: Sequence[Any]):
        self.interventions = list(interventions)
        self.enabled = True
        self.offset = 0
        self.record = False
        self.records: list[list[torch.Tensor]] = [[] for _ in self.interventions]
        self.splices: list[Any] = []

    def set_enabled(self, on: bool) -> None:
        self.enabled = on
        for s in self.splices:
            s.enabled = on

    def hook_for(self, i: int):
        iv = self.interventions[i]
        unit = iv.unit

        def hook(act: torch.Tensor, hook: Any) -> torch.Tensor | None:
            if not self.enabled:
                return None
            old = unit.read(act)
            if self.record:
                self.records[i].append(old.detach().clone())
            new = iv.edit(old)
            mask = position_mask(iv.positions, old, self.offset)
            if mask is not None:
                new = torch.where(mask, new, old)
            return unit.write(act.clone() if not isinstance(unit, Direction) else act, old, new)
        return hook


def position_mask(positions: Positions, old: torch.Tensor, offset: int = 0) -> torch.Tensor | None:
    """[batch, pos] bool of where an edit applies (None: everywhere)."""
    if isinstance(positions, torch.Tensor):
        if positions.shape != old.shape:
            raise SAEError(f"the positions mask has shape {tuple(positions.shape)} but the unit's values at this "
                           f"forward pass have shape {tuple(old.shape)}.")
        return positions.to(old.device)
    if positions == "all":
        return None
    if positions == "firing":
        return old > 0
    mask = torch.zeros(old.shape[-1], dtype=torch.bool, device=old.device)
    idx = [p - offset for p in positions if 0 <= p - offset < old.shape[-1]]
    if idx:
        mask[torch.tensor(idx, device=old.device)] = True
    return mask.expand_as(old)


def check_interventions(model: Any, interventions: Sequence[Any]) -> None:
    for iv in interventions:
        if not isinstance(iv, (Ablate, Clamp, Add)):
            raise SAEError(f"an intervention is Ablate, Clamp or Add, got {type(iv).__name__}.")
        if not isinstance(iv.unit, (Latent, Neuron, Direction)):
            raise SAEError(f"a unit is sae.Latent, sae.Neuron or sae.Direction, got {type(iv.unit).__name__}.")
        iv.unit.check(model)


@contextmanager
def apply(model: Any, interventions: Sequence[Any]) -> Iterator[Applied]:
    """Run `model` with the interventions (see the module doc); yields an Applied."""
    interventions = list(interventions)
    check_interventions(model, interventions)
    applied = Applied(interventions)
    with ExitStack() as stack:
        to_splice = {}
        for iv in interventions:
            u = iv.unit
            if isinstance(u, Latent) and u.sae is not None and splice_at(model, u.hook) is None:
                to_splice.setdefault(u.hook, u.sae)
        if to_splice:
            stack.enter_context(spliced(model, to_splice, error_term=True))
            applied.splices = [splice_at(model, h) for h in to_splice]
        hooks = [(iv.unit.point, applied.hook_for(i)) for i, iv in enumerate(interventions)]
        stack.enter_context(model.hooks(fwd_hooks=hooks))
        yield applied


@contextmanager
def apply_stacked(model: Any, groups: Sequence[Sequence[Any]]) -> Iterator[list[Applied]]:
    """apply() for a batch that stacks len(groups) copies of the same inputs along the batch
    dimension: group g's interventions edit only the g-th block of rows, with masks shaped like one
    block. Several edits then share one forward pass; each block equals apply() with its group alone."""
    groups = [list(g) for g in groups]
    for g in groups:
        check_interventions(model, g)
        if any(isinstance(iv.unit, Latent) and iv.unit.sae is not None and splice_at(model, iv.unit.hook) is None for iv in g):
            raise SAEError("apply_stacked needs every Latent's SAE spliced already (sae.spliced).")
    applied = [Applied(g) for g in groups]

    def hook_at(point: str):
        fns = [[a.hook_for(i) for i, iv in enumerate(a.interventions) if iv.unit.point == point] for a in applied]

        def hook(act: torch.Tensor, hook: Any) -> torch.Tensor:
            if act.shape[0] % len(groups):
                raise SAEError(f"a stacked batch of {act.shape[0]} rows does not split into {len(groups)} groups.")
            blocks = list(act.chunk(len(groups)))
            for g, fs in enumerate(fns):
                for f in fs:
                    new = f(blocks[g], hook)
                    blocks[g] = blocks[g] if new is None else new
            return torch.cat(blocks)
        return hook

    points = sorted({iv.unit.point for g in groups for iv in g})
    with model.hooks(fwd_hooks=[(p, hook_at(p)) for p in points]):
        yield applied

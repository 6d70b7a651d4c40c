"""Architectures by name. A new architecture is a new file holding an `@register`ed SAE
subclass (plus its module name in BUILTIN if it ships with this package); nothing else changes.
Names are ours (relu, topk, batchtopk, jumprelu); each class's `saelens_name` maps to and from
the "architecture" of a SAELens cfg.json."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from sae.errors import SAEError

if TYPE_CHECKING:
    from sae.base import SAE
    from sae.config import SAEConfig

ARCHITECTURES: dict[str, type[SAE]] = {}


def register(cls: type[SAE]) -> type[SAE]:
    ARCHITECTURES[cls.name] = cls
    return cls


BUILTIN = ("relu", "topk", "batchtopk", "jumprelu")  # the files that register themselves


def _load_builtins() -> None:
    # imported here, not at the top, because each architecture file imports `register`
    for module in BUILTIN:
        importlib.import_module(f"sae.{module}")


def get_architecture(name: str) -> type[SAE]:
    """The SAE class for one of our names, or for a SAELens architecture name."""
    _load_builtins()
    if name in ARCHITECTURES:
        return ARCHITECTURES[name]
    for cls in ARCHITECTURES.values():
        if cls.saelens_name == name:
            return cls
    raise SAEError(f"unknown SAE architecture {name!r}; choose one of {', '.join(sorted(ARCHITECTURES))}.")


def architecture_names() -> list[str]:
    _load_builtins()
    return sorted(ARCHITECTURES)


def create_sae(cfg: SAEConfig) -> SAE:
    """An SAE of cfg.architecture with zero weights (the trainer initialises them)."""
    return get_architecture(cfg.architecture)(cfg)

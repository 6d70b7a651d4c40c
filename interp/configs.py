"""Dataclass configs to JSON-ready dicts and back, one way for every config that is saved with a
run (the LM trainer's, the SAEs')."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any, TypeVar

C = TypeVar("C", bound="DictConfig")


class DictConfig:
    """to_dict() and from_dict() for a dataclass. from_dict() passes over keys that are not fields
    (a file written by another tool or version may carry more), and a missing one takes its default."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls: type[C], d: dict[str, Any]) -> C:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

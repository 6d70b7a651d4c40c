"""Errors a user can cause while building, training, saving or loading an SAE.

`SAEError` subclasses `interp.errors.InterpError`, so the command line prints it as one line."""

from __future__ import annotations

from interp.errors import InterpError
from interp.training import TrainingDiverged


class SAEError(InterpError):
    """Something the user can fix: one sentence saying what was wrong and what to do."""


__all__ = ["SAEError", "TrainingDiverged"]  # TrainingDiverged: the one divergence error of both trainers

"""Errors a user can cause while building, training, saving or loading an SAE.

`SAEError` subclasses `interp.errors.InterpError`, so the command line prints it as one line."""

from __future__ import annotations

from interp.errors import InterpError


class SAEError(InterpError):
    """Something the user can fix: one sentence saying what was wrong and what to do."""


class TrainingDiverged(SAEError):
    """The loss or a gradient became NaN or infinite; the last good checkpoint is kept on disk."""

"""Where interp keeps what it fetches and converts: $INTERP_HOME, default ~/.cache/interp."""

from __future__ import annotations

import os
from pathlib import Path


def interp_home() -> Path:
    """The cache root. Created on first use."""
    home = Path(os.environ.get("INTERP_HOME", "~/.cache/interp")).expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home

"""The project's pyproject.toml as a dict, on every Python that requires-python allows: tomllib
is in the standard library from 3.11; on 3.10 the dev extra brings tomli, the same parser."""

from __future__ import annotations

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def pyproject() -> dict:
    return tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))

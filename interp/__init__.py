"""interp: record a transformer's activations, train sparse autoencoders, read features by depth.

The front door. The same operations as the `interp` command line, as plain functions:

    model = interp.load_model("smollm2-135m")
    windows = interp.token_windows("offline", model.tokenizer, context_size=128, max_tokens=100_000)
    cache = interp.record(model, windows, ["blocks.15.hook_resid_post"], "runs/acts")
"""

from __future__ import annotations

__version__ = "0.1.0"

_EXPORTS = {
    "load_model": "interp.models",
    "fetch_model": "interp.models",
    "fetch_text": "interp.corpus",
    "iter_documents": "interp.text",
    "token_windows": "interp.tokens",
    "record": "interp.recording",
    "ActivationStore": "interp.store",
    "ActivationCache": "interp.store",  # deprecated name of ActivationStore
    "stream_activations": "interp.stream",
    "hook_name": "interp.sites",
    "parse_layers": "interp.sites",
    "InterpError": "interp.errors",
}


def __getattr__(name: str):
    # lazy, so `interp --help` does not pay for importing torch and transformer-lens
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'interp' has no attribute {name!r}")


__all__ = list(_EXPORTS)

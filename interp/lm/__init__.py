"""Language models trained from scratch: GPT-2 and CRATE (the white-box architecture of the
CRATE-LM paper), both as TransformerLens HookedTransformers with the standard hook names.

    cfg = LMConfig(arch="crate", n_layers=2, d_model=256, n_heads=4, d_vocab=8192)
    train_lm(cfg, TrainLMConfig(tokens=5_000_000), "offline", "bpe-8192", "runs/lm/crate-2l")
    model = interp.load_model("runs/lm/crate-2l")
"""

from __future__ import annotations

_EXPORTS = {
    "LMConfig": "interp.lm.config",
    "TrainLMConfig": "interp.lm.config",
    "build_model": "interp.lm.build",
    "train_lm": "interp.lm.train",
    "save_lm_folder": "interp.lm.folder",
    "load_lm_folder": "interp.lm.folder",
    "MARKER": "interp.lm.folder",
    "lm_tokenizer": "interp.lm.bpe",
}


def __getattr__(name: str):
    if name in _EXPORTS:  # lazy: importing interp.lm.config must not pull in transformer-lens
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'interp.lm' has no attribute {name!r}")


__all__ = list(_EXPORTS)

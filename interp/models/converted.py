"""interp's on-disk form of a converted HookedTransformer: a folder holding

    hooked_config.json   the HookedTransformerConfig (weights already processed: norms folded)
    model.safetensors    the state dict, float32
    tokenizer files      written by the tokenizer's save_pretrained (absent if it has none)

Loading it needs neither the Hub nor the original checkpoint, and no conversion work.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from interp.files import write_text_atomic
from interp.weights import load_weights, save_weights

MARKER = "hooked_config.json"
WEIGHTS = "model.safetensors"


def save_converted(model, folder: Path) -> None:
    """Write `model` (a HookedTransformer) and its tokenizer into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    save_weights(model, folder / WEIGHTS)
    if model.tokenizer is not None:
        model.tokenizer.save_pretrained(str(folder))
    cfg = dict(model.cfg.to_dict())  # to_dict hands back the live __dict__
    cfg["dtype"] = "float32"
    cfg.pop("device", None)
    cfg["tokenizer_name"] = None  # the tokenizer is in the folder; a Hub name would be looked up online
    write_text_atomic(folder / MARKER, json.dumps(cfg, indent=1, sort_keys=True) + "\n")


def load_converted(folder: Path, device: torch.device, dtype: torch.dtype):
    """The HookedTransformer saved in `folder` by save_converted."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    fields = json.loads((folder / MARKER).read_text())
    fields.update(dtype=torch.float32, device=device.type, init_weights=False)
    cfg = HookedTransformerConfig.from_dict(fields)
    model = HookedTransformer(cfg, _tokenizer(folder), move_to_device=False)
    load_weights(model, folder / WEIGHTS, folder / MARKER, "delete the folder and fetch or convert the model again", assign=True)
    model.to(device, print_details=False)
    if dtype != torch.float32:
        model.to(dtype, print_details=False)
    return model.eval()


def _tokenizer(folder: Path):
    if not any((folder / f).exists() for f in ("tokenizer.json", "tokenizer_config.json", "vocab.json")):
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)

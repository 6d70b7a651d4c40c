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

from interp.errors import InterpError
from interp.files import write_text_atomic

MARKER = "hooked_config.json"
WEIGHTS = "model.safetensors"


def save_converted(model, folder: Path) -> None:
    """Write `model` (a HookedTransformer) and its tokenizer into `folder`."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    buffers = {name for name, _ in model.named_buffers()}  # masks and rotary tables are rebuilt from cfg
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items() if k not in buffers}
    save_file(state, str(folder / WEIGHTS))
    if model.tokenizer is not None:
        model.tokenizer.save_pretrained(str(folder))
    cfg = dict(model.cfg.to_dict())  # to_dict hands back the live __dict__
    cfg["dtype"] = "float32"
    cfg.pop("device", None)
    cfg["tokenizer_name"] = None  # the tokenizer is in the folder; a Hub name would be looked up online
    write_text_atomic(folder / MARKER, json.dumps(cfg, indent=1, sort_keys=True) + "\n")


def load_converted(folder: Path, device: torch.device, dtype: torch.dtype):
    """The HookedTransformer saved in `folder` by save_converted."""
    from safetensors.torch import load_file
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    fields = json.loads((folder / MARKER).read_text())
    fields.update(dtype=torch.float32, device=device.type, init_weights=False)
    cfg = HookedTransformerConfig.from_dict(fields)
    model = HookedTransformer(cfg, _tokenizer(folder), move_to_device=False)
    missing, unexpected = model.load_state_dict(load_file(str(folder / WEIGHTS)), strict=False, assign=True)
    buffers = {name for name, _ in model.named_buffers()}
    if unexpected or set(missing) - buffers:
        raise InterpError(f"{folder / WEIGHTS} does not match {folder / MARKER} (missing {sorted(set(missing) - buffers)[:3]}, unexpected {unexpected[:3]}); delete the folder and fetch or convert the model again.")
    model.to(device, print_details=False)
    if dtype != torch.float32:
        model.to(dtype, print_details=False)
    return model.eval()


def _tokenizer(folder: Path):
    if not any((folder / f).exists() for f in ("tokenizer.json", "tokenizer_config.json", "vocab.json")):
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)

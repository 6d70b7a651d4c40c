"""A trained model's folder, which `interp.load_model(DIR)` reads:

    interp_lm.json       the marker: format, LMConfig, tokenizer, training summary (written last)
    model.safetensors    the state dict, float32, exactly as trained (no weight processing)
    tokenizer files      the tokenizer's save_pretrained
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from interp.errors import InterpError
from interp.files import write_error, write_json_atomic
from interp.lm.bpe import load_tokenizer
from interp.lm.build import build_model
from interp.lm.config import LMConfig
from interp.weights import load_weights, save_weights

MARKER = "interp_lm.json"
WEIGHTS = "model.safetensors"
FORMAT = 1


def save_lm_folder(model, cfg: LMConfig, folder: str | Path, training: dict | None = None) -> Path:
    """Write `model` (built by build_model from `cfg`), its tokenizer and the marker into `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARKER).unlink(missing_ok=True)  # the folder is not a model until the marker is back
    save_weights(model, folder / WEIGHTS)
    tok = model.tokenizer
    if tok is not None:
        try:
            tok.save_pretrained(str(folder))
        except OSError as e:
            raise write_error(folder, e) from None
    marker = {
        "format": FORMAT,
        "kind": "interp trained language model",
        "config": cfg.to_dict(),
        "tokenizer": None if tok is None else {"vocab_size": len(tok), "bos_token_id": tok.bos_token_id,
                                               "class": type(tok).__name__},
        "training": training or {},
    }
    write_json_atomic(folder / MARKER, marker)
    return folder


def load_lm_folder(folder: Path, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
    """The model saved in `folder`, with the logits it had when saved."""

    folder = Path(folder)
    marker = read_marker(folder)
    cfg = LMConfig.from_dict(marker["config"])
    tokenizer = None
    if (folder / "tokenizer_config.json").exists():
        tokenizer = load_tokenizer(folder)
    model = build_model(cfg, tokenizer, init=False, name=folder.resolve().name)
    load_weights(model, folder / WEIGHTS, folder / MARKER, "train or copy the model again")
    model.to(torch.device(device), print_details=False)
    if dtype != torch.float32:
        model.to(dtype, print_details=False)
    return model.eval()


def read_marker(folder: Path) -> dict:
    try:
        marker = json.loads((Path(folder) / MARKER).read_text())
    except (OSError, ValueError):
        raise InterpError(f"{folder} holds no readable {MARKER}; it is not a finished `interp train-lm` model.") from None
    if marker.get("format") != FORMAT:
        raise InterpError(f"{folder / MARKER} has format {marker.get('format')}, this interp reads {FORMAT}; upgrade interp.")
    return marker

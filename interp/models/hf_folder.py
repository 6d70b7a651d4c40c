"""A local Hugging Face folder (config.json + weights) of GPT-2 or Llama architecture, read from
disk only and converted to a HookedTransformer."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from interp.errors import InterpError
from interp.gpt2_tokenizer import gpt2_tokenizer
from interp.models.convert import ARCHITECTURES, hooked_from_hf

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")


def load_hf_folder(folder: Path, device: torch.device, dtype: torch.dtype, processing: bool = True):
    kind = json.loads((folder / "config.json").read_text()).get("model_type")
    if kind not in ARCHITECTURES:
        raise InterpError(f"{folder} holds a '{kind}' model; interp converts Hugging Face folders of GPT-2 or Llama architecture only.")
    from transformers import AutoModelForCausalLM

    try:
        hf_model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32, local_files_only=True)
    except OSError as e:  # no weights file, or a broken one
        raise InterpError(f"cannot read the model weights in {folder} ({str(e).splitlines()[0]}); save the model there with save_pretrained.") from None
    tokenizer = _tokenizer(folder, kind)
    model = hooked_from_hf(hf_model, tokenizer, folder.name, default_prepend_bos=_prepend_bos(kind, tokenizer),
                           processing=processing)
    model.to(device, print_details=False)
    if dtype != torch.float32:
        model.to(dtype, print_details=False)
    return model


def _tokenizer(folder: Path, kind: str):
    if any((folder / f).exists() for f in TOKENIZER_FILES):
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    if kind == "gpt2":
        return gpt2_tokenizer()
    return None  # still usable on token ids


def _prepend_bos(kind: str, tokenizer) -> bool:
    """GPT-2: TransformerLens's default (True). Llama: whatever the model's own tokenizer does."""
    if kind == "gpt2" or tokenizer is None:
        return True
    return bool(getattr(tokenizer, "add_bos_token", False))

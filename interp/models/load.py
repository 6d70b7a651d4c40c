"""load_model: one entry point for every kind of model interp reads."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors import SafetensorError

from interp.device import pick_device
from interp.errors import InterpError
from interp.lm.folder import MARKER as LM_MARKER
from interp.lm.folder import load_lm_folder
from interp.models import smollm2
from interp.models.convert import hooked_from_hf
from interp.models.converted import MARKER as CONVERTED_MARKER
from interp.models.converted import load_converted
from interp.models.fetch import OFFLINE_MODELS, fetch_model
from interp.models.hf_folder import load_hf_folder
from interp.models.hub import OFFLINE_CHOICES, load_from_hub, tl_official_name
from interp.models.processing import NO_PROCESSING, processing_kwargs

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer

Loader = Callable[[torch.device, torch.dtype, bool], "HookedTransformer"]


def _converted(folder: Path, device: torch.device, dtype: torch.dtype, processing: bool = True):
    """interp's converted form holds processed weights; unprocessed ones are converted again from
    the original weights kept beside them (SmolLM2's GGUF file), which other converted folders lack."""
    if processing:
        return load_converted(folder, device, dtype)
    gguf = folder / smollm2.GGUF_DIR
    if not (gguf / smollm2.GGUF).is_file():
        raise InterpError(f"{folder} holds weights already processed by TransformerLens and not the original ones, so "
                          "--no-processing cannot be honoured; load it without --no-processing.")
    hf_model, tokenizer = smollm2.load_gguf(gguf)
    model = hooked_from_hf(hf_model, tokenizer, folder.name, default_prepend_bos=False, processing=False)
    model.to(device, print_details=False)
    if dtype != torch.float32:
        model.to(dtype, print_details=False)
    return model.eval()


def _trained_here(folder: Path, device: torch.device, dtype: torch.dtype, processing: bool = True):
    return load_lm_folder(folder, device, dtype)  # one form only: its weights as trained


# A folder's kind is told by the first of these marker files it holds. Models trained by this
# project (interp/lm) save their own marker: add (marker, loader) at the front of this list.
# Each loader takes (folder, device, dtype, processing).
FOLDER_KINDS: list[tuple[str, Callable[[Path, torch.device, torch.dtype, bool], HookedTransformer]]] = [
    (LM_MARKER, _trained_here),  # a GPT-2 or CRATE model trained here (interp train-lm)
    (CONVERTED_MARKER, _converted),  # interp's converted form (what fetch_model writes)
    ("config.json", load_hf_folder),  # a Hugging Face save_pretrained folder
]


def load_model(
    name_or_path: str | Path,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str = torch.float32,
    processing: bool = True,
) -> HookedTransformer:
    """A HookedTransformer from a TransformerLens name (gpt2, ...), an offline model name
    (smollm2-135m, fetched on first use) or a local folder. `model.cfg.model_name` records the
    name given, or the folder's name. processing=False loads the weights without TransformerLens's
    processing (fold_ln, center_writing_weights, center_unembed, fold_value_biases), as
    from_pretrained_no_processing does; models trained here have one form (as trained) either way.
    `model.from_pretrained_kwargs` records what was done (SAELens's model_from_pretrained_kwargs)."""
    dtype = getattr(torch, dtype, None) if isinstance(dtype, str) else dtype
    if not isinstance(dtype, torch.dtype):
        raise InterpError("dtype must be a torch dtype such as float32 or bfloat16.")
    loader, model_name, folder = _loader_for(str(name_or_path))
    try:
        model = loader(pick_device(device), dtype, processing)
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        if folder is None:
            raise
        why = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise InterpError(f"the model folder {folder} cannot be read ({why}); its weights are truncated or damaged: "
                          "save or copy the folder again.") from None
    model.cfg.model_name = model_name
    model.model_path = str(folder) if folder is not None else None  # what model_ref names
    model.processing_applies = not (folder is not None and (folder / LM_MARKER).is_file())
    model.from_pretrained_kwargs = processing_kwargs(processing) if model.processing_applies else dict(NO_PROCESSING)
    return model


def model_ref(model) -> dict[str, str]:
    """How files written from `model` name it so that it can be loaded again: {"model_name": the
    TransformerLens or offline name, or the folder's name} plus, for a local folder,
    {"model_path": its resolved path}."""
    path = getattr(model, "model_path", None)
    return {"model_name": model.cfg.model_name} | ({"model_path": path} if path else {})


def find_model(model_name: str, model_path: str | None = None) -> str:
    """What to give load_model for a model that files name: the folder when it still exists, else
    the name."""
    if model_path and Path(model_path).is_dir():
        return model_path
    if not model_name:
        raise InterpError("the file names no model: give --model M.")
    return model_name


def _loader_for(name: str) -> tuple[Loader, str, Path | None]:
    """What `name` is: the function that loads it, the name to record, and the resolved folder
    for a local one."""
    path = Path(name).expanduser()
    for marker, load_folder in FOLDER_KINDS:
        if (path / marker).is_file():
            return (lambda device, dtype, processing: load_folder(path, device, dtype, processing)), path.resolve().name, path.resolve()
    if name in OFFLINE_MODELS:
        return (lambda device, dtype, processing: _converted(fetch_model(name), device, dtype, processing)), name, None
    if tl_official_name(name) is not None:
        return (lambda device, dtype, processing: load_from_hub(name, device, dtype, processing)), name, None
    if path.is_dir():
        markers = " or ".join(m for m, _ in FOLDER_KINDS)
        raise InterpError(f"{path} holds no model interp can read (no {markers}); give a folder written by save_pretrained.")
    raise InterpError(
        f"'{name}' is neither a folder nor a model name interp knows; give a TransformerLens name such as gpt2 "
        f"or gpt2-medium (needs the Hugging Face Hub), or {OFFLINE_CHOICES}."
    )

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
from interp.models.converted import MARKER as CONVERTED_MARKER
from interp.models.converted import load_converted
from interp.models.fetch import OFFLINE_MODELS, fetch_model
from interp.models.hf_folder import load_hf_folder
from interp.models.hub import OFFLINE_CHOICES, load_from_hub, tl_official_name

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer

Loader = Callable[[torch.device, torch.dtype], "HookedTransformer"]

# The weight processing TransformerLens's from_pretrained applies by default, which every loader here
# applies too except for models trained by this project (their weights are kept as trained). SAE
# folders record it as SAELens's metadata.model_from_pretrained_kwargs.
TL_PROCESSING = {"fold_ln": True, "center_writing_weights": True, "center_unembed": True, "fold_value_biases": True}

# A folder's kind is told by the first of these marker files it holds. Models trained by this
# project (interp/lm) save their own marker: add (marker, loader) at the front of this list.
FOLDER_KINDS: list[tuple[str, Callable[[Path, torch.device, torch.dtype], HookedTransformer]]] = [
    (LM_MARKER, load_lm_folder),  # a GPT-2 or CRATE model trained here (interp train-lm)
    (CONVERTED_MARKER, load_converted),  # interp's converted form (what fetch_model writes)
    ("config.json", load_hf_folder),  # a Hugging Face save_pretrained folder
]


def load_model(
    name_or_path: str | Path,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str = torch.float32,
) -> HookedTransformer:
    """A HookedTransformer from a TransformerLens name (gpt2, ...), an offline model name
    (smollm2-135m, fetched on first use) or a local folder. `model.cfg.model_name` records the
    name given, or the folder's name."""
    dtype = getattr(torch, dtype, None) if isinstance(dtype, str) else dtype
    if not isinstance(dtype, torch.dtype):
        raise InterpError("dtype must be a torch dtype such as float32 or bfloat16.")
    loader, model_name, folder = _loader_for(str(name_or_path))
    try:
        model = loader(pick_device(device), dtype)
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        if folder is None:
            raise
        why = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise InterpError(f"the model folder {folder} cannot be read ({why}); its weights are truncated or damaged: "
                          "save or copy the folder again.") from None
    model.cfg.model_name = model_name
    model.model_path = str(folder) if folder is not None else None  # what model_ref names
    model.from_pretrained_kwargs = {} if folder is not None and (folder / LM_MARKER).is_file() else dict(TL_PROCESSING)
    return model


def saelens_metadata(model) -> dict:
    """What SAELens's cfg.json metadata says about the model an SAE reads: BOS handling and the
    TransformerLens processing of its weights."""
    return {"prepend_bos": bool(model.cfg.default_prepend_bos),
            "model_from_pretrained_kwargs": dict(getattr(model, "from_pretrained_kwargs", TL_PROCESSING))}


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
            return (lambda device, dtype: load_folder(path, device, dtype)), path.resolve().name, path.resolve()
    if name in OFFLINE_MODELS:
        return (lambda device, dtype: load_converted(fetch_model(name), device, dtype)), name, None
    if tl_official_name(name) is not None:
        return (lambda device, dtype: load_from_hub(name, device, dtype)), name, None
    if path.is_dir():
        markers = " or ".join(m for m, _ in FOLDER_KINDS)
        raise InterpError(f"{path} holds no model interp can read (no {markers}); give a folder written by save_pretrained.")
    raise InterpError(
        f"'{name}' is neither a folder nor a model name interp knows; give a TransformerLens name such as gpt2 "
        f"or gpt2-medium (needs the Hugging Face Hub), or {OFFLINE_CHOICES}."
    )

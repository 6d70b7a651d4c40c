"""From `interp steer` / `interp ablate` arguments to a loaded model and one unit (sae.Latent,
sae.Neuron or sae.Direction), every bad choice refused in one line before any work."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from interp.errors import InterpError
from interp.models import check_processing, find_model, load_model
from sae import Direction, Latent, Neuron, load_sae


def model_and_unit(args) -> tuple[Any, Any]:
    sae = None
    if args.feature is not None:
        if not args.sae:
            raise InterpError("--feature F needs --sae DIR (the SAE whose latent F is).")
        sae = load_sae(args.sae)
    if args.model is None and sae is None:
        raise InterpError("give --model M (or --sae DIR, whose model is used).")
    name = args.model or find_model(sae.cfg.model_name, sae.cfg.extra.get("model_path"))
    model = load_model(name, device=args.device, processing=not args.no_processing)
    model.requires_grad_(False)
    if sae is not None:
        check_processing(f"the SAE at {args.sae}", sae.cfg.extra.get("model_from_pretrained_kwargs"), model)
        sae = sae.to(next(model.parameters()).device).requires_grad_(False)
        unit: Any = Latent(sae.cfg.hook_name, args.feature, sae=sae)
    elif args.neuron is not None:
        unit = Neuron(_layer(args, model), args.neuron, site=args.site)
    else:
        hook = args.hook or f"blocks.{_layer(args, model)}.hook_resid_post"
        unit = Direction(hook, read_vector(args.direction))
    unit.check(model)
    return model, unit


def _layer(args, model) -> int:
    if args.layer is None:
        raise InterpError("--neuron and --direction need --layer L.")
    if not 0 <= args.layer < model.cfg.n_layers:
        raise InterpError(f"--layer {args.layer} is not in {model.cfg.model_name}, which has layers 0..{model.cfg.n_layers - 1}.")
    return args.layer


def read_vector(path: str) -> torch.Tensor:
    """A direction from .npy (no pickle), .safetensors (its one tensor) or text/JSON numbers."""
    p = Path(path)
    if not p.is_file():
        raise InterpError(f"no direction file at {path}.")
    try:
        if p.suffix == ".npy":
            return torch.from_numpy(np.load(p, allow_pickle=False).astype(np.float32)).flatten()
        if p.suffix == ".safetensors":
            t = load_file(p)
            if len(t) != 1:
                raise InterpError(f"{path} holds {len(t)} tensors; a direction file holds one.")
            return next(iter(t.values())).float().flatten()
        text = p.read_text()
        values = json.loads(text) if text.lstrip().startswith("[") else [float(v) for v in text.replace(",", " ").split()]
        return torch.tensor(values, dtype=torch.float32).flatten()
    except (ValueError, OSError) as e:
        raise InterpError(f"cannot read a direction from {path}: {e}") from None

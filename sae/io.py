"""The SAE folder, as SAELens reads and writes it: cfg.json + sae_weights.safetensors with
W_enc [d_in, d_sae], W_dec [d_sae, d_in], b_enc [d_sae], b_dec [d_in] (+ threshold [d_sae]).

We write SAELens 6's layout (top-level architecture, d_in, d_sae, dtype, device,
apply_b_dec_to_input, normalize_activations, reshape_activations, k, and a "metadata" object
with model_name and hook_name), and also model_name and hook_name at the top level where
older readers look. Our own extras live under "interp". We read SAELens 6 and pre-6 folders,
folding apply_b_dec_to_input=false and rescale_acts_by_decoder_norm=true into the weights."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from interp.device import pick_device
from interp.files import read_safetensors, write_json_atomic, write_safetensors_atomic
from sae.base import SAE
from sae.config import SAEConfig
from sae.errors import SAEError
from sae.registry import get_architecture

CFG_FILE = "cfg.json"
WEIGHTS_FILE = "sae_weights.safetensors"
SCALER_FILE = "activation_scaler.json"  # SAELens checkpoints: the input scale of expected_average_only_in
SAELENS_LAYOUT = "6.0.0"  # the cfg.json layout we follow, written as metadata.sae_lens_version
# metadata keys SAELens knows; we copy any of them found in cfg.extra
_METADATA_KEYS = ("context_size", "prepend_bos", "dataset_path", "hook_head_index", "model_class_name",
                  "model_from_pretrained_kwargs", "exclude_special_tokens", "seqpos_slice", "neuronpedia_id")


def saelens_cfg(sae: SAE) -> dict[str, Any]:
    """The cfg.json of sae once saved (folded: reads raw activations)."""
    c = sae.cfg
    meta = {"sae_lens_version": SAELENS_LAYOUT, "model_name": c.model_name, "hook_name": c.hook_name,
            "hook_head_index": None}
    meta.update({k: c.extra[k] for k in _METADATA_KEYS if k in c.extra})
    out: dict[str, Any] = {
        "architecture": type(sae).saelens_name,
        "d_in": c.d_in,
        "d_sae": c.d_sae,
        "dtype": str(sae.W_dec.dtype).replace("torch.", ""),
        "device": "cpu",
        "apply_b_dec_to_input": True,
        "normalize_activations": "none",
        "reshape_activations": "hook_z" if c.hook_name.endswith("hook_z") else "none",
        "model_name": c.model_name,
        "hook_name": c.hook_name,
        "metadata": meta,
    }
    if c.k is not None:
        out["k"] = c.k
    if type(sae).saelens_name == "topk":
        out["rescale_acts_by_decoder_norm"] = False
    extra = {k: v for k, v in c.extra.items() if k not in _METADATA_KEYS}
    out["interp"] = {"architecture": sae.name, **extra}
    if c.activation_scale != 1.0:
        out["interp"]["folded_activation_scale"] = c.activation_scale
    return out


def save_sae(sae: SAE, path: str | Path) -> Path:
    """Write the SAE folder (weights first, then cfg.json; each file atomically)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    write_safetensors_atomic(path / WEIGHTS_FILE, sae.inference_tensors(), metadata={"format": "pt"})
    write_json_atomic(path / CFG_FILE, saelens_cfg(sae))
    return path


def load_sae(path: str | Path, device: str | torch.device | None = None, dtype: torch.dtype = torch.float32) -> SAE:
    """An SAE from a folder written by us or by SAELens, ready for encode/decode (no grads)."""
    path = Path(path)
    if path.is_file():
        path = path.parent
    if not path.is_dir():
        raise SAEError(f"no SAE folder at {path}; give the folder holding {CFG_FILE} and {WEIGHTS_FILE}.")
    if not (path / CFG_FILE).exists():
        raise SAEError(f"{path} has no {CFG_FILE}; is it an SAE folder?")
    if not (path / WEIGHTS_FILE).exists():
        raise SAEError(f"{path} has {CFG_FILE} but no {WEIGHTS_FILE}; the save was interrupted or the copy is incomplete.")
    try:
        raw = json.loads((path / CFG_FILE).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SAEError(f"{path / CFG_FILE} is not valid JSON ({e}); save or copy it again.") from None
    cfg, flags = _config_from_saelens(raw, path)
    t = {k: v.to(dtype) for k, v in read_safetensors(path / WEIGHTS_FILE, SAEError).items()}
    _check_tensors(t, cfg, path, needs_threshold=flags["arch"] == "jumprelu")
    _fold_saelens_options(t, raw)
    if raw.get("normalize_activations") == "expected_average_only_in":
        _fold_input_scale(t, _input_scale(raw, path))
    cfg.dtype = str(dtype).replace("torch.", "")
    cfg.device = str(pick_device(device))
    sae = get_architecture(cfg.architecture)(cfg)
    sae.load_inference_tensors(t)
    return sae.to(cfg.device).requires_grad_(False).eval()


def _config_from_saelens(raw: dict[str, Any], path: Path) -> tuple[SAEConfig, dict[str, Any]]:
    meta = raw.get("metadata") or {}
    arch = raw.get("architecture")
    if arch is None:  # SAELens before 6: standard unless activation_fn says topk
        arch = "topk" if raw.get("activation_fn", raw.get("activation_fn_str")) == "topk" else "standard"
    cls = get_architecture(arch)
    for key in ("d_in", "d_sae"):
        if not isinstance(raw.get(key), int):
            raise SAEError(f"{path / CFG_FILE} lacks an integer {key!r}; it is not an SAE config this tool can read.")
    norm = raw.get("normalize_activations", "none")
    if norm not in ("none", None, False, "expected_average_only_in"):
        raise SAEError(
            f"{path} expects run-time input normalisation ({norm!r}), which this folder cannot undo; "
            "fold it into the weights with SAELens (fold_activation_norm_scaling_factor) and save again."
        )
    k = raw.get("k", (raw.get("activation_fn_kwargs") or {}).get("k"))
    extra = dict(raw.get("interp") or {})
    trained_as = extra.pop("architecture", cls.name)
    if trained_as != cls.name:
        extra["trained_as"] = trained_as  # e.g. batchtopk, saved as jumprelu
    extra.update({k2: meta[k2] for k2 in _METADATA_KEYS if meta.get(k2) is not None})
    cfg = SAEConfig(
        architecture=cls.name,
        d_in=raw["d_in"],
        d_sae=raw["d_sae"],
        k=int(k) if k is not None else None,
        hook_name=raw.get("hook_name") or meta.get("hook_name") or raw.get("hook_point") or "",
        model_name=raw.get("model_name") or meta.get("model_name") or "",
        extra=extra,
    )
    return cfg, {"arch": cls.saelens_name}


def _check_tensors(t: dict[str, torch.Tensor], cfg: SAEConfig, path: Path, needs_threshold: bool) -> None:
    shapes = {"W_enc": (cfg.d_in, cfg.d_sae), "W_dec": (cfg.d_sae, cfg.d_in), "b_enc": (cfg.d_sae,), "b_dec": (cfg.d_in,)}
    if needs_threshold:
        shapes["threshold"] = (cfg.d_sae,)
    for key, shape in shapes.items():
        if key not in t:
            raise SAEError(f"{path / WEIGHTS_FILE} has no {key!r} tensor; it does not match its {CFG_FILE}.")
        if tuple(t[key].shape) != shape:
            raise SAEError(
                f"{path / WEIGHTS_FILE}: {key} is {tuple(t[key].shape)} but {CFG_FILE} implies {shape}; "
                "the two files do not belong together."
            )


def _input_scale(raw: dict[str, Any], path: Path) -> float:
    """The factor an "expected_average_only_in" SAE's inputs were multiplied by in training:
    SAELens keeps it in activation_scaler.json beside a checkpoint's cfg.json (or, in
    pretrained releases, as norm_scaling_factor)."""
    found = raw.get("norm_scaling_factor", (raw.get("metadata") or {}).get("norm_scaling_factor"))
    scaler = path / SCALER_FILE
    if found is None and scaler.exists():
        try:
            found = json.loads(scaler.read_text()).get("scaling_factor")
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            raise SAEError(f"{scaler} is not the JSON SAELens writes; copy the checkpoint folder again.") from None
    if not isinstance(found, (int, float)) or isinstance(found, bool) or not found > 0:
        raise SAEError(
            f"{path} was trained on inputs scaled to an expected norm of sqrt(d_in) (normalize_activations "
            f"'expected_average_only_in') but holds no positive scaling factor ({SCALER_FILE} or norm_scaling_factor); "
            "copy the whole SAELens checkpoint folder, or fold the factor with SAELens and save again."
        )
    return float(found)


def _fold_input_scale(t: dict[str, torch.Tensor], s: float) -> None:
    """Weights that read raw x from weights that read s * x: pre(s x) = (x - b_dec/s) @ (s W_enc) + b_enc,
    and x_hat / s = z @ (W_dec / s) + b_dec / s (what SAELens's fold_activation_norm_scaling_factor does)."""
    t["W_enc"] = t["W_enc"] * s
    t["W_dec"] = t["W_dec"] / s
    t["b_dec"] = t["b_dec"] / s


def _fold_saelens_options(t: dict[str, torch.Tensor], raw: dict[str, Any]) -> None:
    """Rewrite SAELens options that our one equation lacks into equivalent weights."""
    if raw.get("rescale_acts_by_decoder_norm"):
        n = t["W_dec"].norm(dim=1).clamp_min(1e-8)  # topk picks by pre * ||W_dec[i]||
        t["W_enc"] = t["W_enc"] * n[None, :]
        t["b_enc"] = t["b_enc"] * n
        t["W_dec"] = t["W_dec"] / n[:, None]
    if raw.get("apply_b_dec_to_input") is False:  # pre = x @ W_enc + b_enc
        t["b_enc"] = t["b_enc"] + t["b_dec"] @ t["W_enc"]
    sf = t.pop("scaling_factor", t.pop("finetuning_scaling_factor", None))
    if sf is not None:  # x_hat = (z * sf) @ W_dec + b_dec
        t["W_dec"] = t["W_dec"] * sf[:, None]

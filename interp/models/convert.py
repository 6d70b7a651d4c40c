"""A Hugging Face GPT-2 or Llama model in memory -> HookedTransformer, without the Hub.

TransformerLens's `from_pretrained` fetches the model's config from the Hub even when handed
the weights, so here the HookedTransformerConfig is built from the Hugging Face config by hand
(the same fields TransformerLens 3.9 derives for these two architectures) and the weights go
through TransformerLens's own converters and default processing (fold_ln,
center_writing_weights, center_unembed, fold_value_biases), so hook activations match what a
TransformerLens user sees for the same weights; with processing=False, none of it, as
from_pretrained_no_processing does.
"""

from __future__ import annotations

from typing import Any

import torch

from interp.errors import InterpError
from interp.models.processing import processing_kwargs

ARCHITECTURES = ("gpt2", "llama")  # Hugging Face config.json model_type values we convert


def _gpt2_fields(hf: Any) -> dict[str, Any]:
    return {
        "original_architecture": "GPT2LMHeadModel",
        "d_model": hf.n_embd,
        "n_heads": hf.n_head,
        "d_head": hf.n_embd // hf.n_head,
        "d_mlp": hf.n_inner or 4 * hf.n_embd,
        "n_layers": hf.n_layer,
        "n_ctx": hf.n_positions,
        "eps": hf.layer_norm_epsilon,
        "d_vocab": hf.vocab_size,
        "act_fn": hf.activation_function,
        "use_attn_scale": getattr(hf, "scale_attn_weights", True),
        "scale_attn_by_inverse_layer_idx": getattr(hf, "scale_attn_by_inverse_layer_idx", False),
        "normalization_type": "LN",
        "positional_embedding_type": "standard",
    }


def _rope(hf: Any) -> dict[str, Any]:
    """Rotary settings. transformers 5 keeps them in `rope_parameters`, 4.x in rope_theta/rope_scaling."""
    params = dict(getattr(hf, "rope_parameters", None) or {})
    params.update(getattr(hf, "rope_scaling", None) or {})
    theta = getattr(hf, "rope_theta", None) or params.get("rope_theta", 10000.0)
    kind = (params.get("rope_type") or params.get("type") or "default").lower()
    fields: dict[str, Any] = {"rotary_base": theta}
    if kind == "llama3":
        fields.update(
            use_NTK_by_parts_rope=True,
            NTK_original_ctx_len=params.get("original_max_position_embeddings", hf.max_position_embeddings),
            NTK_by_parts_low_freq_factor=params.get("low_freq_factor", 1.0),
            NTK_by_parts_high_freq_factor=params.get("high_freq_factor", 4.0),
            NTK_by_parts_factor=params.get("factor", 1.0),
        )
    elif kind != "default":
        raise InterpError(f"this Llama model uses '{kind}' rotary scaling, which interp cannot convert; use a model with default or llama3 rotary embeddings.")
    return fields


def _llama_fields(hf: Any) -> dict[str, Any]:
    if getattr(hf, "attention_bias", False) or getattr(hf, "mlp_bias", False):
        raise InterpError("this Llama model has attention or MLP biases, which TransformerLens's Llama converter drops; use a bias-free Llama model.")
    d_head = getattr(hf, "head_dim", None) or hf.hidden_size // hf.num_attention_heads
    n_kv = getattr(hf, "num_key_value_heads", None) or hf.num_attention_heads
    return {
        "original_architecture": "LlamaForCausalLM",
        "d_model": hf.hidden_size,
        "n_heads": hf.num_attention_heads,
        "d_head": d_head,
        "d_mlp": hf.intermediate_size,
        "n_layers": hf.num_hidden_layers,
        "n_ctx": hf.max_position_embeddings,
        "eps": hf.rms_norm_eps,
        "d_vocab": hf.vocab_size,
        "act_fn": hf.hidden_act,
        # TransformerLens switches to grouped-query attention whenever this is set
        "n_key_value_heads": n_kv if n_kv != hf.num_attention_heads else None,
        "normalization_type": "RMS",
        "positional_embedding_type": "rotary",
        "rotary_adjacent_pairs": False,  # Llama rotates dims i and i + d/2, not neighbours
        "rotary_dim": d_head,
        "final_rms": True,
        "gated_mlp": True,
        **_rope(hf),
    }


def tl_config(hf_config: Any, model_name: str, default_prepend_bos: bool = True, fold_ln: bool = True):
    """HookedTransformerConfig (float32, CPU, LayerNorm to be folded unless not fold_ln) for a GPT-2 or Llama config."""
    from transformer_lens import HookedTransformerConfig
    from transformer_lens.utilities.activation_functions import SUPPORTED_ACTIVATIONS

    kind = hf_config.model_type
    if kind not in ARCHITECTURES:
        raise InterpError(f"cannot convert a '{kind}' model: interp converts Hugging Face folders of GPT-2 or Llama architecture only.")
    fields = _gpt2_fields(hf_config) if kind == "gpt2" else _llama_fields(hf_config)
    if fields["act_fn"] not in SUPPORTED_ACTIVATIONS:
        raise InterpError(f"activation '{fields['act_fn']}' is not one TransformerLens supports ({', '.join(SUPPORTED_ACTIVATIONS)}).")
    if fold_ln:  # fold_ln turns every norm into its weightless "Pre" form, as from_pretrained does
        fields["normalization_type"] += "Pre"
    fields.update(
        model_name=model_name,
        default_prepend_bos=default_prepend_bos,
        init_weights=False,  # the weights are loaded next; random init would be wasted time
        dtype=torch.float32,
        device="cpu",
    )
    return HookedTransformerConfig.from_dict(fields)


def hooked_from_hf(hf_model: Any, tokenizer: Any, model_name: str, default_prepend_bos: bool = True,
                   processing: bool = True):
    """Convert (and consume: its tensors may be reused) a GPT2LMHeadModel or LlamaForCausalLM.

    Returns a float32 HookedTransformer on the CPU with TransformerLens's default weight processing,
    or with none (processing=False).
    """
    from transformer_lens import HookedTransformer
    from transformer_lens.pretrained.weight_conversions import convert_gpt2_weights, convert_llama_weights

    cfg = tl_config(hf_model.config, model_name, default_prepend_bos, fold_ln=processing)
    hf_model = hf_model.to(torch.float32)
    convert = convert_gpt2_weights if hf_model.config.model_type == "gpt2" else convert_llama_weights
    with torch.no_grad():
        state = {k: v.detach() for k, v in convert(hf_model, cfg).items()}
    model = HookedTransformer(cfg, tokenizer, move_to_device=False)
    model.load_and_process_state_dict(state, **processing_kwargs(processing))
    return model.eval()

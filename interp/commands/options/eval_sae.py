"""The options of `interp eval-sae` (its code: interp/commands/eval_sae.py); light imports only (see common.py)."""

from __future__ import annotations

from interp.commands.options.common import add_processing, command
from interp.commands.options.text import add_decoding, add_split


def add_parser(sub) -> None:
    p = command(
        sub, "eval-sae",
        help="evaluate a saved SAE on held-out text: metrics.json and a table",
        description="Run held-out text through the SAE's model, splice the SAE's reconstruction in at its hook, "
        "and report l0, mse, explained_variance, fvu, cosine, l2_ratio, ce_loss_score, kl_div_score, dead and "
        "dense fractions (SAELens names). Writes DIR/metrics.json.",
    )
    p.add_argument("sae_dir", help="an SAE folder (cfg.json + sae_weights.safetensors), ours or SAELens's")
    p.add_argument("--model", default=None, help="model to evaluate in (default: the SAE's model_name)")
    add_processing(p)
    p.add_argument("--text", default="offline", help="text source")
    add_decoding(p)
    add_split(p, "heldout")
    p.add_argument("--tokens", type=int, default=32_768, help="held-out tokens to evaluate on")
    p.add_argument("--context-size", type=int, default=None, help="default: the SAE's training context size, else 128")
    p.add_argument("--batch-size", type=int, default=8, help="windows per forward pass")
    p.add_argument("--device", default=None)
    p.add_argument("--out", default=None, help="where to write metrics.json (default: the SAE folder)")
    p.add_argument("--overwrite", action="store_true", help="replace the outputs of another run in --out instead of refusing")

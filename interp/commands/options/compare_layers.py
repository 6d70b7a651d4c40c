"""The options of `interp compare-layers` (its code: interp/commands/compare_layers.py); light imports only (see common.py)."""

from __future__ import annotations

from interp.commands.options.common import add_hooks, command
from interp.commands.options.text import TEXT_HELP, add_decoding


def add_parser(sub) -> None:
    p = command(
        sub, "compare-layers",
        help="score neurons, SAE features and null bases at every layer: a depth report (HTML + markdown)",
        description="Record train and held-out activations of every requested layer (one forward pass per split), "
        "train --seeds SAEs per layer from that recording (optionally to a matched held-out EV), then per layer: "
        "the SAEs' quality and the four interpretability scores of the same number of sampled live units of every basis "
        "(--bases: neurons, SAE features and nulls), explained on the train split and simulated on the same held-out "
        "text for every layer, each with a 95% bootstrap CI and minus the random-direction null of the same layer. Writes OUT/report.html, OUT/report.md and "
        "OUT/results.json. Rerunning the same command skips finished layers; adding layers scores only the new ones.",
    )
    add_hooks(p, layers_example="0,4,8", site="mlp_post", site_help="which activation of each block")
    p.add_argument("--arch", default="topk", help="SAE architecture: relu | topk | batchtopk | jumprelu")
    p.add_argument("--k", type=int, default=32, help="active latents per token (topk, batchtopk)")
    p.add_argument("--expansion", type=int, default=4, help="d_sae = expansion * d_in")
    p.add_argument("--tokens", type=int, default=100_000, help="train-split tokens recorded (trains the SAEs, explains the features)")
    p.add_argument("--heldout-tokens", type=int, default=30_000, help="held-out tokens recorded (scores every layer)")
    p.add_argument("--sae-tokens", type=int, default=None, help="SAE training tokens (default: one epoch of --tokens)")
    p.add_argument("--batch-size", type=int, default=1024, help="SAE training batch, in tokens")
    p.add_argument("--lr", type=float, default=None, help="SAE learning rate (default: the trainer's)")
    p.add_argument("--features-per-layer", type=int, default=100,
                   help="live units scored per layer and dictionary (each basis, each seed)")
    p.add_argument("--bases", default="neurons,sae,random,pca",
                   help="comma-separated: neurons, sae, random, rotated, pca, ica, sae-random-model (analyses/bases.py)")
    p.add_argument("--seeds", type=int, default=1, help="SAEs (and random bases) per layer, with seeds seed, seed+1, ...")
    p.add_argument("--target-ev", type=float, default=None,
                   help="train each SAE in rounds of --sae-tokens until its held-out EV reaches this (or --sae-token-cap)")
    p.add_argument("--sae-token-cap", type=int, default=None, help="with --target-ev: the most tokens an SAE trains for")
    p.add_argument("--fit-tokens", type=int, default=16384, help="train tokens PCA and ICA are fitted on")
    p.add_argument("--ica-components", type=int, default=128, help="FastICA components (at most the site's width)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--eval-tokens", type=int, default=4096, help="held-out tokens for the SAE's quality metrics")
    p.add_argument("--explainer", default="tokens", choices=["tokens", "llm"], help="tokens: deterministic, no LLM")
    p.add_argument("--simulator", default="tokens", choices=["tokens", "llm"])
    p.add_argument("--llm-backend", default=None, choices=["openai", "hf"], help="with llm: an OpenAI-compatible endpoint or a local HF model")
    p.add_argument("--llm-model", default=None, help="with llm: the endpoint's model name, or a local model (e.g. smollm2-135m)")
    p.add_argument("--llm-url", default=None, help="with --llm-backend openai: the endpoint's base URL")
    p.add_argument("--cross-check", default="none", choices=["none", "llm"],
                   help="llm: also score --cross-check-units of every dictionary's units with the LLM explainer and "
                   "simulator on the same examples, and report the rank agreement with the token scores")
    p.add_argument("--cross-check-units", type=int, default=20, help="with --cross-check: units per layer and dictionary")
    p.add_argument("--text", default="offline", help=TEXT_HELP)
    add_decoding(p)
    p.add_argument("--context-size", type=int, default=128, help="tokens per window")
    p.add_argument("--seed", type=int, default=0, help="seeds the feature samples, the SAEs and the random examples")
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: the best available)")
    p.add_argument("--out", required=True, help="the comparison's folder (created, or resumed)")
    p.add_argument("--overwrite", action="store_true", help="replace the outputs of another run in --out instead of refusing")

"""The options of `interp train-sae` (its code: interp/commands/train_sae.py); light imports only (see common.py)."""

from __future__ import annotations

from interp.commands.options.common import add_processing, command
from interp.commands.options.text import ONE_DOCUMENT, add_decoding
from interp.sites import SITES


def add_parser(sub) -> None:
    p = command(
        sub, "train-sae",
        help="train sparse autoencoders on one or several layers",
        description="Train an SAE per layer. Activations come straight from the model (one forward pass feeds "
        "every layer's SAE) or from a cache written by `interp record` (--activations). Rerunning the same "
        "command resumes from the last checkpoint. One layer: --out is the SAE folder (SAELens format); "
        "several layers: --out holds one folder per hook. Under `torchrun --nproc-per-node N -m interp train-sae ...` "
        "the same command trains data-parallel: --batch-size stays the global batch, each rank takes its part of "
        "every batch, rank 0 writes the outputs, and a run resumes on any number of ranks (docs/distributed.md).",
    )
    p.add_argument("--model", default="smollm2-135m", help="model name or local folder (ignored with --activations)")
    add_processing(p)
    p.add_argument("--layer", "--layers", dest="layers", default=None,
                   help="a layer, or a list like 0,4,8; default: the middle layer (or every hook of --activations)")
    p.add_argument("--site", default="resid_post", choices=list(SITES), help="which activation in each block")
    p.add_argument("--activations", default=None, help="train from this activation cache instead of running the model")
    p.add_argument("--arch", default="topk", help="relu | topk | batchtopk | jumprelu")
    p.add_argument("--k", type=int, default=32, help="active latents per token (topk, batchtopk)")
    p.add_argument("--expansion", type=int, default=8, help="d_sae = expansion * d_in")
    p.add_argument("--tokens", type=int, default=2_000_000, help="training tokens")
    p.add_argument("--batch-size", type=int, default=4096, help="tokens per step (over all ranks under torchrun)")
    p.add_argument("--lr", type=float, default=None, help="Adam learning rate (default: the trainer's)")
    p.add_argument("--sparsity-coefficient", type=float, default=None, help="L1 (relu) or L0 (jumprelu) weight")
    p.add_argument("--checkpoint-every", type=int, default=100, help="steps between checkpoints")
    p.add_argument("--text", default="offline", help="text source when running the model (its train part; " + ONE_DOCUMENT + ")")
    add_decoding(p)
    p.add_argument("--context-size", type=int, default=128, help="tokens per window when running the model")
    p.add_argument("--include-bos", action="store_true", help="train on each window's BOS position too")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: the best available)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--overwrite", action="store_true",
                   help="replace what --out holds (another run's SAE or checkpoints) instead of refusing; starts afresh")

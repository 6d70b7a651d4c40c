"""The options of `interp train-lm` (its code: interp/commands/train_lm.py); light imports only (see common.py)."""

from __future__ import annotations

from interp.commands.options.common import command
from interp.commands.options.text import ONE_DOCUMENT, add_decoding


def add_parser(sub) -> None:
    p = command(
        sub, "train-lm",
        help="train a GPT-2 or CRATE language model from scratch",
        description="Train a small GPT-2 or CRATE (white-box, CRATE-LM paper) language model on a text source, "
        "nanoGPT-style: AdamW, warm-up then cosine decay, gradient clipping, held-out loss at intervals, "
        "checkpoints. Rerunning the same command resumes from the last checkpoint and ends with the same "
        "weights as an uninterrupted run. OUT becomes a folder that `interp.load_model(OUT)` (and every "
        "--model option) reads as a HookedTransformer with TransformerLens's hook names; CRATE's sparse "
        "code is at blocks.L.mlp.hook_post. The defaults (1 layer, d_model 128, a 4,096-token BPE: on a CPU, "
        "GPT-2's 50,257-token unembedding would cost more than the rest of the model) were chosen by measuring; "
        "the speeds and losses are in docs/white-box.md. "
        "Under `torchrun --nproc-per-node N -m interp train-lm ...` the same command trains data-parallel: "
        "--batch-size stays the global batch, each rank computes its part of every batch, rank 0 evaluates and "
        "writes OUT, and a run resumes on any number of ranks (docs/distributed.md).",
    )
    p.add_argument("--arch", choices=["gpt2", "crate"], default="gpt2", help="architecture")
    p.add_argument("--layers", type=int, default=1, help="number of blocks")
    p.add_argument("--d-model", type=int, default=128, help="residual stream width")
    p.add_argument("--heads", type=int, default=4, help="attention heads (d_head = d_model / heads)")
    p.add_argument("--context-size", "--context", dest="context_size", type=int, default=128,
                   help="tokens per window (n_ctx); --context is its old spelling")
    p.add_argument("--vocab", default="bpe-4096",
                   help="gpt2 (50,257 tokens) or bpe-N: a byte-level BPE of N tokens trained on the text's train split")
    p.add_argument("--tokens", type=int, default=2_000_000, help="training tokens")
    p.add_argument("--batch-size", type=int, default=32, help="windows per step (over all ranks under torchrun)")
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
    p.add_argument("--min-lr-ratio", type=float, default=0.1, help="the cosine decay ends at lr * this")
    p.add_argument("--warmup", type=int, default=50, help="warm-up steps")
    p.add_argument("--weight-decay", type=float, default=0.1, help="AdamW weight decay (matrices and embeddings)")
    p.add_argument("--grad-clip", type=float, default=1.0, help="clip the gradient norm to this")
    p.add_argument("--eval-every", type=int, default=50, help="steps between held-out evaluations")
    p.add_argument("--eval-tokens", type=int, default=65_536, help="held-out tokens per evaluation")
    p.add_argument("--checkpoint-every", type=int, default=100, help="steps between checkpoints")
    p.add_argument("--heldout-fraction", type=float, default=0.05, help="share of documents held out")
    p.add_argument("--text", default="offline", help="text source: 'offline', a file, folder or glob, or a Hugging Face dataset name; " + ONE_DOCUMENT)
    add_decoding(p)
    p.add_argument("--seed", type=int, default=0, help="seeds the weights and the data order")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: the best available)")
    p.add_argument("--restart", action="store_true", help="discard OUT's checkpoints instead of resuming")
    p.add_argument("--out", required=True, help="the model's folder (created, or resumed)")

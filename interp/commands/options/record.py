"""The options of `interp record` (its code: interp/commands/record.py); light imports only (see common.py)."""

from __future__ import annotations

from interp.commands.options.common import add_hooks, command
from interp.commands.options.text import add_decoding, add_split


def add_parser(sub) -> None:
    p = command(
        sub, "record",
        help="record activations of many layers in one forward pass into a disk cache",
        description="Run text through a model once, stopped at the deepest layer asked for, and store every "
        "requested hook point as memory-mapped shards with a manifest. Rerunning the same command resumes. "
        "Under `torchrun --nproc-per-node N -m interp record ...` the ranks record their share of the shards "
        "into the same folder, and rank 0 writes one manifest (docs/distributed.md).",
    )
    add_hooks(p, layers_example="0,6,11", site="resid_post", site_help="which activation in each block")
    p.add_argument("--tokens", type=int, default=100_000, help="how many tokens to record")
    p.add_argument("--out", required=True, help="the cache folder to write (or resume)")
    p.add_argument("--text", default="offline", help="text source: 'offline', a file, folder or glob, or a Hugging Face dataset name")
    add_decoding(p)
    add_split(p, "train")
    p.add_argument("--context-size", type=int, default=128, help="tokens per window")
    p.add_argument("--batch-size", type=int, default=8, help="windows per forward pass")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16"], help="storage type of activations")
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: the best available)")

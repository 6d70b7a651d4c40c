"""The options of `interp dashboard` (its code: interp/commands/dashboard.py); light imports only (see common.py)."""

from __future__ import annotations

from interp.commands.options.common import add_processing, command
from interp.commands.options.text import add_decoding, add_split
from interp.sites import SITES


def add_parser(sub) -> None:
    p = command(
        sub, "dashboard",
        help="build feature dashboards (static HTML) for an SAE or a layer's neurons",
        description="Compute per-feature statistics (top examples with context, samples from activation bands, "
        "density, histograms, logit effects, nearest features) in one pass over an activation cache, and write "
        "an index page, one page per feature and a prompt view as static HTML that opens from disk with no network.",
    )
    p.add_argument("sae_dir", nargs="?", metavar="SAE_DIR", help="the SAE folder (cfg.json + sae_weights.safetensors); omit with --neurons")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--cache", metavar="ACT_DIR", help="an activation cache written by `interp record` that holds the SAE's hook")
    src.add_argument("--tokens", type=int, metavar="N", help="record N tokens of held-out text into OUT/acts first")
    p.add_argument("--out", required=True, metavar="DIR", help="the dashboard folder to write (index.html inside)")
    p.add_argument("--overwrite", action="store_true", help="replace the outputs of another run in --out instead of refusing")
    p.add_argument("--features", default="all", help="which features: 'all', a range '0-99', a list '1,5,9' or a mix")
    p.add_argument("--neurons", action="store_true", help="dashboards for a layer's neurons (the identity dictionary) instead of an SAE")
    p.add_argument("--model", default=None, help="model name or folder; when not given, the SAE's model_name, else the cache's model")
    add_processing(p)
    p.add_argument("--layer", type=int, default=None, help="with --neurons: the layer")
    p.add_argument("--site", default="mlp_post", choices=list(SITES), help="with --neurons: which activation of the layer")
    p.add_argument("--no-model", action="store_true", help="do not load the model: no logit effects, no prompt view, token ids instead of text")
    p.add_argument("--prompts", default=None, metavar="FILE", help="prompts for the prompt view, added to the defaults")
    p.add_argument("--no-default-prompts", action="store_true", help="use only the prompts of --prompts")
    p.add_argument("--explanations", default=None, metavar="FILE", help="explanations and scores; when not given, SAE_DIR/explanations.json if it exists")
    p.add_argument("--text", default="offline", help="with --tokens: the text source")
    add_decoding(p)
    add_split(p, "heldout", "with --tokens: ")
    p.add_argument("--context-size", type=int, default=128, help="with --tokens: tokens per window")
    p.add_argument("--top", type=int, default=20, help="top activating examples per feature")
    p.add_argument("--bands", type=int, default=10, help="activation bands of [0, max] to sample from")
    p.add_argument("--per-band", type=int, default=5, help="examples sampled from each band")
    p.add_argument("--title", default=None, help="the dashboard's title (default: the SAE folder's name)")
    p.add_argument("--steer-prompts", default=None, metavar="FILE|default",
                   help="add a steering example to each feature page, precomputed now: the default and the steered continuation "
                   "(same seed) of each prompt; 'default' (three fixed prompts) or a file (one prompt per line, or a .json "
                   "list of strings). Costs 2 x prompts x (steer-tokens + 1) forwards per feature (docs/editing.md)")
    p.add_argument("--steer-strength", type=float, default=5.0, metavar="S",
                   help="with --steer-prompts: add S x the feature's max activation to it (or clamp it there)")
    p.add_argument("--steer-mode", default="add", choices=["add", "clamp"], help="with --steer-prompts: add to the feature or clamp it")
    p.add_argument("--steer-tokens", type=int, default=16, metavar="N", help="with --steer-prompts: new tokens per continuation")
    p.add_argument("--steer-temperature", type=float, default=1.0, help="with --steer-prompts: sampling temperature (0: greedy)")
    p.add_argument("--steer-seed", type=int, default=0, help="with --steer-prompts: the seed of both runs")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice; 1 is much faster for "
                   "--steer-prompts on a busy CPU)")
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: the best available)")

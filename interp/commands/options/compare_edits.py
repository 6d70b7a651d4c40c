"""The options of `interp compare-edits` (its code: interp/commands/compare_edits.py). Light imports only."""

from __future__ import annotations

from interp.commands.options.common import add_processing, command
from interp.commands.options.text import TEXT_HELP, add_decoding


def add_parser(sub) -> None:
    p = command(
        sub, "compare-edits",
        help="the editing benchmark: target effect against collateral KL of neuron, SAE-latent and random edits, per layer",
        description="Per layer and unit kind (--units: neurons, z0 (CRATE), sae, sae-noerror, random), draw units across "
        "firing densities and edit each on held-out text: necessity (ablated where it fires, against random positions), "
        "then a clamp ladder (c x train max) and an add ladder (alpha x the site's median norm) where it does not fire, "
        "measuring the rise in its promoted tokens' log-probability against the KL on every other token. Writes "
        "OUT/report.html, OUT/report.md and OUT/results.json; rerunning skips finished layers and kinds.",
    )
    p.add_argument("--model", default="smollm2-135m", help="model name or a local folder (e.g. runs/lm/gpt2-2l)")
    add_processing(p)
    p.add_argument("--layers", default="all", help="'all', a list like 0,4,8, or a range like 0-3")
    p.add_argument("--units", default="neurons,sae,sae-noerror,random",
                   help="comma-separated unit kinds: neurons, z0, sae, sae-noerror, random")
    p.add_argument("--sae-dir", default=None,
                   help="a folder of SAEs, one per hook (<dir>/blocks.L.mlp.hook_post, as compare-layers writes); "
                   "default: train them into OUT/saes")
    p.add_argument("--readability", default=None,
                   help="a compare-layers OUT: units are drawn from its scored ones and their scores rank-correlated with edit quality")
    p.add_argument("--units-per-layer", type=int, default=50, help="units per layer and kind")
    p.add_argument("--clamp-ladder", default="0,1,2,5,10", help="clamp strengths, x the unit's train max")
    p.add_argument("--add-ladder", default="0.5,1,2,4,8", help="add strengths, x the site's median norm")
    p.add_argument("--promoted-k", type=int, default=5, help="a unit's promoted tokens: the top k of its logit effects")
    p.add_argument("--tokens", type=int, default=65_536, help="train-split tokens (unit statistics; SAE training)")
    p.add_argument("--eval-tokens", type=int, default=2048, help="held-out tokens every edit is measured on")
    p.add_argument("--stat-windows", type=int, default=64, help="train windows for densities, train maxima and median norms")
    p.add_argument("--arch", default="topk", help="SAE architecture when SAEs are trained here")
    p.add_argument("--k", type=int, default=32, help="active latents per token (topk, batchtopk)")
    p.add_argument("--expansion", type=int, default=4, help="d_sae = expansion * d_in")
    p.add_argument("--sae-tokens", type=int, default=None, help="SAE training tokens (default: one epoch of --tokens)")
    p.add_argument("--batch-size", type=int, default=16, help="eval windows per forward pass")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples over units")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--text", default="offline", help=TEXT_HELP)
    add_decoding(p)
    p.add_argument("--context-size", type=int, default=128, help="tokens per window")
    p.add_argument("--seed", type=int, default=0, help="seeds the unit draws, random directions, positions and SAEs")
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: the best available)")
    p.add_argument("--out", required=True, help="the benchmark's folder (created, or resumed)")

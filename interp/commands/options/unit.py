"""The arguments that name one unit to edit, shared by `interp steer` and `interp ablate`
(light imports only)."""

from __future__ import annotations

from interp.commands.options.common import add_processing


def add_unit_args(p) -> None:
    p.add_argument("--model", default=None, help="model name or folder (default: the SAE's model)")
    add_processing(p)
    p.add_argument("--sae", default=None, metavar="DIR", help="an SAE folder, for --feature")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--feature", type=int, default=None, help="an SAE latent id (needs --sae)")
    which.add_argument("--neuron", type=int, default=None, help="an MLP neuron id at --layer (CRATE: a code entry)")
    which.add_argument("--direction", default=None, metavar="FILE",
                       help="a direction at --hook / --layer's resid_post: .npy, .safetensors (one tensor) or a text file of numbers")
    p.add_argument("--layer", type=int, default=None, help="the layer of --neuron or --direction")
    p.add_argument("--site", default="hook_post", choices=["hook_post", "hook_z0"],
                   help="--neuron's hook in blocks.L.mlp (hook_z0: CRATE's first ISTA estimate)")
    p.add_argument("--hook", default=None, help="--direction's hook (default blocks.L.hook_resid_post)")
    p.add_argument("--device", default=None)

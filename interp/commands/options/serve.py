"""The options of `interp serve` (its code: interp/commands/serve.py). Light imports only."""

from __future__ import annotations

from interp.commands.options.common import add_processing, command
from interp.commands.options.text import ONE_DOCUMENT, add_decoding


def add_parser(sub) -> None:
    p = command(
        sub, "serve",
        help="a local live dashboard: type text, see its features per token, steer features",
        description="Load the model and the SAE once and serve, on this machine only unless --host says "
        "otherwise: a prompt page (each token coloured by a feature, its top features on click), a steering "
        "panel (default and steered continuations from one seed, streamed, with the change in next-token "
        "probabilities), the static dashboard's pages, and the JSON API they use (/api/activations, "
        "/api/steer, /api/features/{id}; schema at /openapi.json).",
    )
    p.add_argument("sae_dir", metavar="SAE_DIR", help="the SAE folder (cfg.json + sae_weights.safetensors)")
    p.add_argument("--dashboard", default=None, metavar="DIR",
                   help="a dashboard folder written by `interp dashboard`; when not given, one is built at start")
    p.add_argument("--model", default=None, help="model name or folder (default: the SAE's model)")
    add_processing(p)
    p.add_argument("--port", type=int, default=8000, help="the port (0: any free one, printed at start)")
    p.add_argument("--host", default="127.0.0.1", help="the address to listen on; anything but this machine "
                   "lets others use the model (a warning is printed)")
    p.add_argument("--features", default="0-99", help="without --dashboard: the features whose pages to build")
    p.add_argument("--tokens", type=int, default=16384, help="without --dashboard: held-out tokens to build them from")
    p.add_argument("--text", default="offline", help="without --dashboard: the text source of those tokens (its held-out part; " + ONE_DOCUMENT + ")")
    add_decoding(p)
    p.add_argument("--max-prompt-tokens", type=int, default=1024, help="longer prompts get HTTP 413")
    p.add_argument("--max-new-tokens", type=int, default=64, help="the cap on a steer's new tokens")
    p.add_argument("--max-strength", type=float, default=200.0, help="the cap on a steer's |strength|")
    p.add_argument("--queue", type=int, default=4, help="requests that may wait for the model; more get HTTP 429")
    p.add_argument("--threads", type=int, default=None, help="torch threads of the model worker (default: torch's)")
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: the best available)")

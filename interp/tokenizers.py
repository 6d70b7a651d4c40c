"""Deprecated name of interp.gpt2_tokenizer (renamed so that tokens, tokenizer and bpe modules are told apart)."""

import warnings

from interp.gpt2_tokenizer import *  # noqa: F403

warnings.warn("interp.tokenizers is now interp.gpt2_tokenizer", DeprecationWarning, stacklevel=2)

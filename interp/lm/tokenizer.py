"""Deprecated name of interp.lm.bpe (renamed so that tokens, tokenizer and bpe modules are told apart)."""

import warnings

from interp.lm.bpe import *  # noqa: F403

warnings.warn("interp.lm.tokenizer is now interp.lm.bpe", DeprecationWarning, stacklevel=2)

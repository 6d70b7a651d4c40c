"""Text to fixed windows of token ids, split by document into train and held-out, cached on disk.

Documents are tokenized without special tokens and joined into one stream, a separator (EOS, or
BOS when there is no EOS) after each; the stream is cut into windows of `context_size` tokens that
each begin with BOS, as TransformerLens models expect (prepend_bos). A document goes wholly to
train or to held-out, chosen by a hash of its id, so the two never share text. A source of one
document (a single text file) would have everything on one side, so it is split by window instead:
each window goes to held-out by a hash of its position in the document (said when it is built);
the two splits then share no window, though neighbouring windows continue each other. The cache keeps
both splits' windows, so no text is tokenized twice: `tokens/<key>/{train,heldout}.int32` (raw,
[n_windows, context_size]) plus meta.json.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import tempfile
import time
import weakref
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from interp.encoding import encode_texts
from interp.errors import InterpError
from interp.files import write_error, write_text_atomic
from interp.paths import interp_home
from interp.text import (
    Document,
    is_single_document,
    is_streamed,
    iter_documents,
    source_fingerprint,
    stable_unit,
)

SPLITS = ("train", "heldout", "all")
PARTS = ("train", "heldout")  # what is stored; "all" is train then held-out
CACHE_FORMAT = 1


def is_heldout(doc_id: str, heldout_fraction: float) -> bool:
    return stable_unit(doc_id, "split") < heldout_fraction


def is_heldout_window(doc_id: str, index: int, heldout_fraction: float) -> bool:
    """For a one-document source: whether its window number `index` is held out."""
    return is_heldout(f"{doc_id}#window{index}", heldout_fraction)


def special_tokens(tokenizer) -> tuple[int, int]:
    """(bos, separator): BOS falls back to EOS and the separator to BOS, as GPT-2 has only one."""
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    if bos is None and eos is None:
        raise InterpError("the tokenizer has neither a BOS nor an EOS token, so windows cannot be marked; use a tokenizer that has one.")
    return (bos if bos is not None else eos), (eos if eos is not None else bos)


class Packer:
    """One split's token stream, cut into windows of [BOS] + (context_size - 1) tokens."""

    def __init__(self, context_size: int, bos: int, sep: int, tail: Iterable[int] = ()):
        self.context_size, self.bos, self.sep = context_size, bos, sep
        self.tail = np.asarray(list(tail), dtype=np.int32)  # tokens still waiting for a full window

    def add(self, docs: list[list[int]]) -> np.ndarray:  # [n_windows, context_size] int32
        n = sum(len(d) + 1 for d in docs)
        flat = np.fromiter(itertools.chain.from_iterable(x for d in docs for x in (d, (self.sep,))), np.int32, n)
        stream = np.concatenate([self.tail, flat])
        body = self.context_size - 1
        k = len(stream) // body
        windows = np.empty((k, self.context_size), dtype=np.int32)
        windows[:, 0] = self.bos
        windows[:, 1:] = stream[: k * body].reshape(k, body)
        self.tail = stream[k * body :]
        return windows


def pack_windows(token_lists: list[list[int]], context_size: int, bos: int, sep: int) -> torch.Tensor:
    """Pure packing of already tokenized documents: [n_windows, context_size] int64."""
    return torch.from_numpy(Packer(context_size, bos, sep).add(token_lists).astype(np.int64))


def token_windows(
    source: str,
    tokenizer,
    context_size: int = 128,
    split: str = "train",
    max_tokens: int | None = None,
    heldout_fraction: float = 0.05,
    cache: bool = True,
) -> torch.Tensor:  # [n_windows, context_size] int64
    """Windows of `split` ("train", "heldout" or "all" = train then held-out). With max_tokens,
    at most that many tokens (whole windows, at least one), reading only as many documents as
    needed; a later call that asks for more extends the cache."""
    _check(split, context_size, heldout_fraction)
    want = None if max_tokens is None else max(1, max_tokens // context_size)
    if want is None and is_streamed(source):
        raise InterpError(f"{source!r} is streamed from the Hugging Face Hub; say how many tokens to take (max_tokens, --tokens).")
    if not cache:
        with tempfile.TemporaryDirectory() as tmp:
            meta = _build(Path(tmp) / "t", None, source, tokenizer, context_size, heldout_fraction, split, want)
            return _load(Path(tmp) / "t", meta, source, split, want)
    folder = interp_home() / "tokens" / cache_key(source, tokenizer, context_size, heldout_fraction)
    meta = _read_meta(folder)
    if meta is None or not _enough(meta, split, want):
        meta = _build(folder, meta, source, tokenizer, context_size, heldout_fraction, split, want)
    return _load(folder, meta, source, split, want)


def cache_key(source: str, tokenizer, context_size: int, heldout_fraction: float) -> str:
    ident = {"format": CACHE_FORMAT, "source": source_fingerprint(source), "tokenizer": tokenizer_identity(tokenizer),
             "context_size": context_size, "heldout_fraction": heldout_fraction}
    if is_single_document(source):
        ident["split_by"] = "window"
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:20]


_IDENTITIES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def tokenizer_identity(tokenizer) -> dict:
    """Name, size, specials and a hash of the whole vocabulary (computed once per tokenizer object)."""
    try:
        known = _IDENTITIES.get(tokenizer)
    except TypeError:  # not weak-referenceable or not hashable: just compute it each time
        known = None
    if known is not None and known["vocab_size"] == len(tokenizer):
        return known
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    ident = {"name_or_path": str(getattr(tokenizer, "name_or_path", type(tokenizer).__name__)),
             "vocab_size": len(tokenizer), "specials": list(special_tokens(tokenizer)),
             "vocab_sha256": hashlib.sha256(json.dumps(vocab).encode()).hexdigest()[:16]}
    try:
        _IDENTITIES[tokenizer] = ident
    except TypeError:
        pass
    return ident


# --- building -------------------------------------------------------------------------------

class _Builder:
    """Routes each document to its split's packer; tokenizes every document exactly once. With
    `by_window` (a one-document source) every window goes to its split by its position instead."""

    def __init__(self, tokenizer, context_size: int, heldout_fraction: float, tails: dict | None = None,
                 by_window: bool = False, windows_made: int = 0):
        self.tokenizer, self.fraction, self.by_window, self.windows_made = tokenizer, heldout_fraction, by_window, windows_made
        bos, sep = special_tokens(tokenizer)
        self.packers = {p: Packer(context_size, bos, sep, (tails or {}).get(p, ())) for p in PARTS}

    def feed(self, docs: list[Document]) -> dict[str, np.ndarray]:
        ids = encode_texts(self.tokenizer, [d.text for d in docs])
        if self.by_window:  # one stream (kept in the train packer), cut, then each window to its split
            windows = self.packers["train"].add(ids)
            index = range(self.windows_made, self.windows_made + len(windows))
            held = np.array([is_heldout_window(docs[0].id, i, self.fraction) for i in index], dtype=bool)
            self.windows_made += len(windows)
            return {"train": windows[~held], "heldout": windows[held]}
        held = [is_heldout(d.id, self.fraction) for d in docs]
        return {p: self.packers[p].add([t for t, h in zip(ids, held) if h == (p == "heldout")]) for p in PARTS}

    def tails(self) -> dict:
        return {p: self.packers[p].tail.tolist() for p in PARTS}


def _build(folder: Path, meta: dict | None, source: str, tokenizer, context_size: int,
           fraction: float, split: str, want: int | None) -> dict:
    """Create the cache in `folder` (built aside, then renamed) or extend the one `meta` describes."""
    t0 = time.perf_counter()
    fresh = meta is None
    if fresh:
        meta = {"format": CACHE_FORMAT, "source": source, "fingerprint": source_fingerprint(source),
                "tokenizer": tokenizer_identity(tokenizer), "context_size": context_size,
                "heldout_fraction": fraction, "windows": {p: 0 for p in PARTS}, "docs_read": 0,
                "complete": False, "tails": {p: [] for p in PARTS}, "seconds": 0.0}
        folder.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".build-", dir=folder.parent))
        work.chmod(0o755)
    else:
        work = folder
    by_window = is_single_document(source)
    try:
        builder = _Builder(tokenizer, context_size, fraction, meta["tails"], by_window, sum(meta["windows"].values()))
        share = {"train": 1 - fraction, "heldout": fraction, "all": 1.0}[split]
        new_tokens = docs_read = 0
        files = {p: open(work / f"{p}.int32", "ab") for p in PARTS}
        with files["train"], files["heldout"]:
            for p in PARTS:  # drop whatever a killed extension wrote after the last meta.json
                files[p].truncate(meta["windows"][p] * context_size * 4)
            def budget() -> int:  # characters to tokenize next: about what is still missing
                if want is None:
                    return 1 << 21
                missing = max(want - _count(meta, split), 1) * context_size / max(share, 1e-3)
                return int(min(max(6 * missing, 1 << 14), 1 << 21))

            docs = itertools.islice(iter_documents(source), meta["docs_read"], None)
            complete = True
            for batch in _doc_batches(docs, budget):
                for p, windows in builder.feed(batch).items():
                    windows.tofile(files[p])
                    meta["windows"][p] += len(windows)
                    new_tokens += windows.size
                docs_read += len(batch)
                if want is not None and _count(meta, split) >= want:
                    complete = False
                    break
        meta.update(docs_read=meta["docs_read"] + docs_read, complete=complete, tails=builder.tails(),
                    seconds=round(meta["seconds"] + time.perf_counter() - t0, 2))
        _write_json(work / "meta.json", meta)
        if fresh:
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(work, folder)
    except OSError as e:  # a full disk: the partial build goes (finally), an extension is cut back next time
        raise write_error(folder, e) from None
    finally:
        if fresh and work.exists():
            shutil.rmtree(work, ignore_errors=True)
    dt = time.perf_counter() - t0
    print(f"tokenized {docs_read:,} documents of {source}: {new_tokens:,} tokens in {dt:.1f} s "
          f"({new_tokens / max(dt, 1e-9):,.0f} tokens/s)")
    if by_window and fresh:
        w = meta["windows"]
        print(f"{source} is one document, so its held-out split is made of windows, not documents: "
              f"{w['heldout']:,} of {w['train'] + w['heldout']:,} windows ({fraction:.0%}) are held out")
    return meta


def _doc_batches(docs: Iterator[Document], budget) -> Iterator[list[Document]]:
    """Groups of documents of about budget() characters: fast tokenizers encode a batch in parallel."""
    batch, chars = [], 0
    for doc in docs:
        batch.append(doc)
        chars += len(doc.text)
        if chars >= budget() or len(batch) >= 1024:
            yield batch
            batch, chars = [], 0
    if batch:
        yield batch


# --- the cache on disk ----------------------------------------------------------------------

def _load(folder: Path, meta: dict, source: str, split: str, want: int | None) -> torch.Tensor:
    context_size = meta["context_size"]
    parts = []
    for p in PARTS if split == "all" else (split,):
        n = meta["windows"][p] if want is None else min(meta["windows"][p], want - sum(len(x) for x in parts))
        parts.append(np.fromfile(folder / f"{p}.int32", dtype=np.int32, count=n * context_size).reshape(n, context_size))
    windows = np.concatenate(parts)
    if len(windows) == 0:
        w = meta["windows"]
        raise InterpError(f"{source!r} gave no {split} window of {context_size} tokens (train {w['train']}, held-out "
                          f"{w['heldout']} windows); give more text" + (", or a larger held-out fraction." if split == "heldout" else "."))
    return torch.from_numpy(windows.astype(np.int64))


def _read_meta(folder: Path) -> dict | None:
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    return meta if meta.get("format") == CACHE_FORMAT else None


def _count(meta: dict, split: str) -> int:
    return sum(meta["windows"][p] for p in PARTS if split in (p, "all"))


def _enough(meta: dict, split: str, want: int | None) -> bool:
    return meta["complete"] or (want is not None and _count(meta, split) >= want)


def _write_json(path: Path, obj: dict) -> None:
    write_text_atomic(path, json.dumps(obj))


def _check(split: str, context_size: int, heldout_fraction: float) -> None:
    if split not in SPLITS:
        raise InterpError(f"unknown split {split!r}; choose train, heldout or all.")
    if context_size < 2:
        raise InterpError(f"the context size must be at least 2 tokens (BOS and one more), not {context_size}.")
    if not 0 <= heldout_fraction < 1:
        raise InterpError(f"the held-out fraction must be in [0, 1), not {heldout_fraction}.")


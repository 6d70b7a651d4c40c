"""Token ids of texts: batched through the fast tokenizer when there is one, long texts in pieces."""

from __future__ import annotations

from typing import Iterator

_PIECE_CHARS = 1 << 20  # longer documents are tokenized in pieces cut at line ends, to bound memory


def encode_texts(tokenizer, texts: list[str]) -> list[list[int]]:
    """Token ids of each text, no special tokens; batched, and long texts in pieces."""
    pieces, owner = [], []
    for i, text in enumerate(texts):
        for piece in _pieces(text):
            pieces.append(piece)
            owner.append(i)
    ids = _encode_batch(tokenizer, pieces)
    out: list[list[int]] = [[] for _ in texts]
    for i, piece_ids in zip(owner, ids):
        out[i].extend(piece_ids)
    return out


def _encode_batch(tokenizer, texts: list[str]) -> list[list[int]]:
    backend = getattr(tokenizer, "backend_tokenizer", None) if getattr(tokenizer, "is_fast", False) else None
    if backend is not None and backend.truncation is None and backend.padding is None:
        # the Rust tokenizer directly, without offsets: faster than tokenizer(...), same ids
        encode = getattr(backend, "encode_batch_fast", backend.encode_batch)
        return [e.ids for e in encode(texts, add_special_tokens=False)]
    return tokenizer(texts, add_special_tokens=False, verbose=False, return_attention_mask=False)["input_ids"]


def _pieces(text: str) -> Iterator[str]:
    start = 0
    while len(text) - start > _PIECE_CHARS:
        cut = text.rfind("\n", start, start + _PIECE_CHARS) + 1
        if cut <= start:  # no line end at all: cut anywhere
            cut = start + _PIECE_CHARS
        yield text[start:cut]
        start = cut
    yield text[start:]

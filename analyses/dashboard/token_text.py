"""A token as a reader should see it in a dashboard. Byte-level BPE (GPT-2, SmolLM2) stores each
byte as a printable stand-in character (a space is "Ġ"), and one token may hold only part of a
multi-byte character, which decodes on its own to U+FFFD ("�"). Such a token is shown as its
bytes instead, the readable part as text and the rest as escapes ("\\xe2\\x80"), as Neuronpedia
does, so that two different partial tokens never look alike."""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def _byte_of_symbol() -> dict[str, int]:
    """Inverse of byte-level BPE's byte -> printable character table: printable Latin-1 bytes stand
    for themselves, the other 68 bytes for the characters from U+0100 on, in byte order."""
    kept = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {}, 0
    for b in range(256):
        if b in kept:
            table[chr(b)] = b
        else:
            table[chr(256 + extra)] = b
            extra += 1
    return table


def token_bytes(tokenizer, token_id: int) -> bytes | None:
    """The raw bytes of one token of a byte-level BPE (or SentencePiece byte fallback "<0xE2>"); None
    when the tokenizer is neither."""
    symbol = tokenizer.convert_ids_to_tokens(int(token_id))
    if not isinstance(symbol, str) or not symbol:
        return None
    if len(symbol) == 6 and symbol.startswith("<0x") and symbol.endswith(">"):
        return bytes([int(symbol[3:5], 16)])
    table = _byte_of_symbol()
    if all(c in table for c in symbol):
        return bytes(table[c] for c in symbol)
    return None


def token_text(tokenizer, token_id: int) -> str:
    """The token decoded on its own, or, where that splits a character, its bytes shown as text and
    escapes."""
    text = tokenizer.decode([int(token_id)])
    if "\ufffd" not in text:
        return text
    raw = token_bytes(tokenizer, token_id)
    return text if raw is None else raw.decode("utf-8", errors="backslashreplace")

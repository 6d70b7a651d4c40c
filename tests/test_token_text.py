"""Dashboards show each token as readable text: whole tokens decoded (a space, not "Ġ"), and a token
that holds part of a multi-byte character as its bytes, not as U+FFFD."""

from analyses.dashboard import tokenizer_strings
from analyses.dashboard.token_text import token_bytes
from interp.gpt2_tokenizer import gpt2_tokenizer


def test_whole_tokens_read_as_text_with_spaces():
    tok = gpt2_tokenizer()
    ids = tok.encode(" the whale")
    shown = tokenizer_strings(tok)(ids)
    assert [shown[i] for i in ids] == [" the", " whale"]


def test_a_token_that_splits_a_character_shows_its_bytes():
    tok = gpt2_tokenizer()
    ids = tok.encode("🐋")  # 4 UTF-8 bytes, which GPT-2 splits over several tokens
    assert len(ids) > 1
    shown = tokenizer_strings(tok)(ids)
    parts = [shown[i] for i in ids]
    assert all("\ufffd" not in p for p in parts)
    assert b"".join(token_bytes(tok, i) for i in ids) == "🐋".encode()
    assert "".join(parts) == "".join(token_bytes(tok, i).decode("utf-8", "backslashreplace") for i in ids)
    assert parts[0].startswith("\\xf0")

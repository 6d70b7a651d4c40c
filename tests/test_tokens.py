import json

import pytest
import torch

from interp.errors import InterpError
from interp.tokens import is_heldout, pack_windows, token_windows

BOS, EOS = 1, 2


class CharTokenizer:
    """One token per character (its code point); counts the characters it was asked to encode."""

    name_or_path, bos_token_id, eos_token_id, is_fast = "chars", BOS, EOS, False

    def __init__(self):
        self.chars = 0

    def __len__(self):
        return 256

    def get_vocab(self):
        return {chr(i): i for i in range(256)}

    def __call__(self, texts, **kwargs):
        self.chars += sum(map(len, texts))
        return {"input_ids": [[ord(c) for c in t] for t in texts]}


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def corpus(folder, n_docs=200, length=60):
    """Document i is one character repeated, chr(300 + i): a window's ids name its documents."""
    folder.mkdir()
    for i in range(n_docs):
        (folder / f"doc{i:03d}.txt").write_text(chr(300 + i) * length)
    return str(folder)


def test_packing_puts_bos_first_and_keeps_token_order():
    windows = pack_windows([[10, 11, 12], [20, 21], [30, 31, 32, 33], [40]], context_size=4, bos=BOS, sep=EOS)
    # stream 10 11 12 | 20 21 | 30 31 32 33 | 40 |, cut in threes, each behind a BOS; "40 |" waits
    assert windows.tolist() == [[1, 10, 11, 12], [1, 2, 20, 21], [1, 2, 30, 31], [1, 32, 33, 2]]
    assert windows.dtype == torch.int64


def test_gpt2_windows_begin_with_bos_and_hold_the_text_in_order(home, tmp_path):
    from interp.gpt2_tokenizer import gpt2_tokenizer

    tok = gpt2_tokenizer()
    texts = ["The whale surfaced near the ship.", "Fellow citizens of the Senate and House."]
    folder = tmp_path / "t"
    folder.mkdir()
    for i, t in enumerate(texts):
        (folder / f"{i}.txt").write_text(t)
    windows = token_windows(str(folder), tok, context_size=8, split="all", heldout_fraction=0.0)
    assert (windows[:, 0] == 50256).all()
    stream = [t for text in texts for t in tok(text)["input_ids"] + [50256]]
    assert windows[:, 1:].flatten().tolist() == stream[: windows[:, 1:].numel()]
    assert len(windows) == len(stream) // 7


def test_split_is_deterministic_and_disjoint_by_document(home, tmp_path):
    source, tok = corpus(tmp_path / "c"), CharTokenizer()
    train = token_windows(source, tok, context_size=16, heldout_fraction=0.2)
    held = token_windows(source, tok, context_size=16, split="heldout", heldout_fraction=0.2)
    docs = lambda w: {t - 300 for t in w[:, 1:].flatten().tolist() if t >= 300}  # noqa: E731
    expected_held = {i for i in range(200) if is_heldout(f"doc{i:03d}.txt", 0.2)}
    assert 25 <= len(expected_held) <= 55
    assert docs(held) == expected_held
    assert docs(train) == set(range(200)) - expected_held
    again = token_windows(source, CharTokenizer(), context_size=16, split="heldout", heldout_fraction=0.2, cache=False)
    assert torch.equal(again, held)


def test_second_call_is_served_from_the_cache_without_tokenizing(home, tmp_path):
    source, tok = corpus(tmp_path / "c"), CharTokenizer()
    first = token_windows(source, tok, context_size=32)
    assert tok.chars == 200 * 60
    second = token_windows(source, tok, context_size=32)
    held = token_windows(source, tok, context_size=32, split="heldout")  # made in the same pass
    assert tok.chars == 200 * 60
    assert torch.equal(first, second) and len(held) > 0
    (folder,) = (home / "tokens").iterdir()
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["windows"]["train"] == len(first) and meta["complete"]
    assert (folder / "train.int32").stat().st_size == first.numel() * 4


def test_max_tokens_reads_a_prefix_and_a_larger_ask_extends_it(home, tmp_path):
    source, tok = corpus(tmp_path / "c", n_docs=300, length=500), CharTokenizer()
    small = token_windows(source, tok, context_size=64, max_tokens=640)
    assert small.shape == (10, 64)
    assert tok.chars < 300 * 500 / 4  # stopped early
    large = token_windows(source, tok, context_size=64, max_tokens=64 * 400)
    (folder,) = (home / "tokens").iterdir()
    docs_read = json.loads((folder / "meta.json").read_text())["docs_read"]
    assert tok.chars == 500 * docs_read < 300 * 500  # every document read was tokenized once
    full = token_windows(source, CharTokenizer(), context_size=64, cache=False)
    assert torch.equal(large, full[:400]) and torch.equal(small, full[:10])


def test_too_little_text_raises_interp_error(home, tmp_path):
    folder = tmp_path / "small"
    folder.mkdir()
    (folder / "a.txt").write_text("short")
    with pytest.raises(InterpError, match="no train window of 128 tokens"):
        token_windows(str(folder), CharTokenizer())
    (tmp_path / "empty").mkdir()
    with pytest.raises(InterpError, match="holds no text"):
        token_windows(str(tmp_path / "empty"), CharTokenizer())
    assert not list((home / "tokens").glob(".build-*"))  # the failed build left nothing behind

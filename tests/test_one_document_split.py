"""A source of one document (a single text file) is split into train and held-out by window, not by
document (which would put all of it on one side), says so when it is tokenized, and every command's
--help says what happens."""

from __future__ import annotations

import pytest

from interp.cli import main
from interp.gpt2_tokenizer import gpt2_tokenizer
from interp.tokens import token_windows


@pytest.fixture
def one_file(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_HOME", str(tmp_path / "home"))
    path = tmp_path / "book.txt"
    path.write_text(" ".join(f"Line {i} of the only document." for i in range(4000)))
    return path


def test_a_one_file_corpus_has_a_heldout_split_by_window(one_file, capsys):
    tok = gpt2_tokenizer()
    train = token_windows(str(one_file), tok, context_size=32, split="train")
    held = token_windows(str(one_file), tok, context_size=32, split="heldout")
    both = token_windows(str(one_file), tok, context_size=32, split="all")
    assert len(train) + len(held) == len(both)
    assert 0.02 < len(held) / len(both) < 0.09  # about 5%
    assert not {tuple(w) for w in train.tolist()} & {tuple(w) for w in held.tolist()}  # no window on both sides
    said = capsys.readouterr().out
    assert f"{one_file} is one document, so its held-out split is made of windows, not documents: " in said


def test_a_folder_of_documents_is_still_split_by_document(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("INTERP_HOME", str(tmp_path / "home"))
    (tmp_path / "docs").mkdir()
    for i in range(40):
        (tmp_path / "docs" / f"d{i}.txt").write_text(f"Document {i} is short. " * 30)
    token_windows(str(tmp_path / "docs"), gpt2_tokenizer(), context_size=32, split="all")
    assert "is one document" not in capsys.readouterr().out


@pytest.mark.parametrize("command", ["record", "eval-sae", "dashboard", "ablate", "train-sae", "compare-layers",
                                     "compare-edits", "train-lm", "serve"])
def test_help_says_what_happens_to_one_document(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert "a source of one document (a single text file) is split by window instead" in " ".join(capsys.readouterr().out.split())

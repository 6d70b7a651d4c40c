"""Local text is strict UTF-8 unless the user opts in; the choice is part of the token cache key."""

from __future__ import annotations

import pytest

from interp import text
from interp.errors import InterpError


@pytest.fixture(autouse=True)
def default_decoding():
    yield
    text.set_decoding()


def test_invalid_utf8_is_refused_with_the_file_and_byte_offset(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"good text " * 3 + b"\xff bad")
    with pytest.raises(InterpError, match=r"a\.txt is not valid utf-8 at byte 30 .*--errors replace"):
        list(text.iter_documents(str(tmp_path / "a.txt")))


def test_opting_in_reads_it_and_changes_the_fingerprint(tmp_path):
    (tmp_path / "a.txt").write_bytes("caf\u00e9 ".encode("latin-1") * 3)
    strict = text.source_fingerprint(str(tmp_path / "a.txt"))
    text.set_decoding("latin-1")
    assert [d.text for d in text.iter_documents(str(tmp_path / "a.txt"))] == ["caf\u00e9 " * 3]
    assert text.source_fingerprint(str(tmp_path / "a.txt")) != strict
    text.set_decoding("utf-8", "replace")
    assert "\ufffd" in next(text.iter_documents(str(tmp_path / "a.txt"))).text


def test_jsonl_lines_are_decoded_strictly_too(tmp_path):
    (tmp_path / "a.jsonl").write_bytes(b'{"text": "fine"}\n{"text": "\xe9"}\n')
    with pytest.raises(InterpError, match="not valid utf-8 at byte 27"):
        list(text.iter_documents(str(tmp_path / "a.jsonl")))

import hashlib
import json
import sys

import pytest

from interp import corpus
from interp.errors import InterpError
from interp.text import iter_documents, source_fingerprint, stable_unit


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_folder_source_reads_txt_md_and_jsonl_recursively_in_a_fixed_order(tmp_path):
    write(tmp_path / "b.txt", "second file")
    write(tmp_path / "a" / "notes.md", "# a note")
    write(tmp_path / "a" / "rows.jsonl", '{"text": "row one"}\n\n{"text": "row two", "n": 2}\n')
    write(tmp_path / "table.csv", "not,text")
    write(tmp_path / "blank.txt", "  \n")
    docs = list(iter_documents(str(tmp_path)))
    assert [(d.id, d.text) for d in docs] == [
        ("a/notes.md", "# a note"),
        ("a/rows.jsonl:1", "row one"),
        ("a/rows.jsonl:3", "row two"),
        ("b.txt", "second file"),
    ]


def test_glob_and_single_file_sources(tmp_path):
    write(tmp_path / "x" / "1.txt", "one")
    write(tmp_path / "x" / "deep" / "2.txt", "two")
    write(tmp_path / "x" / "3.md", "three")
    assert [d.id for d in iter_documents(str(tmp_path / "x" / "**" / "*.txt"))] == ["1.txt", "deep/2.txt"]
    assert [d.text for d in iter_documents(str(tmp_path / "x" / "3.md"))] == ["three"]


def test_fingerprint_changes_when_a_file_changes(tmp_path):
    f = write(tmp_path / "d" / "a.txt", "first")
    before = source_fingerprint(str(tmp_path / "d"))
    assert source_fingerprint(str(tmp_path / "d")) == before
    f.write_text("changed text")
    assert source_fingerprint(str(tmp_path / "d")) != before


@pytest.mark.parametrize("files", [{}, {"empty.txt": " \n\n"}, {"only.csv": "a,b"}])
def test_a_source_without_text_raises(tmp_path, files):
    for name, text in files.items():
        write(tmp_path / name, text)
    with pytest.raises(InterpError, match="holds no text"):
        list(iter_documents(str(tmp_path)))


def test_missing_paths_and_bad_jsonl_raise_one_clear_error(tmp_path):
    with pytest.raises(InterpError, match="no file or folder"):
        list(iter_documents(str(tmp_path / "nope.txt")))
    with pytest.raises(InterpError, match="no files match"):
        list(iter_documents(str(tmp_path / "*.txt")))
    write(tmp_path / "bad.jsonl", '{"body": "no text field"}\n')
    with pytest.raises(InterpError, match='line 1, has no "text" field'):
        list(iter_documents(str(tmp_path / "bad.jsonl")))


def test_a_dataset_name_without_the_datasets_package_names_the_offline_choices(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` fail
    with pytest.raises(InterpError, match=r"needs the `datasets` package.*offline:moby_dick"):
        list(iter_documents("wikitext:wikitext-103-raw-v1"))


def test_stable_unit_is_the_same_on_every_machine():
    # the held-out split depends on this value: it must never change between versions
    assert stable_unit("sotu/1790_george_washington_n.txt", "split") == pytest.approx(0.6120970420, abs=1e-9)
    assert 0 <= stable_unit("x") < 1


def test_failed_download_raises_interp_error_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_HOME", str(tmp_path))
    monkeypatch.setenv("NPM_CONFIG_REGISTRY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setattr(corpus.time, "sleep", lambda s: None)
    with pytest.raises(InterpError, match="could not download .*datasets-sotu"):
        corpus.fetch_text()
    assert list((tmp_path / "text").iterdir()) == []


def test_offline_corpus_manifest_lists_three_sources_with_sane_sizes():
    folder = corpus.fetch_text()  # set-up has fetched it: returns at once
    manifest = json.loads((folder / "manifest.json").read_text())
    s = manifest["sources"]
    assert {k: v["files"] for k, v in s.items()} == {"sotu": 233, "moby_dick": 138, "shakespeare": 42}
    assert 10e6 < s["sotu"]["bytes"] < 12e6 and 1.9e6 < s["sotu"]["gpt2_tokens"] < 2.2e6
    assert 1.0e6 < s["moby_dick"]["bytes"] < 1.5e6 and 0.25e6 < s["moby_dick"]["gpt2_tokens"] < 0.35e6
    assert 4.5e6 < s["shakespeare"]["bytes"] < 5.5e6 and 1.4e6 < s["shakespeare"]["gpt2_tokens"] < 1.7e6
    files = manifest["files"]
    assert manifest["totals"]["bytes"] == sum(f["bytes"] for f in files)
    assert manifest["totals"]["gpt2_tokens"] == sum(v["gpt2_tokens"] for v in s.values())
    for f in files[::50]:
        data = (folder / f["path"]).read_bytes()
        assert len(data) == f["bytes"] and hashlib.sha256(data).hexdigest() == f["sha256"]
    chapters = {d.id: d.text for d in iter_documents("offline:moby_dick")}
    assert chapters["moby_dick/chapter_1.txt"].startswith("CHAPTER 1. Loomings.\n\nCall me Ishmael.")
    assert not any(name.endswith("_gut_f.txt") for name in (f["path"] for f in files))

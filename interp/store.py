"""The on-disk activation cache: memory-mapped shards plus a JSON manifest.

Layout of a cache folder:

    manifest.json                    model, hooks and widths, dtype, context size, shards, totals
    shard_00000/tokens.bin           int32 [n_windows, context_size]: the text of every activation
    shard_00000/<hook_name>.bin      dtype [n_windows * context_size, d]: one row per token
    shard_00000/shard.json           first window, n_windows, checksums (what the manifest copies)

A shard becomes part of the cache only once its folder has been renamed into place AND the
manifest naming it has been replaced atomically, so a killed run leaves only whole shards.
Sizes are checked on every open; each file's crc32 checksum (and, for activations, that every value
is finite) the first time this process reads it, so that corrupt data is refused where it is read."""

from __future__ import annotations

import hashlib
import json
import shutil
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from interp.distributed import shard_range
from interp.errors import InterpError
from interp.files import write_json_atomic
from interp.shard_writer import SHARD_INFO, ShardWriter
from interp.training import epoch_seed

FORMAT = "interp-activations/1"
MANIFEST = "manifest.json"


def _crc(path: Path, dtype: np.dtype | None = None) -> tuple[int, int | None]:
    """(crc32 of the file, index of its first non-finite value or None); the values are checked
    only when `dtype` (a float type) is given. One read of the file, in chunks."""
    crc, bad, seen = 0, None, 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            crc = zlib.crc32(chunk, crc)
            if dtype is not None and bad is None:
                values = np.frombuffer(chunk, dtype=dtype)
                finite = np.isfinite(values)
                if not finite.all():
                    bad = seen + int(np.argmin(finite))
                seen += len(values)
    return crc, bad


# files this process has checked: (path, size, mtime_ns, crc32) of each, so each is read once
_VERIFIED: set[tuple[str, int, int, int]] = set()


@dataclass
class Shard:
    name: str
    n_windows: int
    crc32: dict[str, int]  # file name -> checksum


class ActivationStore:
    """Read a cache folder. Activations come back as numpy memmaps or torch batches."""

    def __init__(self, path: str | Path, verify: bool = True):
        """`verify=False` skips the checksums (for measuring their cost; sizes are still checked)."""
        self.path, self.check_sums = Path(path), verify
        mpath = self.path / MANIFEST
        if not mpath.exists():
            raise InterpError(f"{self.path} is not an activation cache (no {MANIFEST}); record one with `interp record`.")
        try:
            self.manifest = json.loads(mpath.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise InterpError(f"{mpath} is corrupt (not valid JSON); delete the folder and record again.") from None
        if self.manifest.get("format") != FORMAT:
            raise InterpError(f"{mpath} is not an {FORMAT} manifest.")
        self.shards = [Shard(**s) for s in self.manifest["shards"]]
        self.context_size: int = self.manifest["context_size"]
        self.hooks: dict[str, int] = {h: v["d"] for h, v in self.manifest["hooks"].items()}
        self.dtype = np.dtype(self.manifest["dtype"])
        self._check_sizes()

    # -- facts -------------------------------------------------------------------------------
    @property
    def n_windows(self) -> int:
        return sum(s.n_windows for s in self.shards)

    @property
    def n_tokens(self) -> int:
        return self.n_windows * self.context_size

    @property
    def model_name(self) -> str:
        return self.manifest["model"]

    def fingerprint(self) -> str:
        """Changes whenever the recording's settings or any shard's content does (not its folder)."""
        ident = json.dumps([self.manifest.get("header"), [(s.name, s.n_windows, s.crc32) for s in self.shards]], sort_keys=True)
        return hashlib.sha256(ident.encode()).hexdigest()[:16]

    @property
    def model_path(self) -> str | None:
        """The resolved folder of a local model (None for a model known by name)."""
        return self.manifest.get("header", {}).get("model_path")

    def _file(self, shard: Shard, what: str) -> Path:
        return self.path / shard.name / f"{what}.bin"

    def _expected_bytes(self, shard: Shard, what: str) -> int:
        if what == "tokens":
            return shard.n_windows * self.context_size * 4
        return shard.n_windows * self.context_size * self.hooks[what] * self.dtype.itemsize

    def _check_sizes(self) -> None:
        for shard in self.shards:
            for what in ["tokens", *self.hooks]:
                f = self._file(shard, what)
                want = self._expected_bytes(shard, what)
                have = f.stat().st_size if f.exists() else -1
                if have != want:
                    state = "missing" if have < 0 else f"{have} bytes, expected {want}"
                    raise InterpError(
                        f"shard {f} is {state}: the cache is damaged; rerun `interp record` with the same "
                        f"--out to rewrite it, or delete {self.path}."
                    )

    def check(self, hooks: list[str]) -> None:
        """Check now (once per process) the files that reading `hooks` will touch, so that a bad
        shard is refused before a long pass starts rather than in its middle."""
        for h in hooks:
            self._check_hook(h)
        for shard in self.shards:
            for what in ["tokens", *hooks]:
                self._verified(shard, what)

    def verify(self) -> None:
        """Check every file now; raise InterpError naming the first bad one."""
        for shard in self.shards:
            for what in ["tokens", *self.hooks]:
                self._verified(shard, what, force=True)

    def _verified(self, shard: Shard, what: str, force: bool = False) -> Path:
        """The file of `what` in `shard`, checked against its checksum (and, for activations, for
        NaN and inf) the first time this process reads it."""
        f = self._file(shard, what)
        if not (self.check_sums or force):
            return f
        st = f.stat()
        key = (str(f.resolve()), st.st_size, st.st_mtime_ns, shard.crc32[f.name])
        if key in _VERIFIED:
            return f
        crc, bad = _crc(f, None if what == "tokens" else self.dtype)
        redo = f"delete {self.path} and rerun the `interp record` command that wrote it (its run.json holds the arguments)"
        if crc != shard.crc32[f.name]:
            raise InterpError(f"shard {f} fails its checksum: the cache is corrupt; {redo}.")
        if bad is not None:
            d = self.hooks[what]
            raise InterpError(f"shard {f} holds a NaN or infinite activation (token {bad // d} of the shard, unit {bad % d}): "
                              f"the recording is bad data, not a training problem; check the model, then {redo}.")
        _VERIFIED.add(key)
        return f

    def _check_hook(self, hook: str) -> None:
        if hook not in self.hooks:
            raise InterpError(f"the cache at {self.path} has no {hook!r}; it holds {', '.join(self.hooks)}.")

    # -- memmaps -------------------------------------------------------------------------------
    def shard_tokens(self, i: int) -> np.ndarray:  # [n_windows, context_size] int32
        s = self.shards[i]
        return np.memmap(self._verified(s, "tokens"), dtype=np.int32, mode="r", shape=(s.n_windows, self.context_size))

    def shard_acts(self, i: int, hook: str) -> np.ndarray:  # [n_windows * context_size, d]
        self._check_hook(hook)
        s = self.shards[i]
        return np.memmap(self._verified(s, hook), dtype=self.dtype, mode="r", shape=(s.n_windows * self.context_size, self.hooks[hook]))

    def tokens(self) -> torch.Tensor:  # [n_windows, context_size] int64
        if not self.shards:
            return torch.zeros(0, self.context_size, dtype=torch.long)
        return torch.from_numpy(np.concatenate([np.asarray(self.shard_tokens(i)) for i in range(len(self.shards))]).astype(np.int64))

    # -- streaming -----------------------------------------------------------------------------
    def iter_windows(self, hooks: list[str], windows_per_batch: int = 32) -> Iterator[tuple[torch.Tensor, dict[str, torch.Tensor]]]:
        """In corpus order: (tokens [w, context_size] int64, {hook: acts [w, context_size, d] float32})."""
        for h in hooks:
            self._check_hook(h)
        context_size = self.context_size
        for i in range(len(self.shards)):
            toks = self.shard_tokens(i)
            acts = {h: self.shard_acts(i, h) for h in hooks}
            for w0 in range(0, len(toks), windows_per_batch):
                w1 = min(w0 + windows_per_batch, len(toks))
                yield (
                    torch.from_numpy(np.asarray(toks[w0:w1]).astype(np.int64)),
                    {h: torch.from_numpy(np.array(a[w0 * context_size : w1 * context_size], dtype=np.float32)).view(w1 - w0, context_size, -1) for h, a in acts.items()},
                )

    def iter_batches(
        self, hooks: list[str], batch_size: int, seed: int = 0, start_step: int = 0,
        epochs: int | None = None, skip_bos: bool = False, rank: int = 0, world: int = 1,
    ) -> Iterator[dict[str, torch.Tensor]]:
        """Shuffled token batches {hook: [batch_size, d] float32}, the same hooks' rows together.

        Each epoch is one permutation of all tokens, drawn from (seed, epoch); `start_step` skips
        exactly that many batches, so a resumed training run sees the batches it would have seen.
        `skip_bos` leaves out each window's first position (the BOS token, whose activations are
        outliers of another scale in most models). With `world` ranks, rank `rank` gets only its
        contiguous part of each batch (interp.distributed.shard_range): the ranks' parts of batch
        i together are batch i of one process, so the global batch size stays `batch_size`."""
        for h in hooks:
            self._check_hook(h)
        rows = np.arange(self.n_tokens)
        if skip_bos:
            rows = rows[rows % self.context_size != 0]
        n = len(rows)
        if n < batch_size:
            raise InterpError(f"the cache holds {n} tokens, fewer than one batch of {batch_size}; record more or use a smaller batch.")
        per_epoch = n // batch_size
        lo, hi = shard_range(batch_size, rank, world)
        rows_per_shard = [s.n_windows * self.context_size for s in self.shards]
        starts = np.cumsum([0] + rows_per_shard)
        maps = {h: [self.shard_acts(i, h) for i in range(len(self.shards))] for h in hooks}
        step = start_step
        while epochs is None or step < epochs * per_epoch:
            epoch, k = divmod(step, per_epoch)
            g = torch.Generator().manual_seed(epoch_seed(seed, epoch))
            perm = rows[torch.randperm(n, generator=g).numpy()]
            for k in range(k, per_epoch):  # noqa: B020 (resumes at step k of the epoch)
                idx = perm[k * batch_size + lo : k * batch_size + hi]
                yield {h: _gather(m, starts, idx) for h, m in maps.items()}
                step += 1
                if epochs is not None and step >= epochs * per_epoch:
                    return


def _gather(maps: list[np.ndarray], starts: np.ndarray, idx: np.ndarray) -> torch.Tensor:
    """Rows `idx` (global token indices) from shards whose first rows are `starts`; order kept."""
    out = np.empty((len(idx), maps[0].shape[1]), dtype=np.float32)
    shard_of = np.searchsorted(starts, idx, side="right") - 1
    for s in np.unique(shard_of):
        sel = np.nonzero(shard_of == s)[0]
        local = idx[sel] - starts[s]
        order = np.argsort(local)  # sorted reads are kinder to the page cache
        out[sel[order]] = maps[s][local[order]]
    return torch.from_numpy(out)


class CacheWriter:
    """Write whole shards to a cache folder; resumes a folder written with the same settings.

    Each shard folder also holds shard.json (its first window, size and checksums), written
    before the folder is renamed into place: a complete shard that the manifest does not name
    yet (a run killed in between, or shards that other ranks wrote) is kept and adopted into the
    manifest once the shards before it are there, rather than recomputed."""

    def __init__(self, path: str | Path, header: dict, owner: bool = True):
        """`header`: model, hooks {name: {"d": int}}, dtype, context_size and any run settings.
        A folder holding a different header is refused rather than mixed. Only the `owner`
        (rank 0 under torchrun) writes the manifest; other writers only add shard folders."""
        self.path, self.owner = Path(path), owner
        self.path.mkdir(parents=True, exist_ok=True)
        mpath = self.path / MANIFEST
        if mpath.exists():
            old = ActivationStore(self.path)  # raises on damage
            if old.manifest["header"] != header:
                raise InterpError(f"{self.path} holds a recording with other settings; choose another --out or delete it.")
            self.manifest = old.manifest
        elif owner:
            self.manifest = {"format": FORMAT, "header": header, "shards": [], "complete": False, **_flat(header)}
            for p in self.path.glob("shard_*"):  # a new recording: nothing earlier belongs to it
                shutil.rmtree(p, ignore_errors=True)
            write_json_atomic(mpath, self.manifest)
        else:
            raise InterpError(f"{self.path} has no {MANIFEST} yet; rank 0 creates it first.")
        if owner:
            keep = {s["name"] for s in self.manifest["shards"]} | set(self.pending())
            for p in self.path.glob("shard_*"):
                if p.name not in keep:
                    shutil.rmtree(p, ignore_errors=True)  # half-written leftovers of a killed run
            self.adopt()

    @property
    def n_windows(self) -> int:
        return sum(s["n_windows"] for s in self.manifest["shards"])

    def pending(self) -> dict[str, dict]:
        """Complete shard folders the manifest does not name yet: name -> shard.json."""
        known = {s["name"] for s in self.manifest["shards"]}
        out = {}
        for p in sorted(self.path.glob("shard_*")):
            if p.name in known or not (p / SHARD_INFO).exists():
                continue
            try:
                info = json.loads((p / SHARD_INFO).read_text())
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
            if self._sizes_match(p, info.get("n_windows", -1)):
                out[p.name] = info
        return out

    def _shard_bytes(self, n_windows: int) -> dict[str, int]:
        """The size of each file of a shard of `n_windows`, by name without '.bin'."""
        context_size, item = self.manifest["context_size"], np.dtype(self.manifest["dtype"]).itemsize
        return {"tokens": n_windows * context_size * 4} | {h: n_windows * context_size * v["d"] * item for h, v in self.manifest["hooks"].items()}

    def _sizes_match(self, folder: Path, n_windows: int) -> bool:
        want = self._shard_bytes(n_windows)
        return all((folder / f"{w}.bin").exists() and (folder / f"{w}.bin").stat().st_size == b for w, b in want.items())

    def adopt(self) -> int:
        """Name in the manifest every pending shard that continues it (the next index and the next
        window), in order; returns how many."""
        pending, added = self.pending(), 0
        while (info := pending.get(shard_name(len(self.manifest["shards"])))) and info["first_window"] == self.n_windows:
            self._append(info)
            added += 1
        if added:
            write_json_atomic(self.path / MANIFEST, self.manifest)
        return added

    def _append(self, info: dict) -> None:
        self.manifest["shards"].append({k: info[k] for k in ("name", "n_windows", "crc32")})
        self.manifest["n_windows"] = self.n_windows
        self.manifest["n_tokens"] = self.n_windows * self.manifest["context_size"]

    def open_shard(self, index: int | None = None, first_window: int | None = None) -> ShardWriter:
        """A shard to append to batch by batch (interp/shard_writer.py), put in place by
        `close_shard`. By default the shard after the manifest's last; ranks writing out of order
        give `index` and `first_window`, and rank 0 adopts their shards at the end."""
        index = len(self.manifest["shards"]) if index is None else index
        first_window = self.n_windows if first_window is None else first_window
        return ShardWriter(self.path, shard_name(index), first_window, ["tokens", *self.manifest["hooks"]])

    def close_shard(self, shard: ShardWriter) -> None:
        """Put a whole shard in place and, when it continues the manifest, name it there at once."""
        if shard.bytes != self._shard_bytes(shard.n_windows):
            shard.abort()
            raise InterpError(f"shard {shard.name} was not written whole (its files disagree with its "
                              f"{shard.n_windows} windows); nothing was put in {self.path}.")
        info = shard.close()
        if self.owner and info["name"] == shard_name(len(self.manifest["shards"])) and info["first_window"] == self.n_windows:
            self._append(info)
            write_json_atomic(self.path / MANIFEST, self.manifest)

    def write_shard(self, tokens: np.ndarray, acts: dict[str, np.ndarray], index: int | None = None,
                    first_window: int | None = None) -> None:
        """A whole shard at once: tokens [w, context_size] int32; acts {hook: [w*context_size, d]} in the cache dtype."""
        shard = self.open_shard(index, first_window)
        try:
            for h, arr in acts.items():
                shard.append(h, arr)
            shard.append_tokens(tokens)
        except BaseException:
            shard.abort()
            raise
        self.close_shard(shard)

    def finish(self, **extra) -> None:
        """Adopt what other ranks wrote, mark the recording complete, drop unnamed leftovers."""
        self.adopt()
        self.manifest.update(extra, complete=True)
        write_json_atomic(self.path / MANIFEST, self.manifest)
        known = {s["name"] for s in self.manifest["shards"]}
        for p in self.path.glob("shard_*"):
            if p.name not in known:
                shutil.rmtree(p, ignore_errors=True)


def shard_name(index: int) -> str:
    """The folder of the shard at position `index` in the manifest."""
    return f"shard_{index:05d}"


def _flat(header: dict) -> dict:
    """The manifest repeats the header's main facts at top level for readers and people."""
    keys = ("model", "model_path", "hooks", "dtype", "context_size", "source", "split")
    return {k: header[k] for k in keys if k in header} | {"n_windows": 0, "n_tokens": 0}


def __getattr__(name: str):
    # ActivationCache: the store's name before it was renamed (it clashed with TransformerLens's own
    # ActivationCache); kept for one release
    if name == "ActivationCache":
        import warnings

        warnings.warn("interp.store.ActivationCache is now ActivationStore; the old name will go in the next release.",
                      DeprecationWarning, stacklevel=2)
        return ActivationStore
    raise AttributeError(f"module 'interp.store' has no attribute {name!r}")

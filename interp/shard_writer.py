"""One shard of the activation cache, written as the recording goes.

Every file of the shard (tokens.bin and one <hook>.bin per hook) is appended batch by batch under
a temporary folder `<name>.tmp`, with its crc32 updated from the same bytes, and no shard-sized
buffer is ever held. Where the filesystem offers direct I/O (interp/direct_file.py) the bytes go
to the disk through a few reused staging buffers and a writer thread of the shard's own; elsewhere
(or with DIRECT = False) they go to the page cache in one copy, and `sync` pushes them to the disk
between batches. Either way the files hold the same bytes.
`close()` fsyncs the files (all at once), writes shard.json and renames the folder into place (then fsyncs the
parent): until then a killed run leaves only the temporary folder, which the next run removes.
Any failure removes the temporary folder and becomes one line (InterpError)."""

from __future__ import annotations

import errno
import os
import shutil
import zlib
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from interp import files
from interp.direct_file import open_direct
from interp.errors import InterpError
from interp.files import fsync_dir, write_error, write_json_atomic

SHARD_INFO = "shard.json"  # in each shard folder: its first window, size and checksums
DIRECT = True  # write with direct I/O where the filesystem offers it; bench/record.py and tests turn it off


class ShardWriter:
    def __init__(self, root: Path, name: str, first_window: int, files: list[str]):
        """`files`: the names of the shard's files without '.bin' ('tokens' and each hook)."""
        self.root, self.name, self.first_window = Path(root), name, int(first_window)
        self.tmp = self.root / (name + ".tmp")
        self.n_windows = 0
        self.crc32 = dict.fromkeys(files, 0)
        self.bytes = dict.fromkeys(files, 0)
        self._handles: dict = {}
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"write-{name}") if DIRECT else None
        with self._guard():
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp.mkdir()
            for what in files:
                path = self.tmp / f"{what}.bin"
                h = open_direct(path, self._writer) if self._writer else None
                if h is None and self._writer:  # no direct I/O on this filesystem: the page cache
                    if self._handles:  # refused for one file of a folder but not the one before
                        raise OSError(errno.EINVAL, "direct I/O was refused half way through opening a shard")
                    self._writer.shutdown()
                    self._writer = None
                self._handles[what] = h or open(path, "wb", buffering=0)  # unbuffered: `sync` may run in another thread

    @property
    def direct(self) -> bool:
        """True when the files are written with direct I/O (then `sync` has nothing to do)."""
        return self._writer is not None

    def append(self, what: str, arr: np.ndarray) -> None:
        """Append rows to one file (in the cache's dtype; C order is made if needed)."""
        data = memoryview(np.ascontiguousarray(arr)).cast("B")
        with self._guard():
            if self.direct:
                self._handles[what].append(data)
            else:
                self._handles[what].write(data)
        self.crc32[what] = zlib.crc32(data, self.crc32[what])
        self.bytes[what] += data.nbytes

    def append_tokens(self, tokens: np.ndarray) -> None:
        """tokens [w, ctx] int32 of the windows whose activations the hooks append."""
        self.append("tokens", tokens.astype(np.int32, copy=False))
        self.n_windows += int(tokens.shape[0])

    def sync(self) -> None:
        """Send what is written so far to the disk (when interp.files.DURABLE), so that `close` has
        little left to wait for; the recorder calls it from a background thread between batches.
        A failure is left for the caller to raise (and `abort`)."""
        if files.DURABLE and not self.direct:
            with self._guard(abort=False):
                for h in list(self._handles.values()):
                    os.fsync(h.fileno())

    def close(self) -> dict:
        """Make the shard durable and put it in place; returns its shard.json."""
        with self._guard():
            for h in self._handles.values():
                if self.direct:
                    h.finish()  # the last partial block, and every write handed to the writer thread
            if files.DURABLE:
                _fsync_all([h.fileno() for h in self._handles.values()])
            for h in self._handles.values():
                h.close()
            self._stop_writer()
            info = {"name": self.name, "n_windows": self.n_windows, "first_window": self.first_window,
                    "crc32": {f"{w}.bin": c for w, c in self.crc32.items()}}
            write_json_atomic(self.tmp / SHARD_INFO, info)
            shutil.rmtree(self.root / self.name, ignore_errors=True)  # a shard of an earlier plan
            os.replace(self.tmp, self.root / self.name)
            fsync_dir(self.root)
        return info

    def abort(self) -> None:
        for h in self._handles.values():
            try:
                h.close()
            except OSError:  # its last bytes could not be flushed: the folder goes anyway
                pass
        self._stop_writer()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _stop_writer(self) -> None:
        if self._writer is not None:
            self._writer.shutdown(wait=True)

    @contextmanager
    def _guard(self, abort: bool = True):
        """On an error inside: remove the temporary folder (unless told not to) and raise one line."""
        try:
            yield
        except InterpError:  # a write_atomic inside: already one line
            if abort:
                self.abort()
            raise
        except OSError as e:
            if abort:
                self.abort()
            if e.errno == errno.ENOSPC:
                raise InterpError(f"the disk is full while writing {self.name} to {self.root}; the shards written before "
                                  "it are intact: free space and rerun the same command to resume.") from None
            raise write_error(self.root / self.name, e) from None


def _fsync_all(fds: list[int]) -> None:
    """fsync every file of a shard at once: the disk's cache flushes of concurrent fsyncs merge
    (31 files here: 4-12 ms at once against 40-110 ms one after another), and this wait is on the
    recording's critical path for its last shard."""
    with ThreadPoolExecutor(max_workers=min(32, len(fds)), thread_name_prefix="fsync") as pool:
        for f in [pool.submit(os.fsync, fd) for fd in fds]:
            f.result()

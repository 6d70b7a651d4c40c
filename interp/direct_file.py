"""A file appended with direct I/O (O_DIRECT): the bytes go from a small reused staging buffer to
the disk, by a background thread, without passing through the page cache.

Why: writing a recording through the page cache makes the kernel find a fresh page for every
4 KB written, and on a virtual machine a fresh page is often one the host has not backed yet:
writing 288 MB that way took 75-800 ms of the recording thread's time, varying from run to run,
while a bare forward to the same depth took about 13 s (bench/results/record.md). Here the
recording thread only copies each block-aligned piece into one of a few page-aligned staging
buffers (reused, so already backed) and hands it to a writer thread, which waits on the disk
without using the CPU the model runs on. What does not fill a whole block waits in a small
carry; `close` writes it padded to a block and truncates the file to its true length, so the
bytes on disk are exactly those appended.

`open_direct` returns None where direct I/O is not offered (tmpfs, macOS): the caller then
writes through the page cache as before. Errors from the writer thread come back as OSError
from the next `append` or from `close`."""

from __future__ import annotations

import errno
import mmap
import os
import queue
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

BLOCK = 4096  # offsets, lengths and buffer addresses of direct I/O are multiples of this
STAGE = 1 << 20  # one staging buffer
N_STAGES = 8  # staging buffers in the process at most (8 MB, kept for the next recording)

_free: queue.LifoQueue = queue.LifoQueue()
_made = 0
_made_lock = threading.Lock()


def _stage() -> memoryview:
    """A free page-aligned staging buffer; waits for the writer when all are in flight."""
    global _made
    try:
        return _free.get_nowait()
    except queue.Empty:
        pass
    with _made_lock:
        if _made < N_STAGES:
            _made += 1
            return memoryview(mmap.mmap(-1, STAGE))  # anonymous maps are page-aligned
    return _free.get()


def open_direct(path: Path, writer: ThreadPoolExecutor) -> DirectFile | None:
    """A new empty file at `path` written by `writer` (one thread), or None if the filesystem
    refuses direct I/O."""
    flag = getattr(os, "O_DIRECT", 0)
    if not flag:
        return None
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | flag, 0o644)
    except OSError as e:
        if e.errno == errno.EINVAL:  # this filesystem has no direct I/O
            return None
        raise
    return DirectFile(fd, writer)


class DirectFile:
    def __init__(self, fd: int, writer: ThreadPoolExecutor):
        self.fd, self.writer = fd, writer
        self.offset = 0  # bytes handed to the writer so far (a multiple of BLOCK)
        self.carry = bytearray()  # the last bytes appended that do not fill a block yet
        self.inflight: list[Future] = []

    def append(self, data: memoryview) -> None:
        """Append bytes (a 'B' memoryview); copies them, so the caller may reuse its buffer."""
        self._check()
        if self.carry:  # top the carry up to a whole block first
            k = min(BLOCK - len(self.carry), len(data))
            self.carry += data[:k]
            data = data[k:]
            if len(self.carry) < BLOCK:
                return
            self._submit(memoryview(self.carry))
            self.carry = bytearray()
        whole = len(data) // BLOCK * BLOCK
        for i in range(0, whole, STAGE):
            self._submit(data[i : min(i + STAGE, whole)])
        self.carry = bytearray(data[whole:])

    def _submit(self, piece: memoryview) -> None:
        buf = _stage()
        buf[: len(piece)] = piece
        self.inflight.append(self.writer.submit(_pwrite, self.fd, buf, len(piece), self.offset))
        self.offset += len(piece)

    def _check(self) -> None:
        """Raise the first failed write; forget the finished ones."""
        still = []
        for f in self.inflight:
            if f.done():
                f.result()
            else:
                still.append(f)
        self.inflight = still

    def wait(self) -> None:
        """Until every write handed over has finished; raises the first that failed."""
        errors = []
        for f in self.inflight:
            try:
                f.result()
            except OSError as e:
                errors.append(e)
        self.inflight = []
        if errors:
            raise errors[0]

    def finish(self) -> None:
        """Write the carry (padded to a block, then cut back) and wait for all writes."""
        self.wait()
        if self.carry:
            n = len(self.carry)
            buf = _stage()
            buf[:n] = self.carry
            buf[n:BLOCK] = bytes(BLOCK - n)
            _pwrite(self.fd, buf, BLOCK, self.offset)
            os.ftruncate(self.fd, self.offset + n)
            self.offset += n
            self.carry = bytearray()

    def fileno(self) -> int:
        return self.fd

    def close(self) -> None:
        """Close the file after waiting for the writer, whatever it did (errors are for `wait`
        and `finish` to raise); closing twice does nothing."""
        for f in self.inflight:
            f.exception()
        self.inflight = []
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)


def _pwrite(fd: int, buf: memoryview, n: int, offset: int) -> None:
    """Write buf[:n] at `offset` and give the buffer back, even when the write fails."""
    try:
        done = 0
        while done < n:
            done += os.pwrite(fd, buf[done:n], offset + done)
    finally:
        _free.put(buf)

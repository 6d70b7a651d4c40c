"""A shard written with direct I/O (staging buffers and a writer thread) holds exactly the bytes
that the page-cache path writes; a failed write in the writer thread is one line and leaves no
temporary folder."""

from __future__ import annotations

import errno
import hashlib
import os

import numpy as np
import pytest

import interp.direct_file
import interp.shard_writer
from interp.errors import InterpError
from interp.recording import record
from interp.shard_writer import ShardWriter
from interp.store import ActivationStore

HOOKS = ["blocks.0.hook_resid_post", "blocks.1.mlp.hook_post", "blocks.2.attn.hook_z"]


def tree(root) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != "manifest.json"}


def direct_here(tmp_path) -> bool:
    w = ShardWriter(tmp_path, "probe", 0, ["x"])
    try:
        return w.direct
    finally:
        w.abort()


def test_direct_and_page_cache_recordings_are_the_same_bytes(tiny_model, tiny_windows, tmp_path, monkeypatch):
    if not direct_here(tmp_path):
        pytest.skip("this filesystem has no direct I/O")
    record(tiny_model, tiny_windows, HOOKS, tmp_path / "direct", batch_size=8, progress=False)
    monkeypatch.setattr(interp.shard_writer, "DIRECT", False)
    record(tiny_model, tiny_windows, HOOKS, tmp_path / "cached", batch_size=8, progress=False)
    a, b = tree(tmp_path / "direct"), tree(tmp_path / "cached")
    assert a == b and len(a) == 1 + len(HOOKS) + 1  # shard.json, tokens and each hook
    ActivationStore(tmp_path / "direct").verify()


@pytest.mark.parametrize("sizes", [[5], [4096], [4095, 1, 4097], [3 << 20, 7, (1 << 20) + 3], [1] * 50])
def test_pieces_that_straddle_blocks_and_staging_buffers(tmp_path, sizes):
    """Appends of any length, across the 4 KB blocks and the 1 MB staging buffers, land in order."""
    if not direct_here(tmp_path):
        pytest.skip("this filesystem has no direct I/O")
    rng = np.random.default_rng(0)
    pieces = [rng.integers(0, 256, n, dtype=np.uint8) for n in sizes]
    w = ShardWriter(tmp_path, "s", 0, ["x"])
    assert w.direct
    for p in pieces:
        w.append("x", p)
    w.close()
    assert (tmp_path / "s" / "x.bin").read_bytes() == np.concatenate(pieces).tobytes()


def test_a_failed_write_in_the_writer_thread_is_one_line(tiny_model, tiny_windows, tmp_path, monkeypatch):
    if not direct_here(tmp_path):
        pytest.skip("this filesystem has no direct I/O")

    def pwrite(fd, data, offset):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(interp.direct_file.os, "pwrite", pwrite)
    with pytest.raises(InterpError) as e:
        record(tiny_model, tiny_windows, HOOKS, tmp_path / "acts", batch_size=8, progress=False)
    assert "\n" not in str(e.value) and "the disk is full" in str(e.value)
    assert not list((tmp_path / "acts").glob("shard_*"))

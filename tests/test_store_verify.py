"""Every reader of an activation cache checks each shard file once per process, lazily, the first
time it reads it: a shard with flipped bytes (same size) or with NaN activations is refused in
one line that names the file and how to re-record it."""

from __future__ import annotations

import json
import zlib

import numpy as np
import pytest

from interp.errors import InterpError
from interp.recording import record
from interp.store import ActivationStore

HOOK = "blocks.1.hook_resid_post"


def flip_a_byte(path, at: int = 101) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x40
    path.write_bytes(bytes(data))


@pytest.fixture
def cache_dir(tiny_model, tiny_windows, tmp_path, monkeypatch):
    import interp.recording

    monkeypatch.setattr(interp.recording, "SHARD_BYTES", 10 * 16 * (4 + 32 * 4))  # 10 windows of 16 a shard
    record(tiny_model, tiny_windows, [HOOK], tmp_path / "acts", batch_size=10, progress=False)
    assert len(ActivationStore(tmp_path / "acts").shards) == 4
    return tmp_path / "acts"


@pytest.mark.parametrize("read", ["batches", "windows", "tokens"])
def test_flipped_bytes_in_a_shard_are_refused_by_every_reader(cache_dir, read):
    f = cache_dir / "shard_00002" / ("tokens.bin" if read == "tokens" else f"{HOOK}.bin")
    flip_a_byte(f)
    cache = ActivationStore(cache_dir)  # opening checks sizes only: the flip keeps the size
    with pytest.raises(InterpError) as e:
        if read == "batches":
            next(cache.iter_batches([HOOK], batch_size=16, epochs=1))
        elif read == "windows":
            list(cache.iter_windows([HOOK]))
        else:
            cache.tokens()
    msg = str(e.value)
    assert "\n" not in msg and str(f) in msg and "fails its checksum" in msg and "interp record" in msg


def test_nan_activations_are_reported_as_bad_data_before_training_reads_a_batch(cache_dir):
    f = cache_dir / "shard_00001" / f"{HOOK}.bin"
    a = np.fromfile(f, dtype=np.float32)
    a[3 * 32 + 5] = np.nan  # token 3, unit 5 (d_model 32)
    f.write_bytes(a.tobytes())
    for meta in [cache_dir / "shard_00001" / "shard.json", cache_dir / "manifest.json"]:  # a consistent checksum
        m = json.loads(meta.read_text())
        for s in m.get("shards", [m]):
            if s["name"] == "shard_00001":
                s["crc32"][f.name] = zlib.crc32(a.tobytes())
        meta.write_text(json.dumps(m))
    with pytest.raises(InterpError, match=r"NaN or infinite activation \(token 3 of the shard, unit 5\).*not a training problem"):
        next(ActivationStore(cache_dir).iter_batches([HOOK], batch_size=16, epochs=1))


def test_a_good_cache_is_read_once_per_process_and_the_check_can_be_skipped(cache_dir, monkeypatch):
    from interp import store

    calls = []
    real = store._crc
    monkeypatch.setattr(store, "_crc", lambda *a: calls.append(a[0]) or real(*a))
    monkeypatch.setattr(store, "_VERIFIED", set())
    for _ in range(2):
        list(ActivationStore(cache_dir).iter_windows([HOOK]))
    assert len(calls) == 8  # 4 shards x (tokens + one hook), the second pass reads none
    flip_a_byte(cache_dir / "shard_00000" / f"{HOOK}.bin")
    assert len(list(ActivationStore(cache_dir, verify=False).iter_windows([HOOK]))) == 4

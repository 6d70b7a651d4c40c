"""Every writer survives a full disk and a power cut: ENOSPC injected at each one (shards,
manifests, checkpoints, SAE folders, token caches, LM folders) becomes one line, removes the
partial file and keeps every earlier output; and each file is fsynced before its rename and its
folder after it."""

from __future__ import annotations

import errno
import hashlib
import os
import stat

import numpy as np
import pytest
import torch

import interp.tokens
from interp.checkpoints import checkpoint_steps, write_checkpoint
from interp.errors import InterpError
from interp.files import write_json_atomic
from interp.lm.build import build_model
from interp.lm.config import LMConfig
from interp.lm.folder import save_lm_folder
from interp.recording import record
from interp.store import ActivationStore, CacheWriter
from sae import SAEConfig, TrainConfig, create_sae, save_sae

HOOK = "blocks.0.hook_resid_post"
FULL = "the disk is full while writing"


def tree(root) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def disk_full(monkeypatch):
    """Turn on a full disk: every fsync (where a real full disk often shows) raises ENOSPC."""
    def on():
        def fsync(fd):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        monkeypatch.setattr(os, "fsync", fsync)
    return on


def one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg and FULL in msg and "rerun the same command" in msg
    return msg


def test_a_manifest_write(tmp_path, disk_full):
    write_json_atomic(tmp_path / "manifest.json", {"v": 1})
    before = tree(tmp_path)
    disk_full()
    with pytest.raises(InterpError) as e:
        write_json_atomic(tmp_path / "manifest.json", {"v": 2})
    assert str(tmp_path / "manifest.json") in one_line(e)
    assert tree(tmp_path) == before  # the old manifest, no temporary file


def test_a_shard_write(tiny_model, tiny_windows, tmp_path, disk_full):
    record(tiny_model, tiny_windows[:8], [HOOK], tmp_path / "acts", progress=False)
    cache = ActivationStore(tmp_path / "acts")
    writer = CacheWriter(tmp_path / "acts", cache.manifest["header"])
    before = tree(tmp_path)
    disk_full()
    with pytest.raises(InterpError) as e:
        writer.write_shard(np.zeros((8, 16), np.int32), {HOOK: np.zeros((128, 32), np.float32)})
    one_line(e)
    assert tree(tmp_path) == before


def test_a_checkpoint_write(tmp_path, disk_full):
    write_checkpoint(tmp_path, 10, {"w": torch.ones(3)}, {"a": 1})
    before = tree(tmp_path)
    disk_full()
    with pytest.raises(InterpError) as e:
        write_checkpoint(tmp_path, 20, {"w": torch.zeros(3)}, {"a": 2})
    one_line(e)
    assert tree(tmp_path) == before and checkpoint_steps(tmp_path) == [10]


def test_an_sae_folder_write(tmp_path, disk_full):
    sae = create_sae(SAEConfig("topk", 8, 16, k=2, hook_name=HOOK, model_name="m"))
    sae.init_weights(torch.Generator().manual_seed(0), TrainConfig())
    save_sae(sae, tmp_path / "sae")
    before = tree(tmp_path)
    disk_full()
    with pytest.raises(InterpError) as e:
        save_sae(sae, tmp_path / "sae")
    one_line(e)
    assert tree(tmp_path) == before


def test_an_lm_folder_write(tmp_path, disk_full):
    model = build_model(LMConfig(arch="gpt2", n_layers=1, d_model=16, n_heads=2, n_ctx=8, d_vocab=20))
    save_lm_folder(model, LMConfig(arch="gpt2", n_layers=1, d_model=16, n_heads=2, n_ctx=8, d_vocab=20), tmp_path / "lm")
    before = tree(tmp_path)
    disk_full()
    with pytest.raises(InterpError) as e:
        save_lm_folder(model, LMConfig(arch="gpt2", n_layers=1, d_model=16, n_heads=2, n_ctx=8, d_vocab=20), tmp_path / "lm")
    one_line(e)
    assert set(tree(tmp_path)) <= set(before) | {"lm"}  # nothing partial; the weights file is the old one
    assert tree(tmp_path)["lm/model.safetensors"] == before["lm/model.safetensors"]


def test_a_token_cache_write(tmp_path, monkeypatch):
    from interp.gpt2_tokenizer import gpt2_tokenizer

    monkeypatch.setenv("INTERP_HOME", str(tmp_path / "home"))
    (tmp_path / "text.txt").write_text("The whale is white and the sea is deep. " * 200)
    real_open = open

    def full_open(path, mode="r", *a, **k):  # the window files of the token cache
        f = real_open(path, mode, *a, **k)
        if str(path).endswith(".int32"):
            f.close()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return f
    monkeypatch.setattr(interp.tokens, "open", full_open, raising=False)
    with pytest.raises(InterpError) as e:
        interp.tokens.token_windows(str(tmp_path / "text.txt"), gpt2_tokenizer(), context_size=16, split="all")
    one_line(e)
    assert not [p for p in (tmp_path / "home" / "tokens").rglob("*") if p.is_file()]  # no partial cache


def test_files_are_fsynced_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    synced = []
    real = os.fsync

    def fsync(fd):
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real(fd)
    monkeypatch.setattr(os, "fsync", fsync)
    write_json_atomic(tmp_path / "a.json", {"x": 1})
    assert synced == ["file", "dir"]
    synced.clear()
    w = CacheWriter(tmp_path / "acts", {"model": "m", "hooks": {HOOK: {"d": 4}}, "dtype": "float32", "context_size": 2})
    synced.clear()
    w.write_shard(np.zeros((3, 2), np.int32), {HOOK: np.ones((6, 4), np.float32)})
    # tokens.bin, the hook's .bin, shard.json (+ its folder), the shard's rename, the manifest (+ folder)
    assert synced == ["file", "file", "file", "dir", "dir", "file", "dir"]


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="names an open file through /proc")
def test_a_recording_whose_disk_fills_mid_shard(tiny_model, tiny_windows, tmp_path, monkeypatch):
    record(tiny_model, tiny_windows[:8], [HOOK], tmp_path / "acts", progress=False)
    before = tree(tmp_path)
    real, failed = os.fsync, []

    def fsync(fd):  # the disk fills once activations are being written into a shard
        if ".tmp/" in os.readlink(f"/proc/self/fd/{fd}"):
            failed.append(fd)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd)
    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(InterpError) as e:
        record(tiny_model, tiny_windows, [HOOK], tmp_path / "other", batch_size=4, progress=False)
    one_line(e)
    assert failed
    assert not list((tmp_path / "other").glob("shard_*"))  # no temporary shard folder left
    assert {k: v for k, v in tree(tmp_path).items() if k.startswith("acts/")} == before

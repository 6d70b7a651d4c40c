"""Every writer survives a full disk and a power cut: ENOSPC injected at each one (shards,
manifests, checkpoints, SAE folders, token caches, LM folders, compare-layers' and compare-edits'
results and reports, dashboard pages) becomes one line, removes the partial file and keeps every
earlier output; and each file is fsynced before its rename and its folder after it."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
import synthetic_dashboard as sd
import torch

import interp.files
import interp.tokens
from analyses.dashboard import make_dashboard
from analyses.scoring import ScoringConfig
from interp.checkpoints import checkpoint_steps, write_checkpoint
from interp.errors import InterpError
from interp.files import write_json_atomic
from interp.lm.build import build_model
from interp.lm.config import LMConfig
from interp.lm.folder import save_lm_folder
from interp.pipelines import compare_edits as CE
from interp.pipelines.compare_layers import DepthConfig, compare_layers
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


@pytest.fixture
def full_at(monkeypatch):
    """full_at(name): the disk fills while a file called `name` is written (its temporary file is
    created, then writing to it fails with ENOSPC). Returns the paths it failed."""
    real_open, failed = open, []

    def on(name: str) -> list:
        def full_open(path, mode="r", *a, **k):
            f = real_open(path, mode, *a, **k)
            if "w" in mode and Path(path).name.startswith(f".{name}.tmp"):
                f.close()
                failed.append(path)
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
            return f
        monkeypatch.setattr(interp.files, "open", full_open, raising=False)
        return failed
    return on


def kept(before: dict, after: dict, target: str) -> None:
    """What a failed write must leave: the file it was writing as it was (or still absent), every
    earlier file still there, no temporary file."""
    assert after.get(target) == before.get(target)
    assert set(before) <= set(after)
    assert not [k for k in after if ".tmp" in k]


DEPTH = DepthConfig(site="mlp_post", arch="topk", k=4, expansion=2, sae_batch_size=128, features_per_layer=4,
                    eval_tokens=64, checkpoint_every=4, fit_tokens=256, bases=("neurons", "sae", "random"),
                    scoring=ScoringConfig(example_len=8, n_top_train=4, n_random_train=4, n_top_heldout=4,
                                          n_random_heldout=4, n_boot=50))
_g = torch.Generator().manual_seed(3)
TRAIN, HELD = torch.randint(1, 101, (48, 17), generator=_g), torch.randint(1, 101, (16, 17), generator=_g)


@pytest.fixture(scope="module")
def depth_run(tiny_model, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("depth") / "run"
    compare_layers(tiny_model, [0], TRAIN, HELD, out, DEPTH, log=lambda s: None, progress=False)
    return out


@pytest.mark.parametrize("name", ["results.json", "report.md", "report.html"])
def test_compare_layers_results_and_reports(tiny_model, depth_run, tmp_path, full_at, name):
    out = tmp_path / "run"
    shutil.copytree(depth_run, out)
    before = tree(out)
    failed = full_at(name)
    with pytest.raises(InterpError) as e:
        compare_layers(tiny_model, [0], TRAIN, HELD, out, DEPTH, log=lambda s: None, progress=False)
    assert failed and str(out / name) in one_line(e)
    kept(before, tree(out), name)


def test_compare_layers_units_of_a_new_layer(tiny_model, depth_run, tmp_path, full_at):
    out = tmp_path / "run"
    shutil.copytree(depth_run, out)
    before = tree(out)
    failed = full_at("units.json")
    with pytest.raises(InterpError) as e:
        compare_layers(tiny_model, [0, 2], TRAIN, HELD, out, DEPTH, log=lambda s: None, progress=False)
    assert failed and str(out / "layers" / "L02" / "units.json") in one_line(e)
    after = tree(out)
    kept(before, after, "layers/L02/units.json")
    assert "layers/L02/done.json" not in after  # the layer is not finished: a rerun scores it
    assert {k: v for k, v in after.items() if k in before} == before  # layer 0's outputs are untouched


@pytest.mark.parametrize("name", ["results.json", "report.md", "report.html"])
def test_compare_edits_results_and_reports(tiny_model, tmp_path, full_at, name):
    g = torch.Generator().manual_seed(5)
    train, held = torch.randint(0, 101, (24, 16), generator=g), torch.randint(0, 101, (8, 16), generator=g)
    cfg = CE.EditConfig(units=("neurons",), units_per_layer=4, stat_windows=24, batch_size=8, n_boot=50)
    CE.compare_edits(tiny_model, [0], train, held, tmp_path / "edits", cfg, log=lambda s: None)
    before = tree(tmp_path / "edits")
    failed = full_at(name)
    with pytest.raises(InterpError) as e:
        CE.compare_edits(tiny_model, [0], train, held, tmp_path / "edits", cfg, log=lambda s: None)
    assert failed and str(tmp_path / "edits" / name) in one_line(e)
    kept(before, tree(tmp_path / "edits"), name)


@pytest.fixture(scope="module")
def dashboard_parts(tmp_path_factory):
    model = sd.tiny_model()
    cache = sd.make_cache(model, tmp_path_factory.mktemp("dash") / "acts")
    return model, cache


@pytest.mark.parametrize("name", ["index.html", "3.html", "prompts.html", "vocab.js", "style.css"])
def test_dashboard_pages(dashboard_parts, tmp_path, full_at, name):
    model, cache = dashboard_parts
    out = tmp_path / "dash"

    def build():
        make_dashboard(sd.dictionary(model), cache, out, model=model, prompts=["The cat sat."], title="t")
    build()
    before = tree(out)
    target = next(k for k in before if k.endswith("/" + name) or k == name)
    failed = full_at(name)
    with pytest.raises(InterpError) as e:
        build()
    assert failed and str(out / target) in one_line(e)
    kept(before, tree(out), target)

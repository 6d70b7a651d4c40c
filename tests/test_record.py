import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

from interp.errors import InterpError
from interp.recording import record
from interp.sites import hook_name, parse_layers
from interp.store import ActivationStore

HOOKS = ["blocks.0.hook_resid_post", "blocks.1.mlp.hook_post", "blocks.1.attn.hook_z"]


def reference(model, windows, name):
    _, cache = model.run_with_cache(windows, names_filter=[name])
    a = cache[name]
    return a.reshape(-1, a.shape[2] * (a.shape[3] if a.ndim == 4 else 1))


def test_one_pass_records_every_hook_exactly(tiny_model, tiny_windows, tmp_path):
    cache = record(tiny_model, tiny_windows, HOOKS, tmp_path / "acts", batch_size=8, progress=False)
    assert cache.n_tokens == 40 * 16
    assert cache.hooks == {HOOKS[0]: 32, HOOKS[1]: 64, HOOKS[2]: 32}
    assert torch.equal(cache.tokens(), tiny_windows)
    for h in HOOKS:
        got = np.concatenate([np.asarray(cache.shard_acts(i, h)) for i in range(len(cache.shards))])
        torch.testing.assert_close(torch.from_numpy(got), reference(tiny_model, tiny_windows, h), rtol=1e-5, atol=1e-5)
    cache.verify()


def test_forward_stops_at_the_deepest_layer(tiny_model, tiny_windows, tmp_path):
    seen = []
    tiny_model.blocks[2].hook_resid_post.add_hook(lambda a, hook: seen.append(1))
    try:
        record(tiny_model, tiny_windows, ["blocks.1.hook_resid_post"], tmp_path / "a", progress=False)
    finally:
        tiny_model.reset_hooks()
    assert seen == []


def test_iter_windows_traces_activations_back_to_tokens(tiny_model, tiny_windows, tmp_path):
    cache = record(tiny_model, tiny_windows, HOOKS[:1], tmp_path / "a", progress=False)
    toks, acts = next(cache.iter_windows(HOOKS[:1], windows_per_batch=5))
    assert torch.equal(toks, tiny_windows[:5])
    torch.testing.assert_close(acts[HOOKS[0]], reference(tiny_model, tiny_windows[:5], HOOKS[0]).view(5, 16, 32))


def test_shuffled_batches_cover_each_token_once_per_epoch_and_resume(tiny_model, tiny_windows, tmp_path):
    cache = record(tiny_model, tiny_windows, HOOKS[:1], tmp_path / "a", progress=False)
    batches = list(cache.iter_batches(HOOKS[:1], batch_size=64, seed=3, epochs=1))
    assert len(batches) == 640 // 64
    rows = torch.cat([b[HOOKS[0]] for b in batches])
    full = reference(tiny_model, tiny_windows, HOOKS[0])
    torch.testing.assert_close(rows[rows[:, 0].argsort()], full[full[:, 0].argsort()], rtol=1e-5, atol=1e-5)
    resumed = list(cache.iter_batches(HOOKS[:1], batch_size=64, seed=3, start_step=4, epochs=1))
    assert all(torch.equal(a[HOOKS[0]], b[HOOKS[0]]) for a, b in zip(batches[4:], resumed))


def test_truncated_shard_is_reported_in_one_line(tiny_model, tiny_windows, tmp_path):
    record(tiny_model, tiny_windows, HOOKS[:1], tmp_path / "a", progress=False)
    f = tmp_path / "a" / "shard_00000" / f"{HOOKS[0]}.bin"
    f.write_bytes(f.read_bytes()[:-7])
    with pytest.raises(InterpError, match="shard .* bytes, expected"):
        ActivationStore(tmp_path / "a")


def test_corrupt_shard_fails_its_checksum(tiny_model, tiny_windows, tmp_path):
    record(tiny_model, tiny_windows, HOOKS[:1], tmp_path / "a", progress=False)
    f = tmp_path / "a" / "shard_00000" / "tokens.bin"
    data = bytearray(f.read_bytes())
    data[5] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(InterpError, match="checksum"):
        ActivationStore(tmp_path / "a").verify()


def test_other_settings_in_the_same_folder_are_refused(tiny_model, tiny_windows, tmp_path):
    record(tiny_model, tiny_windows, HOOKS[:1], tmp_path / "a", progress=False)
    with pytest.raises(InterpError, match="other settings"):
        record(tiny_model, tiny_windows, HOOKS[1:2], tmp_path / "a", progress=False)


def test_bad_layer_and_site_are_one_line_errors():
    with pytest.raises(InterpError, match="layer 12 does not exist: this model has layers 0 to 11"):
        parse_layers("0,12", 12)
    with pytest.raises(InterpError, match="unknown site 'resid'"):
        hook_name("resid", 0)
    assert parse_layers("all", 3) == [0, 1, 2]
    assert parse_layers("2,0-1", 12) == [0, 1, 2]


def test_empty_input_is_refused(tiny_model, tmp_path):
    with pytest.raises(InterpError, match="no token windows"):
        record(tiny_model, torch.zeros(0, 16, dtype=torch.long), HOOKS[:1], tmp_path / "a", progress=False)


KILLED_RUN = r"""
import sys, torch, interp.recording as r
from transformer_lens import HookedTransformer, HookedTransformerConfig
torch.manual_seed(0)
cfg = HookedTransformerConfig(n_layers=3, d_model=32, d_head=8, n_heads=4, d_mlp=64, d_vocab=101,
    n_ctx=64, act_fn="gelu_new", normalization_type="LN", model_name="tiny", seed=0)
model = HookedTransformer(cfg).eval()
windows = torch.randint(0, 101, (400, 16), generator=torch.Generator().manual_seed(1))
r.SHARD_BYTES = 16 * 16 * (4 + 32 * 4)  # 16 windows a shard
if sys.argv[1] == "slow":
    orig = r.CacheWriter.close_shard
    def slow(self, *a):
        orig(self, *a)
        if len(self.manifest["shards"]) == 3:
            print("three", flush=True)
            import time; time.sleep(60)
    r.CacheWriter.close_shard = slow
for out in sys.argv[2:]:
    r.record(model, windows, ["blocks.2.hook_resid_post"], out, batch_size=8, progress=False)
print("done", flush=True)
"""


def test_killed_recording_keeps_whole_shards_and_resumes(tmp_path):
    out = tmp_path / "acts"
    script = tmp_path / "run.py"
    script.write_text(KILLED_RUN)
    proc = subprocess.Popen([sys.executable, str(script), "slow", str(out)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "three"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(ActivationStore(out).shards) == 3
    subprocess.run([sys.executable, str(script), "fast", str(out), str(tmp_path / "fresh")], check=True, capture_output=True)
    a, b = ActivationStore(out), ActivationStore(tmp_path / "fresh")
    assert a.n_windows == b.n_windows == 400
    assert json.loads((out / "manifest.json").read_text())["complete"]
    h = "blocks.2.hook_resid_post"
    for i in range(len(a.shards)):
        assert np.array_equal(a.shard_acts(i, h), b.shard_acts(i, h))
    a.verify()


def test_cache_batches_can_skip_bos(tiny_model, tiny_windows, tmp_path):
    cache = record(tiny_model, tiny_windows, HOOKS[:1], tmp_path / "a", progress=False)
    rows = torch.cat([b[HOOKS[0]] for b in cache.iter_batches(HOOKS[:1], batch_size=50, epochs=1, skip_bos=True)])
    assert len(rows) == (40 * 15 // 50) * 50
    full = reference(tiny_model, tiny_windows, HOOKS[0]).view(40, 16, -1)
    assert torch.cdist(rows, full[:, 0]).min() > 1e-3

"""record and train-sae from the model stream under torchrun (2 CPU processes, gloo): a 2-rank
recording holds the activations a 1-rank recording holds, token position by token position, in one
cache with one manifest; a recording whose other rank died resumes on one process; an SAE trained
from the stream on 2 ranks equals the one trained by one process."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import GPT2Config, GPT2LMHeadModel

import interp.recording
from interp import distributed
from interp.errors import InterpError
from interp.recording import record
from interp.store import ActivationStore

REPO = Path(__file__).resolve().parents[1]
BYTES_PER_WINDOW = 32 * (4 + 2 * 32 * 4)  # context 32: tokens + two hooks of width 32, float32

SCRIPT = textwrap.dedent('''
    import sys
    import interp.recording
    from interp import distributed
    from interp.cli import main

    def run(model, text, out):
        interp.recording.SHARD_BYTES = 8 * %(bpw)d  # 8 windows a shard: 8 shards, 4 for each rank
        assert main(["record", "--model", model, "--layers", "0,1", "--tokens", "1920", "--context-size", "32",
                     "--text", text, "--split", "all", "--batch-size", "4", "--device", "cpu", "--out", f"{out}/acts"]) == 0
        assert main(["train-sae", "--model", model, "--layer", "1", "--tokens", "1920", "--batch-size", "64",
                     "--context-size", "32", "--text", text, "--k", "4", "--expansion", "2", "--lr", "3e-3",
                     "--checkpoint-every", "10", "--device", "cpu", "--out", f"{out}/sae"]) == 0

    if __name__ == "__main__":
        distributed.setup("cpu")
        try:
            run(*sys.argv[1:])
        finally:
            distributed.shutdown()
''' % {"bpw": BYTES_PER_WINDOW})


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(1-process outputs, 2-rank outputs) of the script's record + train-sae."""
    root = tmp_path_factory.mktemp("dist_record")
    model = root / "gpt2"
    GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=4, n_positions=64)).eval().save_pretrained(model)
    text = root / "text"
    text.mkdir()
    words = "whale sea ship captain harpoon deep white storm sail crew oil night".split()
    for i in range(12):
        (text / f"doc{i}.txt").write_text(" ".join(words[(i * j) % len(words)] for j in range(400)))
    script = root / "run.py"
    script.write_text(SCRIPT)
    home = root / "home"  # a fresh token cache: rank 0 fills it, rank 1 reads it
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "INTERP_HOME": str(home)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(script),
           str(model), str(text), str(root / "two")]
    two = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]

    mp = pytest.MonkeyPatch()
    mp.setenv("INTERP_HOME", str(home))
    mp.setattr(interp.recording, "SHARD_BYTES", interp.recording.SHARD_BYTES)  # the script changes it; undo restores it
    try:
        namespace = {"__name__": "one_process"}
        exec(SCRIPT, namespace)
        namespace["run"](str(model), str(text), str(root / "one"))
    finally:
        mp.undo()
    return root / "one", root / "two"


def by_position(cache: ActivationStore) -> dict[tuple[int, int], tuple[int, torch.Tensor]]:
    """(window, position) -> (token, concatenated activations of every hook)."""
    out, w = {}, 0
    for toks, acts in cache.iter_windows(list(cache.hooks), windows_per_batch=7):
        vecs = torch.cat([acts[h] for h in cache.hooks], dim=-1)  # [w, ctx, sum d]
        for i in range(len(toks)):
            for p in range(toks.shape[1]):
                out[w, p] = (int(toks[i, p]), vecs[i, p])
            w += 1
    return out


def test_two_ranks_record_what_one_records_into_one_cache(runs):
    one, two = (ActivationStore(d / "acts") for d in runs)
    assert two.manifest["complete"] and json.loads((runs[1] / "acts" / "run.json").read_text())["world_size"] == 2
    assert len(two.shards) == len(one.shards) == 8 and two.n_tokens == one.n_tokens == 1920
    assert sorted(p.name for p in (runs[1] / "acts").glob("shard_*")) == [s.name for s in two.shards]
    a, b = by_position(one), by_position(two)
    assert a.keys() == b.keys()
    for key, (token, vec) in a.items():
        assert b[key][0] == token
        torch.testing.assert_close(b[key][1], vec, rtol=1e-5, atol=1e-5)
    two.verify()


def test_sae_from_the_model_stream_is_the_same_on_two_ranks(runs):
    one, two = (load_file(d / "sae" / "sae_weights.safetensors") for d in runs)
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=1e-4, atol=1e-5, msg=lambda m: f"{key}: {m}")
    last = [json.loads((d / "sae" / "train_state.json").read_text())["last"] for d in runs]
    assert last[1]["explained_variance"] == pytest.approx(last[0]["explained_variance"], abs=1e-4)


def test_a_recording_whose_other_rank_died_resumes_on_one_process(tiny_model, tiny_windows, tmp_path, monkeypatch):
    hook = ["blocks.2.hook_resid_post"]
    monkeypatch.setattr(interp.recording, "SHARD_BYTES", 8 * 16 * (4 + 32 * 4))  # 8 windows a shard: 5 shards
    fresh = record(tiny_model, tiny_windows, hook, tmp_path / "fresh", batch_size=4, progress=False)

    with monkeypatch.context() as m:  # rank 0 of 2 writes shards 0, 2, 4; rank 1 never ran
        m.setattr(distributed, "rank", lambda: 0)
        m.setattr(distributed, "world_size", lambda: 2)
        with pytest.raises(InterpError, match="a shard is missing"):
            record(tiny_model, tiny_windows, hook, tmp_path / "acts", batch_size=4, progress=False)
    assert len(ActivationStore(tmp_path / "acts").shards) == 1  # shard 0; 2 and 4 wait for 1 and 3

    seen = []
    handle = tiny_model.register_forward_pre_hook(lambda mod, args: seen.append(args[0].shape[0]))
    try:
        resumed = record(tiny_model, tiny_windows, hook, tmp_path / "acts", batch_size=4, progress=False)
    finally:
        handle.remove()
    assert sum(seen) == 16  # only shards 1 and 3 were run again
    assert resumed.manifest["complete"] and [s.name for s in resumed.shards] == [f"shard_{i:05d}" for i in range(5)]
    assert torch.equal(resumed.tokens(), tiny_windows)
    for i in range(5):
        assert np.array_equal(resumed.shard_acts(i, hook[0]), fresh.shard_acts(i, hook[0]))
    resumed.verify()

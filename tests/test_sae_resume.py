"""Checkpoints: a run killed with SIGKILL and resumed ends with the same bits as an
uninterrupted run; a NaN stops training with one clear line and keeps the last checkpoint."""

import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from sae import SAEConfig, TrainConfig, TrainingDiverged, create_sae, load_sae, train_sae

SCRIPT = textwrap.dedent('''
    import sys, time
    import torch
    from sae import SAEConfig, TrainConfig, create_sae, train_saes

    def batches_from(slow):
        def batches(start):
            step = start
            while True:
                if slow and step > 12:
                    time.sleep(0.3)  # time for the test to kill us after the step-10 checkpoint
                g = torch.Generator().manual_seed(step)
                x = torch.randn(128, 16, generator=g) * 2 + 1
                yield {"a": x, "b": x[:, :8] * 3, "c": x.flip(1)}
                step += 1
        return batches

    def main(out, slow=False):
        torch.set_num_threads(1)
        saes = {"a": create_sae(SAEConfig("topk", 16, 64, k=4)),
                "b": create_sae(SAEConfig("batchtopk", 8, 32, k=3)),
                "c": create_sae(SAEConfig("relu", 16, 48))}
        # dead_tokens=1000: latents go dead within 8 steps, so AuxK and its state take part
        cfg = TrainConfig(steps=30, lr=3e-3, lr_warmup_steps=5, checkpoint_every=10, dead_tokens=1000)
        train_saes(saes, batches_from(slow), cfg, {n: f"{out}/{n}" for n in saes}, progress=False)

    if __name__ == "__main__":
        main(sys.argv[1], slow=sys.argv[2] == "slow")
''')
REPO = Path(__file__).resolve().parents[1]


def run_script(path: Path, out: Path, mode: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(path), str(out), mode], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_killed_run_resumes_to_the_same_bits(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    killed = run_script(script, tmp_path / "killed", "slow")
    last_of_step_10 = tmp_path / "killed" / "c" / "checkpoints" / "step_000000010.json"
    deadline = time.time() + 120
    while not last_of_step_10.exists():
        assert killed.poll() is None, killed.communicate()[1]
        assert time.time() < deadline, "no checkpoint at step 10 within 2 minutes"
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL
    assert not (tmp_path / "killed" / "a" / "checkpoints" / "step_000000030.json").exists()

    resumed = run_script(script, tmp_path / "killed", "fast")
    # meanwhile, the uninterrupted run, in this process with the same single thread
    spec = importlib.util.spec_from_file_location("train_script", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    before = torch.get_num_threads()
    try:
        module.main(str(tmp_path / "straight"))
    finally:
        torch.set_num_threads(before)
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err

    for name in "abc":
        ckpt = f"{name}/checkpoints/step_000000030.safetensors"
        a, b = load_file(tmp_path / "killed" / ckpt), load_file(tmp_path / "straight" / ckpt)
        assert a.keys() == b.keys() and any(k.startswith("adam.") for k in a)
        for key in a:
            assert torch.equal(a[key], b[key]), f"{name}: {key} differs after resume"
        w = f"{name}/sae_weights.safetensors"
        assert (tmp_path / "killed" / w).read_bytes() == (tmp_path / "straight" / w).read_bytes()


def test_nan_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
    def batches(start):
        step = start
        while True:
            x = torch.randn(64, 8, generator=torch.Generator().manual_seed(step))
            if step == 7:
                x[3, 2] = float("nan")
            yield x
            step += 1

    sae = create_sae(SAEConfig("topk", 8, 32, k=4, hook_name="blocks.0.hook_resid_post"))
    with pytest.raises(TrainingDiverged) as e:
        train_sae(sae, batches, TrainConfig(steps=20, checkpoint_every=5), tmp_path, progress=False)
    msg = str(e.value)
    assert "\n" not in msg and "nan at step 7" in msg and "last good checkpoint: step 5" in msg
    ckpts = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert ckpts == ["step_000000005.json", "step_000000005.safetensors"]
    saved = load_sae(tmp_path, device="cpu")
    state = load_file(tmp_path / "checkpoints" / "step_000000005.safetensors")
    assert torch.equal(saved.W_dec, state["sae.W_dec"])  # the folder holds the step-5 SAE
    x = torch.randn(10, 8)
    assert torch.isfinite(saved(x)).all()


def test_a_fresh_run_replaces_the_checkpoints_of_an_earlier_one(tmp_path):
    def batches(start):
        step = start
        while True:
            yield torch.randn(64, 8, generator=torch.Generator().manual_seed(step))
            step += 1

    def run(steps, resume):
        sae = create_sae(SAEConfig("topk", 8, 32, k=4))
        return train_sae(sae, batches, TrainConfig(steps=steps, checkpoint_every=5), tmp_path, resume=resume, progress=False)

    run(20, resume=True)
    run(10, resume=False)
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == [f"step_0000000{s:02d}.{ext}" for s in (5, 10) for ext in ("json", "safetensors")]
    assert json.loads((tmp_path / "train_state.json").read_text())["step"] == 10

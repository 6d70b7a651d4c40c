"""train-lm under torchrun (2 CPU processes, gloo): 2 ranks with half the batch each end with the
weights one process gets on the whole batch (gpt2; crate with an odd batch split 3 + 4), and a
2-rank run killed after a checkpoint resumes on 1 rank and ends where an uninterrupted run ends."""

import importlib.util
import json
import os
import random
import subprocess
import sys
import textwrap
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import interp

REPO = Path(__file__).resolve().parents[1]
BATCH = {"gpt2": 8, "crate": 7}  # crate's 7 splits unevenly: each rank's loss must be its share

SCRIPT = textwrap.dedent('''
    import os, signal, sys
    import interp.lm.train
    from interp import distributed
    from interp.cli import main

    def cli(text, out, arch, batch):
        args = ["train-lm", "--arch", arch, "--layers", "1", "--d-model", "32", "--heads", "2", "--context", "32",
                "--vocab", "bpe-300", "--tokens", str(30 * int(batch) * 32), "--batch-size", str(batch), "--lr", "3e-3",
                "--warmup", "5", "--eval-every", "10", "--eval-tokens", "512", "--checkpoint-every", "10",
                "--heldout-fraction", "0.2", "--threads", "1", "--device", "cpu", "--text", text, "--out", f"{out}/{arch}"]
        assert main(args) == 0

    def everything(text, out):
        cli(text, out, "gpt2", 8)
        cli(text, out, "crate", 7)

    def killed(text, out):
        """gpt2, rank 0 killed (SIGKILL) right after writing the step-20 checkpoint."""
        write = interp.lm.train.write_checkpoint
        def write_then_die(out_dir, step, *a, **kw):
            write(out_dir, step, *a, **kw)
            if step == 20:
                os.kill(os.getpid(), signal.SIGKILL)
        interp.lm.train.write_checkpoint = write_then_die
        cli(text, out, "gpt2", 8)

    if __name__ == "__main__":
        distributed.setup("cpu")  # one group for both commands: each command's session joins it
        try:
            {"everything": everything, "killed": killed}[sys.argv[1]](*sys.argv[2:])
        finally:
            distributed.shutdown()
''')


def torchrun(script: Path, home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "INTERP_HOME": str(home)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(script), *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(the script as a module, home, text, 1-process outputs, 2-rank outputs)."""
    root = tmp_path_factory.mktemp("dist_lm")
    home, text = root / "home", root / "text"
    text.mkdir()
    rng = random.Random(0)
    who, did, where = ["the whale", "the captain", "a sailor", "the ship"], ["saw", "feared", "hunted"], ["at dawn", "near the shore"]
    for i in range(20):
        sentences = [f"{rng.choice(who)} {rng.choice(did)} {rng.choice(who)} {rng.choice(where)}." for _ in range(60)]
        (text / f"doc{i:02d}.txt").write_text(" ".join(sentences).capitalize() + "\n")
    script = root / "train.py"
    script.write_text(SCRIPT)
    spec = importlib.util.spec_from_file_location("dist_lm_script", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    two = torchrun(script, home, "everything", str(text), str(root / "two"))
    assert two.returncode == 0, two.stderr[-6000:]
    with one_process(home):
        for arch, batch in BATCH.items():
            module.cli(str(text), str(root / "one"), arch, batch)
    return module, home, text, root / "one", root / "two"


@contextmanager
def one_process(home: Path):
    """The same command in this process: the shared token cache, and torch's threads put back after."""
    mp, threads = pytest.MonkeyPatch(), torch.get_num_threads()
    mp.setenv("INTERP_HOME", str(home))
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        mp.undo()


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert wa.keys() == wb.keys()
    for key in wa:
        if key.endswith("attn.b_K"):  # softmax ignores a key bias: its gradient is rounding noise, which AdamW
            assert wa[key].abs().max() < 1e-4 and wb[key].abs().max() < 1e-4  # scales up to lr-sized steps
            continue
        torch.testing.assert_close(wa[key], wb[key], rtol=1e-4, atol=1e-6, msg=lambda m: f"{key}: {m}")
    ca, cb = (load_file(str(d / "checkpoints" / "step_000000030.safetensors")) for d in (a, b))
    params = [(n, p.dim()) for n, p in interp.load_model(a).named_parameters()]
    order = [n for n, d in params if d >= 2] + [n for n, d in params if d < 2]  # the trainer's AdamW groups
    for key in ca:  # AdamW's moments show the gradients' scale, which the update itself hides
        if key.startswith("opt.") and key.endswith("exp_avg") and not order[int(key.split(".")[1])].endswith("attn.b_K"):
            torch.testing.assert_close(ca[key], cb[key], rtol=1e-3, atol=1e-6 * float(ca[key].abs().max()), msg=lambda m: f"{key}: {m}")


@pytest.mark.parametrize("arch", ["gpt2", "crate"])
def test_two_ranks_with_half_batches_train_the_model_one_process_trains(runs, arch):
    _, _, _, one, two = runs
    assert json.loads((two / arch / "run.json").read_text())["world_size"] == 2
    assert_same_weights(one / arch, two / arch)
    ha, hb = (json.loads((d / arch / "history.json").read_text())["history"] for d in (one, two))
    assert [h["step"] for h in hb] == [0, 10, 20, 30]
    for a, b in zip(ha, hb):  # the logged train loss is the whole batch's, reduced over ranks
        assert b["heldout_loss"] == pytest.approx(a["heldout_loss"], rel=1e-4)
        assert b["train_loss"] == (None if a["train_loss"] is None else pytest.approx(a["train_loss"], rel=1e-4))
    assert hb[-1]["heldout_loss"] < hb[0]["heldout_loss"] - 1.0  # it learned: the comparison is not of two idle models
    ckpts = one / arch / "checkpoints"
    moved = [load_file(str(ckpts / f"step_{s:09d}.safetensors"))["model.embed.W_E"] for s in (20, 30)]
    assert (moved[0] - moved[1]).abs().max() > 1e-3  # still moving: the tolerance above is far tighter


def test_a_killed_two_rank_run_resumes_on_one_rank(runs, tmp_path):
    module, home, text, one, _ = runs
    killed = torchrun(Path(module.__file__), home, "killed", str(text), str(tmp_path))
    assert killed.returncode != 0
    out = tmp_path / "gpt2"
    assert sorted(p.name for p in (out / "checkpoints").glob("*.json")) == ["step_000000010.json", "step_000000020.json"]
    assert not (out / "interp_lm.json").exists()
    with one_process(home):
        module.cli(str(text), str(tmp_path), "gpt2", 8)  # the same command, one process
    history = json.loads((out / "history.json").read_text())["history"]
    assert [h["step"] for h in history] == [0, 10, 20, 30]
    assert_same_weights(one / "gpt2", out)

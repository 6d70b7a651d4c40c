"""Every bad input, at the command line as a user meets it: a subprocess that exits 2 with exactly
one non-empty line on stderr (ours, no traceback, no third-party progress bar or warning) and
leaves every earlier output as it was. The pieces are real: a GPT-2 folder saved by
save_pretrained, a cache written by `interp record`, an SAE trained by `interp train-sae`."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from interp.cli import main

REPO = Path(__file__).resolve().parents[1]
HOOK = "blocks.0.hook_resid_post"


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """tiny-gpt2/ (2 layers, d 32), text/, acts/ (its layer-0 and 1 resid_post), sae/ (a TopK SAE
    trained from acts), dash/ (its dashboard), sae-raw/ and saes-raw/blocks.0.mlp.hook_post/ (SAEs
    trained on the model loaded with --no-processing)."""
    root = tmp_path_factory.mktemp("world")
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=4, n_positions=64)).eval().save_pretrained(root / "tiny-gpt2")
    (root / "text").mkdir()
    for i in range(6):
        (root / "text" / f"doc{i}.txt").write_text(f"Document {i} says the whale is white and the sea is deep. " * 40)
    run = [["record", "--model", str(root / "tiny-gpt2"), "--layers", "0,1", "--tokens", "2048", "--context-size", "32",
            "--text", str(root / "text"), "--split", "all", "--out", str(root / "acts")],
           ["train-sae", "--activations", str(root / "acts"), "--layer", "0", "--arch", "topk", "--k", "4",
            "--expansion", "2", "--tokens", "2048", "--batch-size", "256", "--out", str(root / "sae")],
           ["dashboard", str(root / "sae"), "--cache", str(root / "acts"), "--features", "0-3", "--out", str(root / "dash"),
            "--no-default-prompts"]]
    for site, out in (("resid_post", "sae-raw"), ("mlp_post", "saes-raw/blocks.0.mlp.hook_post")):  # without processing
        run.append(["train-sae", "--model", str(root / "tiny-gpt2"), "--no-processing", "--text", str(root / "text"),
                    "--context-size", "32", "--layer", "0", "--site", site, "--k", "4", "--expansion", "2", "--tokens", "2048",
                    "--batch-size", "256", "--out", str(root / out)])
    for argv in run:
        assert main(argv) == 0, argv
    return root


def snapshot(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def bad(world: Path, *argv: str, cwd: Path | None = None) -> str:
    """Run `interp argv` in a fresh process; assert exit 2, one stderr line, nothing earlier changed;
    return that line."""
    before = snapshot(world)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-m", "interp", *argv], cwd=cwd or world, env=env, capture_output=True,
                       text=True, timeout=240, check=False)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 2 and len(lines) == 1, f"exit {r.returncode}, stderr:\n{r.stderr}"
    assert "Traceback" not in r.stderr and lines[0].startswith("interp"), r.stderr
    assert snapshot(world) == before, "an earlier output changed"
    return lines[0]


def copy(world: Path, name: str, new: str) -> Path:
    dst = world / "scratch" / new
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(world / name, dst)
    return dst


def test_a_layer_the_model_lacks(world):
    assert bad(world, "record", "--model", "tiny-gpt2", "--layers", "99", "--tokens", "256", "--context-size", "32",
               "--text", "text", "--out", "scratch/x") == "interp: error: layer 99 does not exist: this model has layers 0 to 1."


def test_an_empty_text_file(world):
    (world / "empty.txt").write_text("")
    line = bad(world, "record", "--model", "tiny-gpt2", "--layers", "0", "--tokens", "256", "--context-size", "32",
               "--text", "empty.txt", "--out", "scratch/x")
    assert line == "interp: error: the text source 'empty.txt' holds no text; give a file, folder or dataset with documents in it."


def test_an_unknown_site_is_one_line_not_argparse_usage(world):
    line = bad(world, "train-sae", "--site", "nowhere", "--out", "scratch/x")
    assert line.startswith("interp train-sae: error: argument --site: invalid choice: 'nowhere'")


def test_an_unknown_model(world):
    line = bad(world, "record", "--model", "no-such-model", "--out", "scratch/x")
    assert line.startswith("interp: error: 'no-such-model' is neither a folder nor a model name interp knows")


def test_k_larger_than_d_sae(world):
    line = bad(world, "train-sae", "--activations", "acts", "--layer", "0", "--k", "100", "--expansion", "2",
               "--tokens", "512", "--batch-size", "256", "--out", "scratch/k")
    assert line == "interp: error: k=100 must be between 1 and d_sae=64; lower k or widen the SAE."


def test_a_truncated_sae_weights_file(world):
    sae = copy(world, "sae", "sae-truncated")
    f = sae / "sae_weights.safetensors"
    f.write_bytes(f.read_bytes()[:1000])
    line = bad(world, "eval-sae", str(sae), "--text", "text", "--split", "all", "--tokens", "256")
    assert re.fullmatch(r"interp: error: .*sae_weights.safetensors is truncated or not a safetensors file \(.*\); save or copy it again\.", line)


def test_a_truncated_model_safetensors(world):
    model = copy(world, "tiny-gpt2", "gpt2-truncated")
    f = model / "model.safetensors"
    f.write_bytes(f.read_bytes()[:5000])
    line = bad(world, "record", "--model", str(model), "--layers", "0", "--tokens", "256", "--context-size", "32",
               "--text", "text", "--out", "scratch/x")
    assert line.startswith(f"interp: error: the model folder {model.resolve()} cannot be read (")
    assert line.endswith("its weights are truncated or damaged: save or copy the folder again.")


def test_a_cache_of_another_model_given_to_dashboard(world):
    acts = copy(world, "acts", "acts-other-model")
    m = json.loads((acts / "manifest.json").read_text())
    m["model"], m["header"]["model"], m["header"]["model_path"] = "other", "other", str(world / "other-gpt2")
    (acts / "manifest.json").write_text(json.dumps(m))
    line = bad(world, "dashboard", "sae", "--cache", str(acts), "--out", "dash", "--overwrite")  # the data is refused even where writing over is allowed
    assert line.startswith("interp: error: the SAE at sae was trained on ") and "give a cache of the SAE's model" in line


def test_an_sae_whose_hook_does_not_match_its_width(world):
    sae = copy(world, "sae", "sae-wrong-hook")
    cfg = json.loads((sae / "cfg.json").read_text())
    cfg["hook_name"] = cfg["metadata"]["hook_name"] = "blocks.0.mlp.hook_post"
    (sae / "cfg.json").write_text(json.dumps(cfg))
    line = bad(world, "eval-sae", str(sae), "--text", "text", "--split", "all", "--tokens", "256")
    assert line == ("interp: error: the SAE reads 32 numbers at blocks.0.mlp.hook_post but tiny-gpt2 has 128 there: "
                    "the SAE belongs to another model or hook; give its own --model.")


def test_an_sae_of_a_local_model_is_found_again_from_anywhere(world, tmp_path):
    # no --model, run from another folder: the SAE's cfg.json names the model folder's path
    r = subprocess.run([sys.executable, "-m", "interp", "eval-sae", str(world / "sae"), "--text", str(world / "text"),
                        "--split", "all", "--tokens", "256", "--out", str(tmp_path / "eval")], cwd=tmp_path,
                       env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=240, check=False)
    assert r.returncode == 0, r.stderr
    cfg = json.loads((world / "sae" / "cfg.json").read_text())
    assert cfg["interp"]["model_path"] == str((world / "tiny-gpt2").resolve())


def flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


def test_a_corrupt_shard_is_refused_by_train_sae_and_dashboard_without_touching_their_outputs(world):
    acts = copy(world, "acts", "acts-corrupt")
    f = acts / "shard_00000" / f"{HOOK}.bin"
    flip(f)
    redo = f"delete {acts} and rerun the `interp record` command that wrote it (its run.json holds the arguments)."
    line = bad(world, "train-sae", "--activations", str(acts), "--layer", "0", "--k", "4", "--expansion", "2",
               "--tokens", "2048", "--batch-size", "256", "--out", "scratch/sae-from-corrupt")
    assert line == f"interp: error: shard {f} fails its checksum: the cache is corrupt; {redo}"
    line = bad(world, "dashboard", "sae", "--cache", str(acts), "--features", "0-3", "--out", "dash", "--no-model", "--overwrite")
    assert line == f"interp: error: shard {f} fails its checksum: the cache is corrupt; {redo}"


def test_nan_activations_are_bad_data_reported_before_training(world):
    acts = copy(world, "acts", "acts-nan")
    f = acts / "shard_00000" / f"{HOOK}.bin"
    a = np.fromfile(f, dtype=np.float32)
    a[40 * 32 + 7] = np.inf
    f.write_bytes(a.tobytes())
    m = json.loads((acts / "manifest.json").read_text())
    m["shards"][0]["crc32"][f.name] = zlib.crc32(a.tobytes())
    (acts / "manifest.json").write_text(json.dumps(m))
    line = bad(world, "train-sae", "--activations", str(acts), "--layer", "0", "--k", "4", "--expansion", "2",
               "--tokens", "2048", "--batch-size", "256", "--out", "scratch/sae-from-nan")
    assert line.startswith(f"interp: error: shard {f} holds a NaN or infinite activation (token 40 of the shard, unit 7): "
                           "the recording is bad data, not a training problem")


TRAIN = ["train-sae", "--layer", "0", "--k", "4", "--expansion", "2"]


@pytest.mark.parametrize(("change", "what"), [
    (["--activations", "scratch/acts-other", "--batch-size", "256"], "data.source"),
    (["--activations", "acts", "--batch-size", "128"], "data.batch_size"),
    (["--activations", "acts", "--batch-size", "256", "--tokens", "4096"], "data.tokens"),
    (["--activations", "acts", "--batch-size", "256", "--lr", "0.01"], "train.lr"),
])
def test_a_run_folder_refuses_to_resume_another_run(world, change, what):
    other = copy(world, "acts", "acts-other")
    m = json.loads((other / "manifest.json").read_text())
    m["header"]["source"] = "another text"  # another recording
    (other / "manifest.json").write_text(json.dumps(m))
    sae = copy(world, "sae", "sae-resumed")
    line = bad(world, *TRAIN, *change, *([] if "--tokens" in change else ["--tokens", "2048"]), "--out", str(sae))
    assert line.startswith(f"interp: error: {HOOK}: the checkpoint in this folder is of another run ({what} was ")
    assert line.endswith("choose another --out, rerun with the settings it had, or pass --overwrite to start afresh.")


def test_an_sae_folder_without_our_checkpoints_is_not_written_over_unless_overwrite(world):
    sae = copy(world, "sae", "sae-no-checkpoints")
    shutil.rmtree(sae / "checkpoints")
    line = bad(world, *TRAIN, "--tokens", "2048", "--batch-size", "256", "--activations", "acts", "--out", str(sae))
    assert line == (f"interp: error: {sae} already holds an SAE that is not a checkpointed run of these settings; "
                    "choose another --out, or pass --overwrite to replace it.")
    assert main([*TRAIN, "--tokens", "2048", "--batch-size", "256", "--activations", str(world / "acts"), "--out", str(sae), "--overwrite"]) == 0


def test_a_text_file_that_is_not_utf8(world):
    (world / "latin1.txt").write_bytes("Caf\u00e9 au lait, na\u00efve. ".encode("latin-1") * 50)
    argv = ["record", "--model", "tiny-gpt2", "--layers", "0", "--tokens", "256", "--context-size", "32",
            "--text", "latin1.txt", "--split", "all"]
    line = bad(world, *argv, "--out", "scratch/x")
    assert line == ("interp: error: latin1.txt is not valid utf-8 at byte 3 (b'\\xe9 au'...); convert it, "
                    "or read it anyway with --errors replace or --encoding latin-1.")
    argv = [str(world / a) if a in ("tiny-gpt2", "latin1.txt") else a for a in argv]
    assert main([*argv, "--encoding", "latin-1", "--out", str(world / "scratch" / "latin1")]) == 0


def test_a_dashboard_over_another_runs_dashboard_needs_overwrite(world):
    argv = ["dashboard", str(world / "sae"), "--cache", str(world / "acts"), "--out", str(world / "dash"), "--no-default-prompts"]
    assert bad(world, *argv, "--features", "0-1") == (
        f"interp: error: {world / 'dash' / 'index.html'} is the output of another run (--features was '0-3', is now '0-1'); "
        "choose another --out, or pass --overwrite to replace it.")
    dash = copy(world, "dash", "dash-overwritten")
    argv[argv.index(str(world / "dash"))] = str(dash)
    assert main(argv + ["--features", "0-3"]) == 0  # the same run again: allowed
    assert main(argv + ["--features", "0-1", "--overwrite"]) == 0
    assert json.loads((dash / "run.json").read_text())["config"]["features"] == "0-1"


def test_eval_sae_over_another_runs_metrics_needs_overwrite(world):
    sae = copy(world, "sae", "sae-evaluated")
    argv = ["eval-sae", str(sae), "--text", str(world / "text"), "--split", "all", "--context-size", "32"]
    assert main(argv + ["--tokens", "256"]) == 0
    line = bad(world, *argv, "--tokens", "512")
    assert line.startswith(f"interp: error: {sae / 'metrics.json'} is the output of another run (--tokens was 256, is now 512)")
    assert main(argv + ["--tokens", "512", "--overwrite"]) == 0


RAW = "read activations of tiny-gpt2 with no weight processing, but the model is loaded with TransformerLens's default " \
      "weight processing: the activations differ; load the model with --no-processing."


@pytest.mark.parametrize("argv", [
    ["eval-sae", "sae-raw", "--text", "text", "--split", "all", "--tokens", "256"],
    ["dashboard", "sae-raw", "--tokens", "256", "--text", "text", "--context-size", "32", "--out", "scratch/dash-raw"],
    ["steer", "--sae", "sae-raw", "--feature", "0", "--prompt", "The whale"],
    ["ablate", "--sae", "sae-raw", "--feature", "0", "--text", "text", "--tokens", "256", "--context-size", "32"],
    ["serve", "sae-raw", "--port", "0"],
], ids=lambda a: a[0])
def test_an_sae_on_a_model_processed_otherwise(world, argv):
    assert bad(world, *argv) == f"interp: error: the SAE at sae-raw {RAW}"


def test_compare_edits_with_saes_of_a_model_processed_otherwise(world):
    line = bad(world, "compare-edits", "--model", "tiny-gpt2", "--layers", "0", "--units", "sae", "--sae-dir", "saes-raw",
               "--text", book(world), "--context-size", "32", "--tokens", "1024", "--eval-tokens", "256", "--out", "scratch/edits-raw")
    assert line == f"interp: error: the SAE in saes-raw/blocks.0.mlp.hook_post {RAW}"


def test_a_dashboard_of_an_sae_on_a_cache_processed_otherwise(world):
    assert bad(world, "dashboard", "sae-raw", "--cache", "acts", "--out", "scratch/dash-raw") == (
        "interp: error: the SAE at sae-raw read activations with no weight processing but the cache at acts holds "
        "activations with TransformerLens's default weight processing; give a cache recorded as the SAE's training data "
        "was (with or without --no-processing).")


def book(world: Path) -> str:
    """A one-document text (held out by window), long enough for a held-out split."""
    if not (world / "book.txt").exists():
        (world / "book.txt").write_text(" ".join(f"Line {i} of a book." for i in range(3000)))
    return "book.txt"


def test_compare_layers_over_another_comparison_needs_overwrite(world):
    out = world / "scratch" / "depth"
    shutil.rmtree(out, ignore_errors=True)
    argv = ["compare-layers", "--model", str(world / "tiny-gpt2"), "--text", str(world / book(world)), "--context-size", "32",
            "--tokens", "1024", "--heldout-tokens", "256", "--site", "resid_post", "--k", "4", "--expansion", "2",
            "--batch-size", "256", "--bases", "neurons,sae,random", "--eval-tokens", "128", "--out", str(out)]
    assert main(argv + ["--layers", "0", "--features-per-layer", "4"]) == 0
    first = (out / "layers" / "L00" / "done.json").read_bytes()
    assert bad(world, *argv, "--layers", "0", "--features-per-layer", "3") == (
        f"interp: error: {out / 'report.html'} is the output of another run (--features-per-layer was 4, is now 3); "
        "choose another --out, or pass --overwrite to replace it.")
    assert main(argv + ["--layers", "0,1", "--features-per-layer", "4"]) == 0  # more layers extend the same comparison
    assert (out / "layers" / "L00" / "done.json").read_bytes() == first and (out / "layers" / "L01" / "done.json").exists()
    assert main(argv + ["--layers", "0", "--features-per-layer", "3", "--overwrite"]) == 0  # replaced, not mixed
    assert not (out / "layers" / "L01").exists()
    assert json.loads((out / "settings.json").read_text())["config"]["features_per_layer"] == 3
    assert json.loads((out / "results.json").read_text())["layers"] == [0]
    assert json.loads((out / "run.json").read_text())["config"]["features_per_layer"] == 3


def test_too_little_text_for_one_shuffle_block(world):
    # train-sae reads as much text as one shuffle block needs whatever --tokens is; only a corpus
    # that holds less than that is refused
    line = bad(world, "train-sae", "--model", "tiny-gpt2", "--text", "text", "--context-size", "32", "--layer", "0",
               "--k", "4", "--expansion", "2", "--tokens", "2048", "--out", "scratch/sae-short-text")
    assert re.fullmatch(r"interp: error: \d+ windows of text are too few for a shuffle block of 1058 \(8 batches of 4096 "
                        r"tokens\); give more text or a smaller --batch-size\.", line), line


def test_no_processing_of_a_folder_that_holds_processed_weights_only(world):
    from interp.models import load_model
    from interp.models.converted import save_converted

    folder = world / "scratch" / "converted"
    if not folder.exists():
        save_converted(load_model(world / "tiny-gpt2"), folder)
    line = bad(world, "record", "--model", str(folder), "--no-processing", "--layers", "0", "--tokens", "256",
               "--context-size", "32", "--text", "text", "--out", "scratch/x")
    assert line == (f"interp: error: {folder} holds weights already processed by TransformerLens and not the original "
                    "ones, so --no-processing cannot be honoured; load it without --no-processing.")


def test_a_run_folder_of_an_unprocessed_model_refuses_to_resume_on_a_processed_one(world):
    sae = copy(world, "sae-raw", "sae-raw-resumed")
    line = bad(world, "train-sae", "--model", "tiny-gpt2", "--text", "text", "--context-size", "32", "--layer", "0",
               "--k", "4", "--expansion", "2", "--tokens", "2048", "--batch-size", "256", "--out", str(sae))
    assert line.startswith(f"interp: error: {HOOK}: the checkpoint in this folder is of another run (data.source was ")
    assert ":processing:{'fold_ln': False" in line

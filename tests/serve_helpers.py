"""A tiny GPT-2-architecture model folder (real GPT-2 tokenizer, random weights), an SAE at its
last layer, a text folder, and `interp serve` started on them in a subprocess on a free port."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import torch

from interp.gpt2_tokenizer import gpt2_tokenizer
from interp.lm.build import build_model
from interp.lm.config import LMConfig
from interp.lm.folder import save_lm_folder
from sae import SAEConfig, TrainConfig, create_sae, save_sae

REPO = Path(__file__).resolve().parents[1]
HOOK = "blocks.1.hook_resid_post"
D_SAE = 48
TEXT = ("The whale rose from the sea and the captain watched it go. Call me Ishmael, said the sailor. "
        "We the People of the United States, in Order to form a more perfect Union. ") * 3


def make_folders(root: Path) -> dict[str, str]:
    tok = gpt2_tokenizer()
    cfg = LMConfig(arch="gpt2", n_layers=2, d_model=32, n_heads=4, n_ctx=64, d_vocab=len(tok), seed=1)
    torch.manual_seed(0)
    model = save_lm_folder(build_model(cfg, tok), cfg, root / "model")
    sae = create_sae(SAEConfig("relu", 32, D_SAE, hook_name=HOOK, model_name="tiny-serve"))
    sae.init_weights(torch.Generator().manual_seed(0), TrainConfig())
    save_sae(sae, root / "sae")
    wide = create_sae(SAEConfig("relu", 24, D_SAE, hook_name=HOOK, model_name="tiny-serve"))
    save_sae(wide, root / "wide")
    (root / "text").mkdir()
    for i in range(40):  # documents: the held-out split takes whole ones
        (root / "text" / f"{i:02d}.txt").write_text(TEXT)
    return {"model": str(model), "sae": str(root / "sae"), "wide": str(root / "wide"), "text": str(root / "text")}


class Server:
    """`interp serve` in a subprocess; `url` once it listens. stop() ends it."""

    def __init__(self, folders: dict[str, str], home: Path, *extra: str):
        env = os.environ | {"PYTHONPATH": str(REPO), "INTERP_HOME": str(home), "PYTHONUNBUFFERED": "1"}
        cmd = [sys.executable, "-m", "interp", "serve", folders["sae"], "--model", folders["model"], "--port", "0",
               "--text", folders["text"], "--tokens", "1024", "--features", "0-15", "--threads", "1", *extra]
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.url = None
        lines = []
        for line in self.proc.stdout:
            lines.append(line)
            m = re.search(r"at (http://\S+/) ", line)
            if m:
                self.url = m.group(1).rstrip("/")
                break
        if self.url is None:
            raise RuntimeError("interp serve did not start:\n" + "".join(lines) + self.proc.stderr.read())
        for _ in range(200):  # the line comes just before uvicorn listens
            try:
                self.get("/api/info")
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.05)

    def request(self, method: str, path: str, body=None, headers=None, raw: bytes | None = None):
        """(status, headers, body bytes) of one request; HTTP errors are answers, not exceptions."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        h = {"Content-Type": "application/json"} if data is not None else {}
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=h | (headers or {}))
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    def get(self, path: str):
        return self.request("GET", path)

    def json(self, method: str, path: str, body=None):
        status, _, data = self.request(method, path, body)
        return status, json.loads(data)

    def stop(self) -> str:
        self.proc.terminate()
        try:
            _, err = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return err

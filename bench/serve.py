"""interp serve's speed over real HTTP: /api/activations for a 128-token prompt at a middle layer
of SmolLM2-135M (p50 and p95 over 50 requests; goal p50 under 1 s), and steered generation through
/api/steer (default + steered, streamed) against TransformerLens's plain `model.generate` on the
same prompt, interleaved round by round.

    flock /work/logs/cpu.lock python bench/serve.py [--layer 15] [--requests 50] [--tokens 20] [--repeats 3]

The server runs as users run it (`interp serve` in a subprocess, its worker on --threads); the SAE
is a randomly initialised TopK SAE (d_sae 8 x d_model, k 32) at blocks.L.hook_resid_post, saved to
a temporary folder: speed does not depend on training."""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.harness import REPO, interleave, start  # noqa: E402
from interp.models import load_model  # noqa: E402
from interp.tokens import token_windows  # noqa: E402
from sae import SAEConfig, TrainConfig, create_sae, save_sae  # noqa: E402


def post(url: str, body: dict) -> bytes:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=600) as r:
        return r.read()


def serve(sae_dir: Path, model: str, threads: int) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "interp", "serve", str(sae_dir), "--model", model, "--port", "0",
           "--tokens", "512", "--features", "0-3", "--threads", str(threads)]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True,
                            env=os.environ | {"PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"})
    for line in proc.stdout:
        m = re.search(r"at (http://\S+)/ ", line)
        if m:
            url = m.group(1)
            break
    else:
        raise SystemExit("interp serve did not start")
    for _ in range(600):
        try:
            urllib.request.urlopen(url + "/api/info", timeout=5).read()
            return proc, url
        except OSError:
            time.sleep(0.1)
    raise SystemExit("interp serve did not answer")


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--layer", type=int, default=15)
    p.add_argument("--prompt-tokens", type=int, default=128)
    p.add_argument("--requests", type=int, default=50)
    p.add_argument("--tokens", type=int, default=20, help="new tokens per steer / generate")
    p.add_argument("--repeats", type=int, default=3)
    args, out = start(p, "serve")
    threads = torch.get_num_threads()
    model = load_model(args.model)
    model.requires_grad_(False)
    hook = f"blocks.{args.layer}.hook_resid_post"
    d = model.cfg.d_model
    sae = create_sae(SAEConfig("topk", d, 8 * d, k=32, hook_name=hook, model_name=args.model))
    sae.init_weights(torch.Generator().manual_seed(0), TrainConfig())
    window = token_windows("offline", model.tokenizer, context_size=args.prompt_tokens + 1, split="heldout",
                           max_tokens=args.prompt_tokens + 1)[0]
    prompt = model.tokenizer.decode(window[1:].tolist())
    with tempfile.TemporaryDirectory() as tmp:
        save_sae(sae, Path(tmp) / "sae")
        t0 = time.perf_counter()
        proc, url = serve(Path(tmp) / "sae", args.model, threads)
        started = time.perf_counter() - t0
        try:
            got = json.loads(post(url + "/api/activations", {"prompt": prompt}))
            n = got["n_tokens"]
            post(url + "/api/activations", {"prompt": prompt})  # warm-up
            lat = []
            for _ in range(args.requests):
                t = time.perf_counter()
                post(url + "/api/activations", {"prompt": prompt})
                lat.append(time.perf_counter() - t)
            out.say(f"{args.model} {hook}, random TopK SAE d_sae {8 * d} k 32; server worker on {threads} threads, "
                    f"started (model load + a 4-feature dashboard of 512 tokens) in {started:.1f} s")
            out.say(f"/api/activations, {n}-token prompt, {args.requests} sequential requests after 2 warm-ups:")
            out.say(f"  p50 {1000 * statistics.median(lat):.0f} ms   p95 {1000 * pct(lat, 0.95):.0f} ms   "
                    f"min {1000 * min(lat):.0f} ms   max {1000 * max(lat):.0f} ms   (goal: p50 under 1000 ms)")

            steer_body = {"prompt": prompt, "features": [1, 2], "mode": "add", "strength": 8.0,
                          "max_new_tokens": args.tokens, "seed": 0, "temperature": 0}
            first: list[float] = []

            def steer() -> None:
                req = urllib.request.Request(url + "/api/steer", json.dumps(steer_body).encode(),
                                             {"Content-Type": "application/json"}, method="POST")
                t = time.perf_counter()
                with urllib.request.urlopen(req, timeout=600) as r:
                    steps = 0
                    for line in r:
                        ev = json.loads(line)
                        if ev["type"] == "step":
                            steps += 1
                            if steps == 1:
                                first.append(time.perf_counter() - t)
                assert steps == args.tokens, steps

            toks = torch.tensor([window.tolist()])
            fns = {"/api/steer (default + steered)": steer,
                   "TL model.generate (one run)": lambda: model.generate(
                       toks, max_new_tokens=args.tokens, stop_at_eos=False, verbose=False, use_past_kv_cache=True,
                       do_sample=False)}
            times = interleave(fns, args.repeats, warmup=1)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    k = args.tokens
    out.say(f"generation on the same {n}-token prompt, {k} new tokens, {args.repeats} interleaved rounds after 1 warm-up:")
    for name, ts in times.items():
        made = 2 * k if name.startswith("/api/steer") else k
        out.say(f"  {name:<34} median {statistics.median(ts):.2f} s = {made / statistics.median(ts):.2f} new tokens/s "
                f"[{made / max(ts):.2f}, {made / min(ts):.2f}]")
    s, g = times["/api/steer (default + steered)"], times["TL model.generate (one run)"]
    r = sorted((2 * k / a) / (k / b) for a, b in zip(s, g))
    out.say(f"  tokens/s of /api/steer (both runs counted) / TL generate, round by round: {r[len(r) // 2]:.2f} "
            f"[{r[0]:.2f}, {r[-1]:.2f}]; first streamed token after {statistics.median(first[1:] or first):.2f} s")
    out.save()


if __name__ == "__main__":
    main()

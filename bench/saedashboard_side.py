"""sae-dashboard on the same SAE and tokens as bench/dashboard.py, for the side-by-side.

Runs in sae-dashboard's OWN venv (it needs transformer-lens<3 and transformers<4.57, so it cannot
share interp's); see /work/shared/BENCHMARKS.md for how that venv installs. This script imports
nothing from interp: it reads the token windows from interp's activation cache (raw int32 files
named in manifest.json), the model from interp's converted SmolLM2 folder (hooked_config.json +
model.safetensors, a TransformerLens state dict) and the SAE folder with SAELens.

    VENV/bin/python bench/saedashboard_side.py --cache runs/bench/acts-... --sae runs/bench/sae-random-topk \
        --model ~/.cache/interp/models/smollm2-135m --features 512 --out runs/bench/saedashboard

sae-dashboard runs the model itself (its first feature batch; later batches reuse its activation
cache on disk) and encodes every token again for each batch of features. Prints JSON with the
seconds of each feature batch, so the cost of all features can be extrapolated honestly."""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.harness import Spread, machine  # noqa: E402  (plain Python: nothing of interp)


def read_tokens(cache: Path) -> torch.Tensor:
    m = json.loads((cache / "manifest.json").read_text())
    ctx = m["context_size"]
    parts = [np.fromfile(cache / s["name"] / "tokens.bin", dtype=np.int32).reshape(-1, ctx) for s in m["shards"]]
    return torch.from_numpy(np.concatenate(parts).astype(np.int64))


def load_model(folder: Path):
    from sae_lens import HookedSAETransformer
    from safetensors.torch import load_file
    from transformer_lens import HookedTransformerConfig

    raw = json.loads((folder / "hooked_config.json").read_text())
    names = {f.name for f in dataclasses.fields(HookedTransformerConfig)}
    kw = {k: v for k, v in raw.items() if k in names and k not in ("n_params", "device", "dtype")}
    cfg = HookedTransformerConfig(**kw, device="cpu", dtype=torch.float32)
    model = HookedSAETransformer(cfg)
    state = load_file(str(folder / "model.safetensors"))
    missing, unexpected = model.load_state_dict(state, strict=False)
    bad = [k for k in missing if not k.endswith(("IGNORE", "mask", "rotary_sin", "rotary_cos"))]
    if bad or unexpected:
        raise SystemExit(f"state dict mismatch: missing {bad[:5]}, unexpected {list(unexpected)[:5]}")
    import tempfile

    from transformers import (
        AutoTokenizer,
        PreTrainedTokenizerFast,  # the folder's tokenizer_config names a transformers-5 class
    )

    tok = PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"), bos_token="<|im_start|>", eos_token="<|im_end|>")
    tmp = tempfile.mkdtemp()
    tok.save_pretrained(tmp)  # TransformerLens reloads the tokenizer by name: give it one this venv can read
    model.set_tokenizer(AutoTokenizer.from_pretrained(tmp), default_padding_side="right")
    return model.eval()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", required=True)
    ap.add_argument("--sae", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--features", type=int, default=512)
    ap.add_argument("--batch-features", type=int, default=256)
    ap.add_argument("--out", default="runs/bench/saedashboard")
    args = ap.parse_args()

    from sae_dashboard.sae_vis_data import SaeVisConfig
    from sae_dashboard.sae_vis_runner import SaeVisRunner
    from sae_lens import SAE

    torch.manual_seed(0)
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    tokens = read_tokens(Path(args.cache))
    model = load_model(Path(args.model))
    sae = SAE.load_from_disk(args.sae, device="cpu")
    hook = sae.cfg.metadata.hook_name
    # sae-dashboard calls fold_W_dec_norm(), which sae-lens refuses for TopK SAEs; our decoder rows
    # have unit norm, so folding would change nothing: skip it
    norms = sae.W_dec.norm(dim=1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-4), "decoder rows are not unit norm"
    sae.fold_W_dec_norm = lambda: None
    print(machine(), flush=True)
    times = []
    t_all = time.perf_counter()
    for f0 in range(0, args.features, args.batch_features):
        feats = list(range(f0, min(f0 + args.batch_features, args.features)))
        cfg = SaeVisConfig(hook_point=hook, features=feats, minibatch_size_features=args.batch_features,
                           minibatch_size_tokens=32, device="cpu", dtype="float32", cache_dir=out / "acts_cache")
        t = time.perf_counter()
        data = SaeVisRunner(cfg).run(encoder=sae, model=model, tokens=tokens)
        t_run = time.perf_counter() - t
        from sae_dashboard.data_writing_fns import save_feature_centric_vis

        t = time.perf_counter()
        save_feature_centric_vis(sae_vis_data=data, filename=str(out / f"features_{f0}.html"))
        times.append({"features": len(feats), "run_seconds": round(t_run, 2), "html_seconds": round(time.perf_counter() - t, 2)})
        print(json.dumps(times[-1]), flush=True)
    total = time.perf_counter() - t_all
    print(json.dumps({"tool": "sae-dashboard 0.8.0", "tokens": int(tokens.numel()), "features": args.features,
                      "seconds": round(total, 2), "features_per_second": round(args.features / total, 3), "batches": times}, indent=1))
    per = Spread([b["run_seconds"] / b["features"] for b in times[1:]] or [times[0]["run_seconds"] / times[0]["features"]])
    print(f"run seconds per feature over the feature batches after the first: {per.fmt('.3f')}")


if __name__ == "__main__":
    main()

"""The depth comparison's SAEs: N seeds per layer, and optionally trained to a matched quality.

    saes, quality = ensure_saes(root, hooks, train_caches, held_caches, cfg, model_name, device)
    saes[(hook, seed_index)] -> SAE;  quality[(hook, seed_index)] -> {"tokens", "ev", "reached", ...}

Seeds. Seed index i trains with seed cfg.seed + i (its initialisation); all seeds of all layers
read ONE shuffled stream of the train recording, so seeds differ in initialisation, not in data
order. Folders: root/<hook> for seed 0 (as before), root/<hook>.seed<i> for the others.

Matched quality (`target_ev`). We match explained variance (EV) rather than CE recovered because
EV is measured on the held-out recording alone, in milliseconds, whereas CE needs three forward
passes of the model for every check of every layer and seed. Training runs in rounds of
`sae_tokens` tokens at a constant learning rate after a fixed warm-up (no decay, so that a longer
run is exactly a continuation of a shorter one). After every round each SAE's EV is measured on
the first `eval_tokens` held-out tokens (BOS left out, as in training); an SAE that reached the
target stops, the others go on, up to `sae_token_cap` tokens. An SAE that never reached it is kept,
flagged `reached: false`, and the report names it. Without a target, every SAE trains for
`sae_tokens` tokens with the usual schedule (warm-up, flat, linear decay over the last 20%)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import torch

import sae as saelib
from interp.checkpoints import checkpoint_steps
from interp.errors import InterpError
from interp.files import write_json_atomic
from sae.runs import cache_metadata, new_saes, train_config
from sae.sources import store_source

QUALITY = "quality.json"


def sae_folder(root: Path, hook: str, i: int) -> Path:
    return Path(root) / (hook if i == 0 else f"{hook}.seed{i}")


def heldout_ev(sae, cache, hook: str, n_tokens: int) -> float:
    """EV of `sae` on the first n_tokens held-out tokens of `cache` (BOS positions left out)."""
    context_size, xs, got = cache.context_size, [], 0
    for _, acts in cache.iter_windows([hook], 32):
        x = acts[hook][:, 1:].reshape(-1, acts[hook].shape[-1])
        xs.append(x)
        got += len(x)
        if got >= n_tokens:
            break
    if not xs:
        raise InterpError(f"the held-out recording {cache.path} holds no tokens; record some.")
    x = torch.cat(xs)[: max(n_tokens, context_size - 1)].to(sae.W_dec.device)
    with torch.no_grad():
        return saelib.metrics.explained_variance(x, sae(x))


def ensure_saes(root: Path, hooks: list[str], train: dict, held: dict, cfg, model_name: str, device,
                n_seeds: int = 1, log: Callable[[str], None] = print, progress: bool = True) -> tuple[dict, dict]:
    """{(hook, i): SAE} and {(hook, i): quality}: finished SAEs are reused, the rest trained (or
    resumed) now, every layer and seed from one stream of its train cache (`cfg` a DepthConfig)."""
    if n_seeds < 1:
        raise InterpError(f"--seeds must be at least 1, not {n_seeds}.")
    some = train[hooks[0]]
    n_train = some.n_windows * (some.context_size - 1)
    target = cfg.target_ev
    cap = cfg.sae_token_cap or 0
    if target is not None and not 0 < target < 1:
        raise InterpError(f"--target-ev is a share of variance in (0, 1), not {target}.")
    round_tokens = cfg.sae_tokens or n_train
    if target is not None and cap < round_tokens:
        raise InterpError(f"--sae-token-cap ({cap:,}) must be at least one round of --sae-tokens ({round_tokens:,}) "
                          "when --target-ev is given.")
    names = [(h, i) for h in hooks for i in range(n_seeds)]
    ready, quality = {}, {}
    for key in names:
        got = _reuse(sae_folder(root, *key), cfg, target, cap, round_tokens, device)
        if got is not None:
            ready[key], quality[key] = got
            log(f"{sae_folder(root, *key)}: reusing the SAE ({quality[key]['tokens']:,} tokens, EV {quality[key]['ev']:.3f})")
    todo = [k for k in names if k not in ready]
    if not todo:
        return ready, quality
    cache = train[todo[0][0]]
    widths = {h: cache.hooks[h] for h in hooks}
    extra = cache_metadata(cache, skip_bos=True)
    saes = {}
    for h, i in todo:
        saes[(h, i)] = new_saes([h], widths, cfg.arch, cfg.k, cfg.expansion, model_name, device, extra | {"seed_index": i})[h]
    stream = store_source(cache, sorted({h for h, _ in todo}), cfg.sae_batch_size, cfg.seed, True, device)

    def batches(start: int):
        for b in stream(start):
            yield {_key(k): b[k[0]] for k in group}

    rounds = 1 if target is None else -(-cap // round_tokens)
    group = list(todo)
    done_steps = max((max(checkpoint_steps(sae_folder(root, *k)), default=0) for k in group), default=0)
    first_round = max(1, -(-done_steps * cfg.sae_batch_size // round_tokens)) if target is not None else 1
    for r in range(first_round, rounds + 1):
        tokens = round_tokens * r
        tcfgs = {_key(k): _train_config(cfg, tokens if target is not None else round_tokens, k[1], target is not None)
                 for k in group}
        steps = next(iter(tcfgs.values())).steps
        log(f"training {len(group)} {cfg.arch} SAE(s) ({cfg.expansion}x, k={cfg.k}) to step {steps} of "
            f"{cfg.sae_batch_size} tokens" + (f" (round {r} of at most {rounds}, target EV {target})" if target else ""))
        trained = saelib.train_saes({_key(k): saes[k] for k in group}, batches, tcfgs,
                                    {_key(k): sae_folder(root, *k) for k in group}, progress=progress)
        still = []
        for k in group:
            s = trained[_key(k)]
            ev = heldout_ev(s, held[k[0]], k[0], cfg.eval_tokens)
            reached = target is None or ev >= target
            if target is not None and not reached and r < rounds:
                still.append(k)  # trains on from this round's checkpoint
                continue
            q = {"tokens": steps * cfg.sae_batch_size, "steps": steps, "ev": ev, "target_ev": target,
                 "token_cap": cap if target is not None else None, "reached": bool(reached), "seed": cfg.seed + k[1],
                 "seed_index": k[1], "round_tokens": round_tokens}
            write_json_atomic(sae_folder(root, *k) / QUALITY, q)
            ready[k], quality[k] = s, q
            if target is not None:
                log(f"{k[0]} seed {k[1]}: EV {ev:.3f} after {q['tokens']:,} tokens: "
                    + ("target reached" if reached else f"MISSED the target {target} within the cap of {cap:,} tokens"))
        group = still
        if not group:
            break
    return ready, quality


def _key(k: tuple[str, int]) -> str:
    return f"{k[0]}#s{k[1]}"


def _train_config(cfg, tokens: int, seed_index: int, constant_lr: bool):
    tcfg = train_config(tokens, cfg.sae_batch_size, cfg.checkpoint_every, cfg.seed + seed_index, cfg.lr)
    if constant_lr:  # rounds continue one another exactly: the schedule must not depend on the length
        first = max(1, (cfg.sae_tokens or tokens) // cfg.sae_batch_size)
        tcfg.lr_decay_start = 1.0
        tcfg.lr_warmup_steps = min(100, max(1, first // 10))
        tcfg.sparsity_warmup_steps = max(1, first // 20)
    return tcfg


def _reuse(folder: Path, cfg, target, cap: int, round_tokens: int, device):
    q = folder / QUALITY
    if not (folder / "cfg.json").exists() or not q.exists():
        return None
    quality = json.loads(q.read_text())
    if quality.get("target_ev") != target or quality.get("round_tokens") != round_tokens or \
            (target is not None and quality.get("token_cap") != cap):
        raise InterpError(f"the SAE in {folder} was trained for another target or budget ({quality}); "
                          "choose another --out, or delete that folder.")
    s = saelib.load_sae(folder, device=device)
    arch = s.cfg.extra.get("trained_as", s.name)
    want_k = cfg.k if cfg.arch in ("topk", "batchtopk") else None
    if arch != cfg.arch or s.cfg.d_sae != cfg.expansion * s.cfg.d_in or (want_k is not None and s.cfg.k != want_k):
        raise InterpError(f"the SAE in {folder} is a {arch} SAE of d_sae {s.cfg.d_sae}, k {s.cfg.k}, not what "
                          f"--arch {cfg.arch} --expansion {cfg.expansion} --k {cfg.k} asks for; move it away or match the flags.")
    return s, quality



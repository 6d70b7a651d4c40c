"""How readable are a model's neurons and SAE features, layer by layer (the CRATE-LM comparison).

    results = compare_layers(model, [0, 4, 8], train_windows, heldout_windows, "runs/depth")

One recording per split holds every requested layer (interp.record: one forward pass each); the
SAEs of all layers train together from one stream of the train recording (sae.train_saes); then
each layer in turn: the SAE's quality on held-out text (sae.evaluate_sae) and the scores of its
neurons and SAE features (analyses.scoring.score_many, one pass over each split).

What makes the layers comparable: every layer samples the same number of live features with a
seed fixed by the run's seed and the layer's hook; every layer is scored on the same held-out
windows (the same recording, whose token hash each layer's result keeps); every mean comes with a
95% bootstrap CI. A layer's folder gets its `done.json` last, so a rerun skips finished layers, and
a rerun with other settings is refused rather than mixed into the old results.

Layout of `out`:
    settings.json           what every layer's numbers depend on (checked on every rerun)
    acts/train, acts/heldout   activation caches (acts/<split>.1, ... when layers are added later)
    saes/<hook>/            one SAE per layer (SAELens folder); an SAE already there is reused
    layers/L<nn>/           neurons/ and sae/ (explanations.json, scores.json), sae_metrics.json, done.json
    results.json, report.md, report.html"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch

from analyses.dictionary import neuron_dictionary, sae_dictionary
from analyses.scoring import ScoringConfig, score_many
from interp.errors import InterpError
from interp.recording import record, windows_sha256
from interp.sites import hook_name
from interp.files import write_json_atomic
from interp.store import ActivationCache

DONE = "done.json"
KINDS = ("neurons", "sae")
UNCHECKED = ("record_batch_size", "eval_batch_size", "windows_per_batch", "checkpoint_every")


@dataclass
class DepthConfig:
    site: str = "mlp_post"
    arch: str = "topk"
    k: int = 32  # active latents per token (topk, batchtopk)
    expansion: int = 4  # d_sae = expansion * d_in
    sae_tokens: int | None = None  # SAE training tokens; None = one epoch of the train recording
    sae_batch_size: int = 1024
    lr: float | None = None  # None: the trainer's default
    checkpoint_every: int = 100
    features_per_layer: int = 100  # live neurons and live SAE features scored per layer, each
    eval_tokens: int = 4096  # held-out tokens for the SAE's quality (3 forward passes each)
    record_batch_size: int = 8
    eval_batch_size: int = 8
    windows_per_batch: int = 32  # windows per batch of the scoring passes
    seed: int = 0
    scoring: ScoringConfig = field(default_factory=ScoringConfig)  # n_features and seed come from above


def compare_layers(
    model,
    layers: list[int],
    train_windows: torch.Tensor,  # [n, ctx] token ids: recorded, trains the SAEs, explains features
    heldout_windows: torch.Tensor,  # [m, ctx]: every layer is scored and evaluated on these
    out: str | Path,
    cfg: DepthConfig = DepthConfig(),
    tokenizer=None,
    explainer=None,  # default: the token explainer and simulator of analyses.scoring
    simulator=None,
    log: Callable[[str], None] = print,
    progress: bool = True,
) -> dict:
    """Neurons vs SAE features, layer by layer; writes `out` (see the module doc), returns results.json."""
    from analyses.report import summarize, write_reports

    out = Path(out)
    started = time.perf_counter()
    hooks = {layer: hook_name(cfg.site, layer) for layer in layers}
    settings = run_settings(model, cfg, train_windows, heldout_windows, explainer, simulator)
    check_settings(out, settings)
    done = {layer: json.loads((layer_dir(out, layer) / DONE).read_text()) for layer in layers if (layer_dir(out, layer) / DONE).exists()}
    todo = [layer for layer in layers if layer not in done]
    for layer in done:
        log(f"layer {layer}: finished in an earlier run, kept ({layer_dir(out, layer)})")
    seconds: dict[str, float] = {}
    if todo:
        todo_hooks = [hooks[layer] for layer in todo]
        t0 = time.perf_counter()
        train = record_split(model, train_windows, todo_hooks, out / "acts", "train", cfg.record_batch_size, progress)
        held = record_split(model, heldout_windows, todo_hooks, out / "acts", "heldout", cfg.record_batch_size, progress)
        t1 = time.perf_counter()
        saes = ensure_saes(out / "saes", todo_hooks, train, cfg, model.cfg.model_name, _device(model), log, progress)
        t2 = time.perf_counter()
        seconds.update(record=round(t1 - t0, 1), train_saes=round(t2 - t1, 1))
        for layer in todo:
            h = hooks[layer]
            t = time.perf_counter()
            done[layer] = score_layer(model, layer, h, saes[h], train[h], held[h], heldout_windows, cfg, out,
                                      tokenizer, explainer, simulator)
            log(f"layer {layer}: neurons {_fmt(done[layer]['neurons'])}, SAE features {_fmt(done[layer]['sae'])} "
                f"({time.perf_counter() - t:.0f} s)")
    seconds = _timings(out, seconds, [done[layer] for layer in layers], time.perf_counter() - started)
    tcfg = sae_train_config(cfg, len(train_windows) * (train_windows.shape[1] - 1))
    training = {"steps": tcfg.steps, "batch_size": cfg.sae_batch_size, "tokens": tcfg.steps * cfg.sae_batch_size,
                "lr": tcfg.lr, "lr_warmup_steps": tcfg.lr_warmup()}
    results = summarize(model.cfg.model_name, [done[layer] for layer in layers], settings, cfg, training, seconds)
    write_json_atomic(out / "results.json", results)
    write_reports(results, out)
    return results


# --- settings -----------------------------------------------------------------------------

def run_settings(model, cfg: DepthConfig, train_windows: torch.Tensor, heldout_windows: torch.Tensor,
                 explainer=None, simulator=None) -> dict:
    """Everything a layer's numbers depend on, except which layers were asked for."""
    return {
        "model": model.cfg.model_name,
        # batch sizes and checkpoint spacing change no number, so a rerun may change them
        "config": {k: v for k, v in asdict(cfg).items() if k not in UNCHECKED},
        "explainer": getattr(explainer, "name", "tokens"),
        "simulator": getattr(simulator, "name", "tokens"),
        "context_size": int(train_windows.shape[1]),
        "train_windows": int(len(train_windows)),
        "heldout_windows": int(len(heldout_windows)),
        "train_tokens_sha256": windows_sha256(train_windows),
        "heldout_tokens_sha256": windows_sha256(heldout_windows),
    }


def check_settings(out: Path, settings: dict) -> None:
    """Write settings.json, or check that the run already in `out` used the same settings."""
    path = out / "settings.json"
    if path.exists():
        old = json.loads(path.read_text())
        if old != json.loads(json.dumps(settings)):
            diff = sorted(k for k in set(old) | set(settings) if old.get(k) != json.loads(json.dumps(settings.get(k))))
            if "config" in diff:
                c_old, c_new = old["config"], json.loads(json.dumps(settings["config"]))
                diff = [f"config.{k}" for k in c_new if c_old.get(k) != c_new[k]] + [d for d in diff if d != "config"]
            raise InterpError(f"{out} holds a comparison made with other settings ({', '.join(diff)} differ); "
                              "choose another --out, or delete it to start over.")
        return
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, settings)


def layer_dir(out: Path, layer: int) -> Path:
    return Path(out) / "layers" / f"L{layer:02d}"


# --- stage 1: one recording per split -------------------------------------------------------

def record_split(model, windows: torch.Tensor, hooks: list[str], root: Path, split: str,
                 batch_size: int = 8, progress: bool = True) -> dict[str, ActivationCache]:
    """{hook: a cache of `windows` holding it}. Caches already in root/<split>* are reused; the hooks
    none holds are recorded in ONE new pass into root/<split> (or root/<split>.<n> beside older ones)."""
    sha = windows_sha256(windows)
    found: dict[str, ActivationCache] = {}
    unfinished = []
    for folder in sorted(Path(root).glob(f"{split}*")):
        if not (folder / "manifest.json").exists():
            continue
        cache = ActivationCache(folder)
        if cache.manifest["header"].get("tokens_sha256") != sha:
            raise InterpError(f"{folder} holds a recording of other text; delete it or choose another --out.")
        if not cache.manifest.get("complete"):
            unfinished.append(cache)
            continue
        for h in cache.hooks:
            found.setdefault(h, cache)
    missing = [h for h in hooks if h not in found]
    if missing:
        same = [c for c in unfinished if list(c.hooks) == missing]
        if same:  # a killed recording of exactly these hooks: resume it
            folder = same[0].path
        else:  # a killed recording of other hooks: whatever is still asked for is in `missing`
            for c in unfinished:
                shutil.rmtree(c.path)
            names = {p.name for p in Path(root).glob(f"{split}*")}
            folder = Path(root) / next(n for n in [split, *(f"{split}.{i}" for i in range(1, len(names) + 2))] if n not in names)
        cache = record(model, windows, missing, folder, batch_size=batch_size, header={"split": split}, progress=progress)
        found.update({h: cache for h in missing})
    return {h: found[h] for h in hooks}


# --- stage 2: SAEs, trained together from one stream ----------------------------------------

def ensure_saes(root: Path, hooks: list[str], caches: dict[str, ActivationCache], cfg: DepthConfig,
                model_name: str, device, log: Callable[[str], None] = print, progress: bool = True) -> dict:
    """{hook: SAE}: the SAE in root/<hook> when it is finished, else trained (or resumed) now; the
    SAEs to train share one shuffled stream of their cache."""
    import sae as saelib
    from interp.checkpoints import checkpoint_steps

    from interp.sae_runs import cache_batches, new_saes

    some = caches[hooks[0]]
    tcfg = sae_train_config(cfg, some.n_windows * (some.context_size - 1))
    ready, groups = {}, {}
    for h in hooks:
        d = Path(root) / h
        if (d / "cfg.json").exists() and _finished(d, tcfg.steps):
            ready[h] = saelib.load_sae(d, device=device)
            _check_sae(ready[h], cfg, d)
            log(f"{h}: reusing the SAE in {d}")
        else:
            steps = checkpoint_steps(d)
            groups.setdefault((str(caches[h].path), max(steps) if steps else -1), []).append(h)
    for group in groups.values():
        cache = caches[group[0]]
        saes = new_saes(group, {h: cache.hooks[h] for h in group}, cfg.arch, cfg.k, cfg.expansion, model_name, device,
                        extra={"context_size": cache.context_size, "dataset": str(cache.path), "skip_bos": True})
        log(f"training {len(group)} {cfg.arch} SAE(s) ({cfg.expansion}x, k={cfg.k}): {tcfg.steps} steps of "
            f"{cfg.sae_batch_size} tokens from {cache.path}")
        batches = cache_batches(cache, group, cfg.sae_batch_size, cfg.seed, True, device)
        ready.update(saelib.train_saes(saes, batches, tcfg, {h: Path(root) / h for h in group}, progress=progress))
    return ready


def sae_train_config(cfg: DepthConfig, n_train_tokens: int):
    """The SAEs' TrainConfig: cfg.sae_tokens, or one epoch of the train recording (BOS left out)."""
    from interp.sae_runs import train_config

    return train_config(cfg.sae_tokens or n_train_tokens, cfg.sae_batch_size, cfg.checkpoint_every, cfg.seed, cfg.lr)


def _finished(folder: Path, steps: int) -> bool:
    state = folder / "train_state.json"
    if not state.exists():
        return not (folder / "checkpoints").exists()  # an SAE put there by hand, trained elsewhere
    return json.loads(state.read_text()).get("step", 0) >= steps


def _check_sae(sae, cfg: DepthConfig, folder: Path) -> None:
    arch = sae.cfg.extra.get("trained_as", sae.name)
    want_k = cfg.k if cfg.arch in ("topk", "batchtopk") else None
    if arch != cfg.arch or sae.cfg.d_sae != cfg.expansion * sae.cfg.d_in or (want_k is not None and sae.cfg.k != want_k):
        raise InterpError(f"the SAE in {folder} is a {arch} SAE of d_sae {sae.cfg.d_sae}, k {sae.cfg.k}, not what "
                          f"--arch {cfg.arch} --expansion {cfg.expansion} --k {cfg.k} asks for; move it away or match the flags.")


# --- stage 3: one layer ----------------------------------------------------------------------

def score_layer(model, layer: int, hook: str, sae, train: ActivationCache, held: ActivationCache,
                heldout_windows: torch.Tensor, cfg: DepthConfig, out: Path, tokenizer=None,
                explainer=None, simulator=None) -> dict:
    """The SAE's quality and both kinds' scores for one layer, written to layers/L<nn>/ (done.json last)."""
    from sae import evaluate_sae

    folder = layer_dir(out, layer)
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    n_eval = max(1, cfg.eval_tokens // heldout_windows.shape[1])
    metrics = evaluate_sae(sae, model, heldout_windows[:n_eval], batch_size=cfg.eval_batch_size)
    write_json_atomic(folder / "sae_metrics.json", metrics)
    t1 = time.perf_counter()
    scfg = replace(cfg.scoring, n_features=cfg.features_per_layer, seed=cfg.seed)
    names = {kind: f"{hook}/{kind}" for kind in KINDS}  # the name also seeds the layer's own feature sample
    dictionaries = {names["neurons"]: (neuron_dictionary(model, hook), None), names["sae"]: (sae_dictionary(sae), None)}
    wpb = cfg.windows_per_batch
    results = score_many(dictionaries, train.iter_windows([hook], wpb), held.iter_windows([hook], wpb), scfg,
                         tokenizer, explainer, simulator, _device(model))
    row = {"layer": layer, "hook": hook}
    for kind in KINDS:
        r = results[names[kind]]
        r.save(folder / kind)
        row[kind] = {**r.summary, "scores": [s.score for s in r.scores], "features": [s.feature for s in r.scores],
                     "detection": [s.detection_auroc for s in r.scores]}
    meta = results[names["sae"]].meta
    row["sae_quality"] = {
        "architecture": cfg.arch, "d_in": sae.cfg.d_in, "d_sae": sae.cfg.d_sae, "k": sae.cfg.k,
        # skip_bos: evaluate_sae leaves BOS out as the SAE was trained (its attention-sink outlier
        # would dominate EV: 44x the typical norm at layer 28 of SmolLM2)
        "explained_variance": metrics["explained_variance"], "l0": metrics["l0"], "skip_bos": metrics.get("skip_bos", False),
        **{k: metrics.get(k) for k in ("ce_loss_score", "dead_fraction", "kl_div_score",
                                       "ce_loss_without_sae", "ce_loss_with_sae", "ce_loss_with_ablation")},
        "n_eval_tokens": metrics["n_tokens"],
        # never firing on the whole train split: a steadier dead count than the short evaluation's
        "dead_fraction_train": row["sae"]["n_dead"] / row["sae"]["n_total"],
    }
    row["text"] = {"train_tokens_sha256": train.manifest["header"]["tokens_sha256"],
                   "heldout_tokens_sha256": held.manifest["header"]["tokens_sha256"],
                   "n_train_tokens": meta["n_train_tokens"], "n_heldout_tokens": meta["n_heldout_tokens"],
                   "heldout_random_examples": meta["heldout_random_examples"]}
    row["seconds"] = {"evaluate_sae": round(t1 - t0, 1), "score": round(time.perf_counter() - t1, 1)}
    write_json_atomic(folder / DONE, row)
    return row


def _timings(out: Path, now: dict, rows: list[dict], this_run: float) -> dict:
    """Seconds by stage across runs: a rerun that skips the recording keeps the first run's time."""
    path = out / "timings.json"
    seconds = json.loads(path.read_text()) if path.exists() else {}
    seconds.update(now)
    write_json_atomic(path, seconds)
    return {**seconds, "layers": round(sum(sum(r["seconds"].values()) for r in rows), 1), "this_run": round(this_run, 1)}


def _device(model) -> torch.device:
    return next(model.parameters()).device


def _fmt(s: dict) -> str:
    return f"{s['mean_score']:.3f} [{s['ci95'][0]:.3f}, {s['ci95'][1]:.3f}] (n={s['n_scored']})"


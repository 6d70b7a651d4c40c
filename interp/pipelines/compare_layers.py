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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch

from analyses.bases import DEFAULT_BASES, parse_bases
from analyses.depth_bases import (
    basis_rows,
    calibrated,
    layer_dictionaries,
    score_bases,
    write_units,
)
from analyses.depth_calibration import layer_density, layer_lexical
from analyses.report import summarize, write_reports
from analyses.scoring import ScoringConfig
from interp.errors import InterpError
from interp.files import write_json_atomic
from interp.models.processing import processing_setting
from interp.models.random_copy import random_copy
from interp.pipelines import layer_saes
from interp.recording import record, windows_sha256
from interp.sites import hook_name
from interp.store import ActivationStore
from sae import evaluate_sae
from sae.runs import train_config

DONE = "done.json"
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
    bases: tuple = DEFAULT_BASES  # analyses/bases.py
    seeds: int = 1  # SAEs (and random bases) per layer, seeds seed, seed + 1, ...
    target_ev: float | None = None  # train each SAE until its held-out EV reaches this, or the cap
    sae_token_cap: int | None = None  # with target_ev: the most tokens an SAE may train for
    fit_tokens: int = 16384  # train tokens PCA and ICA are fitted on
    ica_components: int = 128
    cross_check_units: int = 0  # with a cross-check scorer: units of each dictionary scored by it too


def compare_layers(
    model,
    layers: list[int],
    train_windows: torch.Tensor,  # [n, context_size] token ids: recorded, trains the SAEs, explains features
    heldout_windows: torch.Tensor,  # [m, context_size]: every layer is scored and evaluated on these
    out: str | Path,
    cfg: DepthConfig = DepthConfig(),
    tokenizer=None,
    explainer=None,  # default: the token explainer and simulator of analyses.scoring
    simulator=None,
    log: Callable[[str], None] = print,
    progress: bool = True,
    cross=None,  # (explainer, simulator) of the cross-check (an LLM's): cfg.cross_check_units per dictionary
    overwrite: bool = False,  # a comparison with other settings in `out` is deleted instead of refused
) -> dict:
    """Neurons vs SAE features, layer by layer; writes `out` (see the module doc), returns results.json."""
    out = Path(out)
    started = time.perf_counter()
    bases = parse_bases(",".join(cfg.bases))
    hooks = {layer: hook_name(cfg.site, layer) for layer in layers}
    settings = run_settings(model, cfg, train_windows, heldout_windows, explainer, simulator, cross)
    check_settings(out, settings, overwrite)
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
        check_fits(bases, train, todo_hooks, cfg)  # before any training: a basis that cannot be fit says so now
        t1 = time.perf_counter()
        saes, quality = layer_saes.ensure_saes(out / "saes", todo_hooks, train, held, cfg, model.cfg.model_name,
                                               _device(model), cfg.seeds, log, progress)
        t2 = time.perf_counter()
        seconds.update(record=round(t1 - t0, 1), train_saes=round(t2 - t1, 1))
        rand = None
        if "sae-random-model" in bases:  # the null: the same recipe on a randomly initialised copy
            rmodel = random_copy(model, seed=cfg.seed)
            r_train = record_split(rmodel, train_windows, todo_hooks, out / "random-model" / "acts", "train",
                                   cfg.record_batch_size, progress)
            r_held = record_split(rmodel, heldout_windows, todo_hooks, out / "random-model" / "acts", "heldout",
                                  cfg.record_batch_size, progress)
            t3 = time.perf_counter()
            r_saes, r_quality = layer_saes.ensure_saes(out / "random-model" / "saes", todo_hooks, r_train, r_held, cfg,
                                                       rmodel.cfg.model_name, _device(model), 1, log, progress)
            rand = (rmodel, r_train, r_held, r_saes, r_quality)
            seconds.update(record_random_model=round(t3 - t2, 1), train_random_model_saes=round(time.perf_counter() - t3, 1))
        for layer in todo:
            h = hooks[layer]
            t = time.perf_counter()
            done[layer] = score_layer(model, layer, h, saes, quality, train[h], held[h], heldout_windows, cfg, out,
                                      tokenizer, explainer, simulator, rand, cross)
            log(f"layer {layer}: " + ", ".join(f"{b} {_fmt(r)}" for b, r in done[layer]["bases"].items())
                + f" ({time.perf_counter() - t:.0f} s)")
    seconds = _timings(out, seconds, [done[layer] for layer in layers], time.perf_counter() - started)
    tcfg = sae_train_config(cfg, len(train_windows) * (train_windows.shape[1] - 1))
    training = {"steps": tcfg.steps, "batch_size": cfg.sae_batch_size, "tokens": tcfg.steps * cfg.sae_batch_size,
                "lr": tcfg.lr, "lr_warmup_steps": tcfg.lr_warmup(), "seeds": cfg.seeds, "target_ev": cfg.target_ev,
                "token_cap": cfg.sae_token_cap}
    results = summarize(model.cfg.model_name, [done[layer] for layer in layers], settings, cfg, training, seconds)
    write_json_atomic(out / "results.json", results)
    write_reports(results, out)
    return results


def check_fits(bases: list[str], train: dict, hooks: list[str], cfg: DepthConfig) -> None:
    """PCA needs at least as many fitting tokens as the site has dimensions; ICA as many as its components."""
    for h in hooks:
        c = train[h]
        n = min(cfg.fit_tokens, c.n_windows * (c.context_size - 1))
        d = c.hooks[h]
        if "pca" in bases and n < d:
            raise InterpError(f"the pca basis of {h} ({d} dimensions) cannot be fit on {n:,} train tokens; give "
                              f"--fit-tokens and --tokens of at least {d}, or drop pca from --bases.")
        if "ica" in bases and n < min(cfg.ica_components, d):
            raise InterpError(f"the ica basis of {h} cannot be fit: {n:,} train tokens for {min(cfg.ica_components, d)} "
                              "components; record more tokens or lower --ica-components.")


# --- settings -----------------------------------------------------------------------------

def run_settings(model, cfg: DepthConfig, train_windows: torch.Tensor, heldout_windows: torch.Tensor,
                 explainer=None, simulator=None, cross=None) -> dict:
    """Everything a layer's numbers depend on, except which layers were asked for."""
    extra = {} if cross is None else {"cross_check": [c.name for c in cross]}
    return {**extra,
        "model": model.cfg.model_name,
        # batch sizes and checkpoint spacing change no number, so a rerun may change them
        # (cross_check_units only when a cross-check runs: earlier runs' settings stay valid)
        "config": {k: v for k, v in asdict(cfg).items() if k not in UNCHECKED and (k != "cross_check_units" or cross is not None)},
        "explainer": getattr(explainer, "name", "tokens"),
        "simulator": getattr(simulator, "name", "tokens"),
        "context_size": int(train_windows.shape[1]),
        "train_windows": int(len(train_windows)),
        "heldout_windows": int(len(heldout_windows)),
        "train_tokens_sha256": windows_sha256(train_windows),
        "heldout_tokens_sha256": windows_sha256(heldout_windows),
        **processing_setting(model),
    }


# what a comparison writes in its folder (all of it goes when --overwrite replaces one made otherwise)
OUTPUTS = ("settings.json", "acts", "saes", "random-model", "layers", "results.json", "report.md", "report.html",
           "timings.json", "run.json")


def check_settings(out: Path, settings: dict, overwrite: bool = False) -> None:
    """Write settings.json, or check that the run already in `out` used the same settings; with
    `overwrite`, a comparison made with other settings is deleted (its OUTPUTS only) and this one starts."""
    path = out / "settings.json"
    if path.exists() and overwrite and json.loads(path.read_text()) != json.loads(json.dumps(settings)):
        for name in OUTPUTS:
            p = out / name
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink(missing_ok=True)
    if path.exists():
        old = json.loads(path.read_text())
        if old != json.loads(json.dumps(settings)):
            diff = sorted(k for k in set(old) | set(settings) if old.get(k) != json.loads(json.dumps(settings.get(k))))
            if "config" in diff:
                c_old, c_new = old["config"], json.loads(json.dumps(settings["config"]))
                diff = [f"config.{k}" for k in c_new if c_old.get(k) != c_new[k]] + [d for d in diff if d != "config"]
            raise InterpError(f"{out} holds a comparison made with other settings ({', '.join(diff)} differ); "
                              "choose another --out, or pass --overwrite to replace it.")
        return
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, settings)


def layer_dir(out: Path, layer: int) -> Path:
    return Path(out) / "layers" / f"L{layer:02d}"


# --- stage 1: one recording per split -------------------------------------------------------

def record_split(model, windows: torch.Tensor, hooks: list[str], root: Path, split: str,
                 batch_size: int = 8, progress: bool = True) -> dict[str, ActivationStore]:
    """{hook: a cache of `windows` holding it}. Caches already in root/<split>* are reused; the hooks
    none holds are recorded in ONE new pass into root/<split> (or root/<split>.<n> beside older ones)."""
    sha = windows_sha256(windows)
    found: dict[str, ActivationStore] = {}
    unfinished = []
    for folder in sorted(Path(root).glob(f"{split}*")):
        if not (folder / "manifest.json").exists():
            continue
        cache = ActivationStore(folder)
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

def sae_train_config(cfg: DepthConfig, n_train_tokens: int):
    """The SAEs' TrainConfig: cfg.sae_tokens, or one epoch of the train recording (BOS left out)."""
    return train_config(cfg.sae_tokens or n_train_tokens, cfg.sae_batch_size, cfg.checkpoint_every, cfg.seed, cfg.lr)


# --- stage 3: one layer ----------------------------------------------------------------------

def score_layer(model, layer: int, hook: str, saes: dict, quality: dict, train: ActivationStore, held: ActivationStore,
                heldout_windows: torch.Tensor, cfg: DepthConfig, out: Path, tokenizer=None,
                explainer=None, simulator=None, rand=None, cross=None) -> dict:
    """Every basis's scores and every SAE's quality for one layer, written to layers/L<nn>/ (done.json last).
    `rand`: (random model, its train and held-out caches, its SAEs, their quality) for sae-random-model."""
    folder = layer_dir(out, layer)
    folder.mkdir(parents=True, exist_ok=True)
    bases = parse_bases(",".join(cfg.bases))
    t0 = time.perf_counter()
    n_eval = max(1, cfg.eval_tokens // heldout_windows.shape[1])
    sae_quality = []
    for i in range(cfg.seeds):
        metrics = evaluate_sae(saes[(hook, i)], model, heldout_windows[:n_eval], batch_size=cfg.eval_batch_size)
        write_json_atomic(folder / f"sae_metrics.s{i}.json", metrics)
        sae_quality.append(_quality(saes[(hook, i)], metrics, quality[(hook, i)], cfg))
    random_quality = []
    if rand is not None:
        rmodel, r_train, r_held, r_saes, r_q = rand
        metrics = evaluate_sae(r_saes[(hook, 0)], rmodel, heldout_windows[:n_eval], batch_size=cfg.eval_batch_size,
                               compute_losses=False)
        random_quality.append(_quality(r_saes[(hook, 0)], metrics, r_q[(hook, 0)], cfg))
    t1 = time.perf_counter()
    real, rdicts, fits = layer_dictionaries(model, hook, bases, {i: saes[(hook, i)] for i in range(cfg.seeds)}, train, cfg,
                                            cfg.seeds, None if rand is None else {0: rand[3][(hook, 0)]})
    t2 = time.perf_counter()
    results = score_bases(real, train, held, hook, cfg, folder, tokenizer, explainer, simulator, _device(model), cross)
    if rdicts:
        results |= score_bases(rdicts, rand[1][hook], rand[2][hook], hook, cfg, folder, tokenizer, explainer, simulator,
                               _device(model), cross)
    nb = cfg.scoring.n_boot
    rows = basis_rows(results, hook, bases, nb, cfg.seed)
    t3 = time.perf_counter()
    lexical = layer_lexical(folder, rows, heldout_windows, nb, cfg.seed)  # from the heldout_acts files just written
    density = layer_density(rows, "top_random", nb, cfg.seed)
    write_units(folder, rows)
    meta = next(iter(results.values())).meta
    row = {"layer": layer, "hook": hook, "bases": rows, "fits": fits,
           "calibrated": {k: calibrated(rows, "random", k, nb, cfg.seed) for k in ("top_random", "random_only", "bands", "detection")},
           "lexical": lexical, "density": density,
           "sae_quality": sae_quality, "random_model_sae_quality": random_quality}
    row["text"] = {"train_tokens_sha256": train.manifest["header"]["tokens_sha256"],
                   "heldout_tokens_sha256": held.manifest["header"]["tokens_sha256"],
                   "n_train_tokens": meta["n_train_tokens"], "n_heldout_tokens": meta["n_heldout_tokens"],
                   "heldout_random_examples": meta["heldout_random_examples"]}
    row["seconds"] = {"evaluate_sae": round(t1 - t0, 1), "fit_bases": round(t2 - t1, 1), "score": round(t3 - t2, 1),
                      "lexical_and_density": round(time.perf_counter() - t3, 1)}
    write_json_atomic(folder / DONE, row)
    return row


def _quality(sae, metrics: dict, trained: dict, cfg: DepthConfig) -> dict:
    return {
        "architecture": cfg.arch, "d_in": sae.cfg.d_in, "d_sae": sae.cfg.d_sae, "k": sae.cfg.k,
        # skip_bos: evaluate_sae leaves BOS out as the SAE was trained (its attention-sink outlier
        # would dominate EV: 44x the typical norm at layer 28 of SmolLM2)
        "explained_variance": metrics["explained_variance"], "l0": metrics["l0"], "skip_bos": metrics.get("skip_bos", False),
        **{k: metrics.get(k) for k in ("ce_loss_score", "dead_fraction", "kl_div_score",
                                       "ce_loss_without_sae", "ce_loss_with_sae", "ce_loss_with_ablation")},
        "n_eval_tokens": metrics["n_tokens"], "training": trained,
    }


def _timings(out: Path, now: dict, rows: list[dict], this_run: float) -> dict:
    """Seconds by stage across runs: a rerun that skips the recording keeps the first run's time."""
    path = out / "timings.json"
    seconds = json.loads(path.read_text()) if path.exists() else {}
    seconds.update(now)
    write_json_atomic(path, seconds)
    return {**seconds, "layers": round(sum(sum(r["seconds"].values()) for r in rows), 1), "this_run": round(this_run, 1)}


def _device(model) -> torch.device:
    return next(model.parameters()).device


def _fmt(row: dict) -> str:
    k = row["kinds"]["top_random"]
    lo, hi = k["ci95_undefined_at_chance"]
    return f"{k['mean_undefined_at_chance']:.3f} [{lo:.3f}, {hi:.3f}] (n={k['n']})"


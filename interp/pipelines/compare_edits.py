"""The editing benchmark: what an edit of a neuron, an SAE latent or a direction buys (target effect)
against what it costs (collateral KL), layer by layer. The measurements are analyses/edits.py.

    results = compare_edits(model, [0, 1], train_windows, eval_windows, "runs/edits", EditConfig())

Unit kinds, all at blocks.L.mlp.hook_post unless said:
    neurons       the MLP's neurons (CRATE: its sparse code z)
    z0            CRATE's first ISTA estimate (blocks.L.mlp.hook_z0): the second step re-solves
    sae           latents of an SAE at the site, spliced WITH the error term (no edit = clean model)
    sae-noerror   the same latents, spliced WITHOUT it (no edit = the reconstruction's cost)
    random        random unit directions at the site (the null)

Per layer and kind: the unit values on `stat_windows` train windows give each unit's firing density
(value > 0) and train max; `units_per_layer` units that fire (and do not) on the eval windows are
drawn evenly across the order of their densities. On the eval windows, per unit:
necessity (two passes: ablated where it fires, and at as many random positions), then the two
ladders at the positions where it does not fire: clamp at c x train max, and add alpha x the
site's median norm along the unit's own direction (its decoder row for a latent). The zero edit
(one pass per kind) gives the exactness check and every curve's first point.

Resumable like compare-layers: layers/L<nn>/<kind>.json per finished kind, done.json per finished
layer; a rerun skips them and refuses other settings. SAEs come from --sae-dir (<dir>/<hook>) or
are trained once into out/saes (interp.pipelines.layer_saes)."""

from __future__ import annotations

import json
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from analyses import edits as E
from analyses.edits_report import summarize, write_reports
from analyses.logits import effective_unembed
from interp.errors import InterpError
from interp.files import write_json_atomic
from interp.models.processing import check_processing, processing_setting
from interp.pipelines import layer_saes
from interp.pipelines.compare_layers import DepthConfig, check_settings, layer_dir, record_split
from interp.recording import windows_sha256
from sae import Ablate, Add, Clamp, Direction, Latent, Neuron, apply, apply_stacked, load_sae, spliced
from sae.splice import check_sae_fits

UNIT_KINDS = ("neurons", "z0", "sae", "sae-noerror", "random")
SAE_KINDS = ("sae", "sae-noerror")
DONE = "done.json"
CURVE_KEYS = (*(f"effect_at_kl_{b:g}" for b in E.KL_BUDGETS), "auc")
UNCHECKED = ("batch_size", "fast", "record_batch_size", "checkpoint_every")


@dataclass
class EditConfig:
    units: tuple = ("neurons", "sae", "sae-noerror", "random")
    units_per_layer: int = 50
    clamp_ladder: tuple = (0.0, 1.0, 2.0, 5.0, 10.0)  # x the unit's train max
    add_ladder: tuple = (0.5, 1.0, 2.0, 4.0, 8.0)  # x the site's median norm
    promoted_k: int = 5  # the unit's promoted tokens: the top k of its logit effects
    always: tuple = ()  # unit ids drawn whatever their density (neurons, z0, SAE latents): chosen or planted units
    min_positions: int = 3  # a unit is drawn only if it fires, and does not, at this many eval positions
    stat_windows: int = 64  # train windows for densities, train maxima and the median norm
    batch_size: int = 16  # eval windows per forward pass (stacked edits count: edits x windows <= this)
    fast: bool = True  # share the prefix before the layer and stack a unit's edits in one forward (same numbers)
    n_boot: int = 1000
    seed: int = 0
    # the SAEs trained when no --sae-dir is given (interp.pipelines.layer_saes)
    arch: str = "topk"
    k: int = 32
    expansion: int = 4
    sae_tokens: int | None = None
    sae_batch_size: int = 1024
    lr: float | None = None
    checkpoint_every: int = 100
    record_batch_size: int = 8


def parse_units(spec: str | tuple) -> tuple:
    kinds = tuple(k.strip() for k in spec.split(",") if k.strip()) if isinstance(spec, str) else tuple(spec)
    bad = [k for k in kinds if k not in UNIT_KINDS]
    if bad or not kinds:
        raise InterpError(f"unknown unit kind {', '.join(map(repr, bad)) or '(none given)'}: choose from {', '.join(UNIT_KINDS)}.")
    return tuple(dict.fromkeys(kinds))


def site_hook(kind: str, layer: int) -> str:
    return f"blocks.{layer}.mlp.{'hook_z0' if kind == 'z0' else 'hook_post'}"


def check_request(model, layers: list[int], cfg: EditConfig) -> None:
    """Every bad choice in one line before any work."""
    parse_units(cfg.units)
    n = model.cfg.n_layers
    for layer in layers:
        if not isinstance(layer, int) or not 0 <= layer < n:
            raise InterpError(f"layer {layer} does not exist: this model has layers 0 to {n - 1}.")
    if "z0" in cfg.units and site_hook("z0", layers[0]) not in model.hook_dict:
        raise InterpError("unit kind z0 needs a CRATE model (blocks.L.mlp.hook_z0); this model has none.")
    if cfg.units_per_layer < 1 or any(not np.isfinite(s) for s in (*cfg.clamp_ladder, *cfg.add_ladder)):
        raise InterpError("--units-per-layer must be at least 1 and every ladder strength finite.")


def compare_edits(model, layers: list[int], train_windows: torch.Tensor, eval_windows: torch.Tensor, out: str | Path,
                  cfg: EditConfig = EditConfig(), sae_dir: str | Path | None = None, readability: str | Path | None = None,
                  log: Callable[[str], None] = print, progress: bool = False) -> dict:
    """Edits of every unit kind at every layer; writes `out` (see the module doc), returns results.json."""
    out = Path(out)
    started = time.perf_counter()
    cfg.units = parse_units(cfg.units)
    check_request(model, layers, cfg)
    model.requires_grad_(False)
    settings = {"model": model.cfg.model_name, "config": {k: v for k, v in asdict(cfg).items() if k not in UNCHECKED},
                "sae_dir": None if sae_dir is None else str(sae_dir), "train_tokens_sha256": windows_sha256(train_windows),
                "eval_tokens_sha256": windows_sha256(eval_windows), "eval_windows": int(len(eval_windows)),
                "context_size": int(eval_windows.shape[1]), **processing_setting(model)}
    saes = {}
    if any(k in SAE_KINDS for k in cfg.units) and sae_dir is not None:
        saes = load_saes(model, sae_dir, layers)  # before settings are written: a bad folder leaves nothing behind
    for layer in layers:  # a missing score file is refused before anything is written
        read_readability(readability, layer)
    check_settings(out, settings)
    rows = {}
    for layer in layers:
        if (layer_dir(out, layer) / DONE).exists():
            rows[layer] = json.loads((layer_dir(out, layer) / DONE).read_text())
            log(f"layer {layer}: finished in an earlier run, kept ({layer_dir(out, layer)})")
    todo = [layer for layer in layers if layer not in rows]
    if todo and any(k in SAE_KINDS for k in cfg.units) and sae_dir is None:
        saes = train_saes(model, todo, train_windows, eval_windows, out, cfg, log, progress)
    for layer in todo:
        t = time.perf_counter()
        rows[layer] = edit_layer(model, layer, train_windows, eval_windows, out, cfg, saes.get(layer), readability, log)
        log(f"layer {layer}: done in {time.perf_counter() - t:.0f} s")
    results = summarize(model.cfg.model_name, [rows[layer] for layer in layers], settings, cfg.n_boot, cfg.seed)
    results["seconds"] = {"this_run": round(time.perf_counter() - started, 1)}
    write_json_atomic(out / "results.json", results)
    write_reports(results, out)
    return results


# --- SAEs ----------------------------------------------------------------------------------------

def load_saes(model, sae_dir: str | Path, layers: list[int]) -> dict:
    found = {}
    for layer in layers:
        hook = site_hook("sae", layer)
        folder = Path(sae_dir) / hook
        if not (folder / "cfg.json").exists():
            raise InterpError(f"no SAE for {hook} in {sae_dir} (expected {folder}/cfg.json, as compare-layers writes).")
        s = load_sae(folder, device=_device(model)).requires_grad_(False)
        check_processing(f"the SAE in {folder}", s.cfg.extra.get("model_from_pretrained_kwargs"), model)
        check_sae_fits(model, hook, s)
        found[layer] = s
    return found


def train_saes(model, layers, train_windows, eval_windows, out: Path, cfg: EditConfig, log, progress) -> dict:
    hooks = [site_hook("sae", layer) for layer in layers]
    dcfg = DepthConfig(site="mlp_post", arch=cfg.arch, k=cfg.k, expansion=cfg.expansion, sae_tokens=cfg.sae_tokens,
                       sae_batch_size=cfg.sae_batch_size, lr=cfg.lr, checkpoint_every=cfg.checkpoint_every, seed=cfg.seed,
                       eval_tokens=min(4096, eval_windows.numel()))
    train = record_split(model, train_windows, hooks, out / "acts", "train", cfg.record_batch_size, progress)
    held = record_split(model, eval_windows, hooks, out / "acts", "heldout", cfg.record_batch_size, progress)
    got, _ = layer_saes.ensure_saes(out / "saes", hooks, train, held, dcfg, model.cfg.model_name, _device(model), 1, log, progress)
    return {layer: got[(h, 0)].requires_grad_(False) for layer, h in zip(layers, hooks)}


# --- one layer -------------------------------------------------------------------------------------

@torch.no_grad()
def site_acts(model, windows: torch.Tensor, hooks: list[str], batch: int, keep_logits: bool) -> tuple[dict, torch.Tensor | None]:
    """{hook: [n, pos, d]} activations, and the clean log-probabilities [n, pos, vocab] if asked."""
    acts, lps = {h: [] for h in hooks}, []
    for i in range(0, len(windows), batch):
        toks = windows[i:i + batch].to(_device(model))
        logits, cache = model.run_with_cache(toks, names_filter=lambda n: n in hooks)
        for h in hooks:
            a = cache[h]
            acts[h].append(a.flatten(-2) if a.ndim == 4 else a)
        if keep_logits:
            lps.append(E.log_probs(logits))
    return {h: torch.cat(v) for h, v in acts.items()}, (torch.cat(lps) if keep_logits else None)


class Kind:
    """One unit kind at one layer: its candidate units' values, directions and the edit objects."""

    def __init__(self, kind: str, layer: int, model, sae, cfg: EditConfig, d_site: int):
        self.kind, self.layer, self.sae, self.hook, self.d = kind, layer, sae, site_hook(kind, layer), d_site
        if kind in SAE_KINDS and sae is None:
            raise InterpError(f"unit kind {kind} at layer {layer} needs an SAE.")
        g = torch.Generator().manual_seed(cfg.seed * 1000 + layer)
        # twice the directions asked for, so that enough fire and do not at >= min_positions eval positions
        self.random = torch.randn(2 * cfg.units_per_layer, d_site, generator=g) if kind == "random" else None
        if self.random is not None:
            self.random = self.random / self.random.norm(dim=1, keepdim=True)

    def values(self, act: torch.Tensor) -> torch.Tensor:  # [..., n_candidates]
        if self.kind in SAE_KINDS:
            return self.sae.encode(act.to(self.sae.W_dec.dtype)).float()
        if self.kind == "random":
            return act @ self.random.to(act.device).T
        return act

    def directions(self) -> torch.Tensor:  # [n_candidates, d_site], unit norm
        if self.kind in SAE_KINDS:
            W = self.sae.W_dec.detach().float().cpu()
            return W / W.norm(dim=1, keepdim=True).clamp(min=1e-12)
        if self.kind == "random":
            return self.random
        return torch.eye(self.d)

    def unit(self, i: int):
        if self.kind in SAE_KINDS:
            return Latent(self.hook, i)  # its SAE is spliced around the kind's passes
        if self.kind == "random":
            return Direction(self.hook, self.random[i])
        return Neuron(self.layer, i, site="hook_z0" if self.kind == "z0" else "hook_post")

    def add_scale(self, i: int) -> float:
        """Add(unit, a) moves the site by a * this norm."""
        return float(self.sae.W_dec[i].norm()) if self.kind in SAE_KINDS else 1.0

    def context(self, model):
        if self.kind in SAE_KINDS:
            return spliced(model, {self.hook: self.sae}, error_term=self.kind == "sae")
        return ExitStack()


@torch.no_grad()
def edited_lp(model, windows: torch.Tensor, batch: int, make: Callable[[slice], list]) -> torch.Tensor:
    """The straightforward path: one full forward per edit and batch of windows."""
    out = []
    for i in range(0, len(windows), batch):
        sl = slice(i, i + batch)
        toks = windows[sl].to(_device(model))
        with apply(model, make(sl)):
            out.append(E.log_probs(model(toks)))
    return torch.cat(out)


@torch.no_grad()
def prefix(model, windows: torch.Tensor, layer: int, batch: int) -> torch.Tensor:
    """The residual stream entering block `layer` [n, pos, d_model]: no edit at the layer changes it."""
    return torch.cat([model(windows[i:i + batch].to(_device(model)), stop_at_layer=layer) for i in range(0, len(windows), batch)])


@torch.no_grad()
def edited_lps(model, windows: torch.Tensor, cfg: EditConfig, makes: list[Callable[[slice], list]],
               start: tuple[int, torch.Tensor] | None) -> list[torch.Tensor]:
    """Log-probabilities under each edit of `makes`. Fast path (`start` = (layer, prefix)): every pass
    starts at the layer from the shared prefix, and several edits run stacked in one forward."""
    if start is None:
        return [edited_lp(model, windows, cfg.batch_size, mk) for mk in makes]
    layer, resid = start
    b = max(1, min(len(windows), cfg.batch_size))
    per = max(1, cfg.batch_size // b)  # edits stacked per forward
    out = [[] for _ in makes]
    for i in range(0, len(windows), b):
        sl = slice(i, i + b)
        for g0 in range(0, len(makes), per):
            group = list(range(g0, min(len(makes), g0 + per)))
            with apply_stacked(model, [makes[j](sl) for j in group]):
                lp = E.log_probs(model(resid[sl].repeat(len(group), 1, 1), start_at_layer=layer))
            for j, block in zip(group, lp.chunk(len(group))):
                out[j].append(block)
    return [torch.cat(o) for o in out]


def edit_layer(model, layer: int, train_windows, eval_windows, out: Path, cfg: EditConfig, sae, readability, log) -> dict:
    folder = layer_dir(out, layer)
    folder.mkdir(parents=True, exist_ok=True)
    hooks = sorted({site_hook(k, layer) for k in cfg.units})
    stats, _ = site_acts(model, train_windows[:cfg.stat_windows], hooks, cfg.batch_size, False)
    ev, clean = site_acts(model, eval_windows, hooks, cfg.batch_size, True)
    toks = eval_windows.to(_device(model))
    W_U = effective_unembed(model)
    W_out = model.W_out[layer].detach().float().cpu()  # [d_mlp, d_model]: the site to the residual stream
    scores = read_readability(readability, layer)
    row = {"layer": layer, "kinds": {}}
    for kind in cfg.units:
        path = folder / f"{kind}.json"
        if path.exists():
            row["kinds"][kind] = json.loads(path.read_text())
            continue
        t = time.perf_counter()
        res = edit_kind(model, Kind(kind, layer, model, sae, cfg, ev[site_hook(kind, layer)].shape[-1]), stats, ev, clean,
                        toks, W_U, W_out, cfg, scores.get(kind))
        res["seconds"] = round(time.perf_counter() - t, 1)
        write_json_atomic(path, res)
        row["kinds"][kind] = res
        s = res["summary"]
        log(f"layer {layer} {kind}: {res['n_units']} units, add-ladder effect at KL 0.2 "
            f"{_fmt(s['add']['effect_at_kl_0.2'])}, clamp {_fmt(s['clamp']['effect_at_kl_0.2'])}, "
            f"zero-edit max |dlogp| {res['zero_edit']['max_abs_logprob_diff']:.2e} ({res['seconds']:.0f} s)")
    write_json_atomic(folder / DONE, row)
    return row


def edit_kind(model, kind: Kind, stats: dict, ev: dict, clean: torch.Tensor, toks: torch.Tensor, W_U, W_out,
              cfg: EditConfig, readability: dict | None) -> dict:
    hook = kind.hook
    v_train = kind.values(stats[hook]).flatten(0, -2)  # [tokens, n_candidates]
    v_eval = kind.values(ev[hook])  # [n, pos, n_candidates]
    density = (v_train > 0).double().mean(0).cpu().numpy()
    train_max = v_train.max(0).values.cpu().numpy()
    fires = (v_eval > 0).flatten(0, 1).sum(0).cpu().numpy()
    n_pos = v_eval.shape[0] * v_eval.shape[1]
    eligible = (fires >= cfg.min_positions) & (n_pos - fires >= cfg.min_positions) & (train_max > 0)
    if readability is not None:  # only units compare-layers scored can be correlated with their score
        eligible &= np.isin(np.arange(len(eligible)), list(readability))
    chosen = [i for i in cfg.always if kind.kind != "random" and 0 <= i < len(eligible)]
    eligible[chosen] = False
    ids = sorted(chosen + E.pick_across_densities(density, eligible, cfg.units_per_layer - len(chosen)))
    median_norm = float(stats[hook].flatten(0, -2).norm(dim=-1).median())
    dirs = kind.directions()
    promoted = (dirs[ids] @ W_out @ W_U).topk(cfg.promoted_k, dim=1).indices  # [units, k]
    rng = np.random.default_rng(cfg.seed + 7919 * kind.layer)
    B = cfg.batch_size
    start = (kind.layer, prefix(model, toks, kind.layer, B)) if cfg.fast else None
    with kind.context(model):
        zero, = edited_lps(model, toks, cfg, [lambda sl: [Add(kind.unit(ids[0] if ids else 0), 0.0)]], start)
        units = []
        for j, i in enumerate(ids):
            u = kind.unit(i)
            fire = v_eval[..., i] > 0
            rand = torch.from_numpy(rng.random(fire.shape) < float(fire.double().mean())).to(fire.device)
            target = ~fire
            makes = [lambda sl: [Ablate(u, positions=fire[sl])], lambda sl: [Ablate(u, positions=rand[sl])]]
            makes += [lambda sl, c=c: [Clamp(u, c * float(train_max[i]), positions=target[sl])] for c in cfg.clamp_ladder]
            makes += [lambda sl, a=a: [Add(u, a * median_norm / kind.add_scale(i), positions=target[sl])] for a in cfg.add_ladder]
            lps = edited_lps(model, toks, cfg, makes, start)
            nec = E.necessity(clean, lps[0], lps[1], toks, fire, rand)
            p = promoted[j].to(clean.device)
            first = E.edit_point(clean, zero, toks, target, p) | {"strength": 0.0}
            ladders = {"clamp": [first], "add": [first]}
            for c, lp in zip(cfg.clamp_ladder, lps[2:2 + len(cfg.clamp_ladder)]):
                ladders["clamp"].append(E.edit_point(clean, lp, toks, target, p) | {"strength": c})
            for a, lp in zip(cfg.add_ladder, lps[2 + len(cfg.clamp_ladder):]):
                ladders["add"].append(E.edit_point(clean, lp, toks, target, p) | {"strength": a})
            units.append({"unit": int(i), "density": float(density[i]), "train_max": float(train_max[i]),
                          "promoted": promoted[j].tolist(), **nec, "ladders": ladders,
                          "curves": {name: E.curve_summary(pts) for name, pts in ladders.items()},
                          "readability": None if readability is None else readability.get(int(i))})
    diff = (zero - clean).abs()
    zero_edit = {"max_abs_logprob_diff": float(diff.max()), "mean_kl": float(E.full_kl(clean, zero).double().mean()),
                 "ce_change": float((E.token_ce(zero, toks) - E.token_ce(clean, toks)).double().mean()),
                 "exact": bool(float(diff.max()) < 1e-4)}
    return {"kind": kind.kind, "hook": hook, "n_units": len(units), "n_candidates": int(len(density)),
            "n_eligible": int(eligible.sum()), "median_norm": median_norm, "n_eval_positions": int(n_pos),
            "zero_edit": zero_edit, "units": units, "summary": summarize_kind(units, cfg)}


def summarize_kind(units: list[dict], cfg: EditConfig) -> dict:
    boot = lambda vals: E.bootstrap_mean(vals, cfg.n_boot, cfg.seed)  # noqa: E731
    out = {"necessity": boot([u["necessity"] for u in units])}
    for ladder in ("clamp", "add"):
        s = {key: boot([u["curves"][ladder][key] for u in units]) for key in CURVE_KEYS}
        top = [u["ladders"][ladder][-1] for u in units]  # the ladder's strongest edit
        for key in ("sufficiency", "collateral_kl", "ce_change"):
            s[f"strongest_{key}"] = boot([p[key] for p in top])
        out[ladder] = s
    if any(u["readability"] is not None for u in units):
        out["spearman_readability_vs_add_effect_at_kl_0.2"] = E.spearman(
            [u["readability"] for u in units], [u["curves"]["add"]["effect_at_kl_0.2"] for u in units], cfg.n_boot, cfg.seed)
    return out


def read_readability(folder: str | Path | None, layer: int) -> dict:
    """{kind: {unit id: top-and-random score}} from a compare-layers run's layers/L<nn>/units.json."""
    if folder is None:
        return {}
    path = layer_dir(Path(folder), layer) / "units.json"
    if not path.exists():
        raise InterpError(f"no compare-layers scores for layer {layer} in {folder} (expected {path}).")
    units = json.loads(path.read_text())
    # compare-layers scores CRATE's code z (hook_post), not z0: a z0 entry takes the score of the code
    # entry of the same dictionary atom, which its second ISTA step turns into
    basis = {"neurons": "neurons", "z0": "neurons", "sae": "sae", "sae-noerror": "sae", "random": None}
    return {kind: {u["unit"]: u.get("top_random") for u in units.get(b, []) if u.get("seed", 0) == 0 and u.get("side", "+") == "+"}
            for kind, b in basis.items() if b is not None and b in units}


def _device(model) -> torch.device:
    return next(model.parameters()).device


def _fmt(s: dict) -> str:
    return "n/a" if s.get("mean") is None else f"{s['mean']:.3f} [{s['lo']:.3f}, {s['hi']:.3f}]"

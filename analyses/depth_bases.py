"""One layer of the depth comparison: every basis built, and scored from ONE pass per split.

    dicts, fits = layer_dictionaries(model, hook, ["neurons", "sae", "random", "pca"], saes, train, cfg)
    rows = score_bases(dicts, train, held, cfg, ...)   # {basis: the row of the report}

Bases are analyses/bases.py's; the sign rule is stated there (SIGN_RULE). Seeded bases (`sae`,
`random`, `rotated`, `sae-random-model`) get one dictionary per seed index, named
"<hook>/<basis>/s<i>"; `neurons`, `pca` and `ica` have one, named "<hook>/<basis>". All the
dictionaries of one model go through score_many together: one pass over each split for all of
them (the `sae-random-model` null reads another model's recording, so it gets its own pass).

A basis's row pools its seeds' units: for each score kind (analyses/scoring/kinds.py) the mean with
undefined scores at chance and with them left out, each with a 95% bootstrap CI over units, and
the count of undefined ones; the per-seed means; and every unit's scores and firing density, which
the trend, density and lexical analyses read."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from analyses.bases import (
    fit_ica,
    fit_pca,
    fit_sample,
    nonnegative,
    projection_basis,
    random_directions,
    rotation_columns,
    signed_neurons,
)
from analyses.dictionary import neuron_dictionary, sae_dictionary
from analyses.scoring import score_many
from analyses.scoring.agreement import cross_summary
from analyses.scoring.kinds import KINDS, kind_values, summarize_kinds
from analyses.scoring.stats import derived_seed
from interp.errors import InterpError
from interp.files import write_json_atomic

SEEDED = ("sae", "random", "rotated", "sae-random-model")


def dict_name(hook: str, basis: str, i: int | None = None) -> str:
    return f"{hook}/{basis}" if i is None else f"{hook}/{basis}/s{i}"


def layer_dictionaries(model, hook: str, bases: list[str], saes: dict, train_cache, cfg, n_seeds: int,
                       random_saes: dict | None = None) -> tuple[dict, dict, dict]:
    """({name: Dictionary} of the real model, {name: Dictionary} of the random model, fit info).
    saes / random_saes: {seed index: SAE} of this hook."""
    d = train_cache.hooks[hook]
    F = cfg.features_per_layer
    name = model.cfg.model_name
    real, rand, fits = {}, {}, {}
    for basis in bases:
        if basis == "neurons":
            real[dict_name(hook, basis)] = signed_neurons(neuron_dictionary(model, hook))
        elif basis == "sae":
            for i in range(n_seeds):
                real[dict_name(hook, basis, i)] = nonnegative(sae_dictionary(saes[i]))
        elif basis in ("random", "rotated"):
            n = F if basis == "random" else min(F, d)
            make = random_directions if basis == "random" else rotation_columns
            for i in range(n_seeds):
                W = make(d, n, derived_seed(cfg.seed + i, basis, hook))
                real[dict_name(hook, basis, i)] = projection_basis(basis, W, hook, name)
        elif basis in ("pca", "ica"):
            t0 = time.perf_counter()
            x = fit_sample(train_cache, hook, cfg.fit_tokens, derived_seed(cfg.seed, "fit", hook))
            if basis == "pca":
                mean, comps = fit_pca(x, cfg.seed)
            else:
                mean, comps = fit_ica(x, min(cfg.ica_components, d), cfg.seed)
            real[dict_name(hook, basis)] = projection_basis(basis, torch.from_numpy(comps.T.copy()), hook, name,
                                                            mean=torch.from_numpy(mean))
            fits[basis] = {"n_fit_tokens": int(len(x)), "n_components": int(len(comps)),
                           "seconds": round(time.perf_counter() - t0, 1)}
        elif basis == "sae-random-model":
            if random_saes is None:
                raise InterpError("the sae-random-model basis needs SAEs trained on the random model.")
            for i in range(len(random_saes)):
                rand[dict_name(hook, basis, i)] = nonnegative(sae_dictionary(random_saes[i]))
        else:
            raise InterpError(f"unknown basis {basis!r}.")
    return real, rand, fits


def score_bases(dicts: dict, train_cache, held_cache, hook: str, cfg, folder: Path, tokenizer=None,
                explainer=None, simulator=None, device=None, cross=None) -> dict:
    """Score every dictionary of one model from one pass per split; write each to folder/<basis>[/s<i>];
    return {name: ScoreResult}. `cross`: (explainer, simulator) of the cross-check, which scores
    cfg.cross_check_units of each dictionary's units again (analyses.scoring.score_many)."""
    if not dicts:
        return {}
    # every scored unit's held-out activations are kept (heldout_acts.safetensors): the lexical ceiling reads them
    scfg = replace(cfg.scoring, n_features=cfg.features_per_layer, seed=cfg.seed, keep_heldout_acts=True)
    wpb = cfg.windows_per_batch
    results = score_many({n: (d, None) for n, d in dicts.items()}, train_cache.iter_windows([hook], wpb),
                         held_cache.iter_windows([hook], wpb), scfg, tokenizer, explainer, simulator, device,
                         cross=None if cross is None else (*cross, cfg.cross_check_units))
    for n, r in results.items():
        r.save(Path(folder) / n[len(hook) + 1:])
    return results


def basis_rows(results: dict, hook: str, bases: list[str], n_boot: int, seed: int) -> dict:
    """{basis: row}: the seeds' units pooled (see the module doc)."""
    rows = {}
    for basis in bases:
        names = [n for n in results if n == dict_name(hook, basis) or n.startswith(dict_name(hook, basis) + "/s")]
        if not names:
            continue
        scores, units, per_seed = [], [], []
        n_total = n_dead = n_live = 0
        for n in sorted(names):
            r = results[n]
            i = int(n.rsplit("/s", 1)[1]) if basis in SEEDED else 0
            n_units = r.summary["n_total"] // 2 if basis not in ("sae", "sae-random-model") else r.summary["n_total"]
            n_stretches = max(1, r.meta["n_train_tokens"] // r.meta["config"]["example_len"])
            crossed = {} if r.cross is None else {c.feature: c for c in r.cross.scores}
            for s in r.scores:
                v = kind_values(s)
                side = "+" if basis in ("sae", "sae-random-model") or s.feature < n_units else "-"
                units.append({"seed": i, "feature": s.feature, "unit": s.feature if side == "+" else s.feature - n_units, "side": side,
                              "density": s.train_firing_examples / n_stretches, **v})
                if s.feature in crossed:  # the cross-check's scores of the same unit on the same examples
                    c = crossed[s.feature]
                    units[-1]["cross"] = {**kind_values(c), "explanation": c.explanation.text, "tokens_explanation": s.explanation.text}
            scores += r.scores
            per_seed.append({"seed_index": i, "n": len(r.scores),
                             **{k: r.summary["kinds"][k]["mean_undefined_at_chance"] for k in KINDS}})
            n_total, n_dead, n_live = n_total + r.summary["n_total"], n_dead + r.summary["n_dead"], n_live + r.summary["n_live"]
        cross = cross_summary(units, n_boot, seed)
        if cross is not None:
            secs = [results[n].cross.meta["seconds"] for n in names if results[n].cross is not None]
            cross["seconds_per_unit"] = round(sum(x["total"] for x in secs) / max(1, sum(len(results[n].cross.scores) for n in names
                                                                                       if results[n].cross is not None)), 2)
            cross["scorer"] = next(results[n].cross.meta for n in names if results[n].cross is not None)["simulator"]
        rows[basis] = {"kinds": summarize_kinds(scores, n_boot, seed), "per_seed": per_seed, "n_seeds": len(names),
                       **({"cross_check": cross} if cross is not None else {}),
                       "n_scored": len(scores), "n_total": n_total, "n_dead": n_dead, "n_live": n_live,
                       "n_sides": {"+": sum(u["side"] == "+" for u in units), "-": sum(u["side"] == "-" for u in units)},
                       "units": units}
    return rows


def calibrated(rows: dict, null: str = "random", kind: str = "top_random", n_boot: int = 1000, seed: int = 0) -> dict:
    """{basis: {mean, lo, hi}}: the basis's mean score minus the null's of the same layer (undefined
    at chance), with a percentile-bootstrap CI that resamples both groups' units."""
    if null not in rows:
        return {}
    fill = 0.5 if kind == "detection" else 0.0
    b = np.array([fill if u[kind] is None else u[kind] for u in rows[null]["units"]])
    out = {}
    rng = np.random.default_rng(seed)
    for basis, row in rows.items():
        a = np.array([fill if u[kind] is None else u[kind] for u in row["units"]])
        if len(a) == 0 or len(b) == 0:
            continue
        d = a[rng.integers(0, len(a), (n_boot, len(a)))].mean(1) - b[rng.integers(0, len(b), (n_boot, len(b)))].mean(1)
        lo, hi = np.quantile(d, [0.025, 0.975])
        out[basis] = {"mean": float(a.mean() - b.mean()), "lo": float(lo), "hi": float(hi)}
    return out


def write_units(folder: Path, rows: dict) -> None:
    write_json_atomic(Path(folder) / "units.json", {b: r["units"] for b, r in rows.items()})

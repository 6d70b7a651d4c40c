"""Two calibrations of the depth comparison, computed per layer from the files a scored layer keeps.

    lex = layer_lexical(folder, rows, heldout_windows)   # adds unit["lexical"]; {basis: ceiling summary}
    den = layer_density(rows)                            # {reference: density_matched(...)}

- **The lexical ceiling** (analyses/lexical.py): for every scored unit, the share of its held-out
  variance that token and (previous token, token) identity explain at best, fit on the held-out
  tokens themselves. It is read from `<basis>[/s<i>]/heldout_acts.safetensors` (every scored unit's
  activation on every held-out token, BOS left out as in scoring), so a layer that was scored can
  get it later without a model. A token explainer cannot read more than this at that depth.
- **The density-matched comparison** (analyses/density.py): units binned by their firing density
  on the train split (the share of train stretches where they fire, the same for every basis), and
  each basis compared with a reference basis (`neurons`, and the `random` null) within bins only,
  next to the raw difference of means. Scores are top-and-random correlations, undefined at 0.

Across layers, `summary_text` and the two tables give the report its sentences."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from analyses.density import density_matched
from analyses.lexical import ceiling_of_file, summarize_ceiling
from analyses.scoring.kinds import CHANCE
from analyses.scoring.results import HELDOUT_FILE
from analyses.trend import depth_trend
from interp.errors import InterpError

LEX_KEYS = ("token", "token_loo", "token_adj", "bigram", "bigram_loo", "bigram_adj")
REFERENCES = ("neurons", "random")
CEILING_EDGES = np.linspace(0.0, 1.0, 6)  # bins of the in-sample bigram ceiling, 0.2 wide
SEEDED_FOLDERS = ("sae", "random", "rotated", "sae-random-model")


def dictionary_folder(folder: Path, basis: str, seed: int) -> Path:
    return Path(folder) / basis / f"s{seed}" if basis in SEEDED_FOLDERS else Path(folder) / basis


def layer_lexical(folder: Path, rows: dict, heldout_windows, n_boot: int = 1000, seed: int = 0) -> dict:
    """Every unit of `rows` (analyses.depth_bases.basis_rows) gets unit["lexical"] {token, token_loo,
    ..., bigram_adj} (None where the unit is constant on the held-out tokens); returns {basis: the
    summarize_ceiling of its units, seeds pooled}."""
    W = np.asarray(heldout_windows)
    valid = np.ones(W.shape, dtype=bool)
    valid[:, 0] = False  # BOS: scoring leaves it out, and so does the ceiling (it stays the next token's "previous")
    out = {}
    for basis, row in rows.items():
        pooled = {k: [] for k in LEX_KEYS}
        counts = None
        for s in sorted({u["seed"] for u in row["units"]}):
            path = dictionary_folder(folder, basis, s) / HELDOUT_FILE
            if not path.exists():
                raise InterpError(f"{path} is missing: the lexical ceiling needs the scored units' held-out activations; "
                                  "delete the layer's done.json to score it again.")
            c = ceiling_of_file(path, W, valid=valid)
            at = {int(f): j for j, f in enumerate(c["features"].tolist())}
            for u in row["units"]:
                if u["seed"] != s:
                    continue
                j = at[u["feature"]]
                u["lexical"] = {k: (float(c[k][j]) if np.isfinite(c[k][j]) else None) for k in LEX_KEYS}
                for k in LEX_KEYS:
                    pooled[k].append(c[k][j])
            counts = counts or {k: c[k] for k in c if k.startswith("n_") or k == "min_count"}
        out[basis] = summarize_ceiling({**{k: np.asarray(v, dtype=np.float64) for k, v in pooled.items()}, **counts},
                                       n_boot, seed)
    return out


def layer_density(rows: dict, kind: str = "top_random", n_boot: int = 1000, seed: int = 0) -> dict:
    """{reference: density_matched(...) plus, per basis, the raw difference of means} for each of
    REFERENCES present in `rows`."""
    data = {b: (np.array([u["density"] for u in r["units"]]),
                np.array([CHANCE[kind] if u[kind] is None else u[kind] for u in r["units"]])) for b, r in rows.items()}
    out = {}
    for ref in REFERENCES:
        if ref not in data or len(data) < 2:
            continue
        res = density_matched(data, reference=ref, n_boot=n_boot, seed=seed)
        for b, d in res["differences"].items():
            d["raw_difference"] = float(data[b][1].mean() - data[ref][1].mean())
        res["kind"] = kind
        out[ref] = res
    return out


def ceiling_matched(rows: dict, kind: str = "top_random", n_boot: int = 1000, seed: int = 0) -> dict:
    """As layer_density, with units binned by their in-sample bigram ceiling (CEILING_EDGES) instead:
    bases compared among units a token explainer could read equally well. Units constant on the
    held-out text (no ceiling) and units of ceiling 0 are left out and counted."""
    data = {}
    for b, r in rows.items():
        us = [u for u in r["units"] if (u.get("lexical") or {}).get("bigram") is not None]
        data[b] = (np.array([u["lexical"]["bigram"] for u in us]),
                   np.array([CHANCE[kind] if u[kind] is None else u[kind] for u in us]))
    out = {}
    for ref in REFERENCES:
        if ref not in data or len(data) < 2:
            continue
        res = density_matched(data, reference=ref, edges=CEILING_EDGES, n_boot=n_boot, seed=seed)
        for b, d in res["differences"].items():
            d["raw_difference"] = float(data[b][1].mean() - data[ref][1].mean())
        res["kind"] = kind
        out[ref] = res
    return out


def ceiling_trends(rows: list[dict], bases: list[str], n_boot: int = 1000, seed: int = 0, key: str = "bigram") -> dict:
    """analyses.trend.depth_trend of each basis's lexical ceiling (`key`, undefined units left out),
    raw and minus the random null of the same layer (both resampled)."""
    out = {"raw": {}, "minus_random": {}}
    if len(rows) < 2 or not all(r.get("lexical") for r in rows):
        return out

    def by_seed(r, b):
        us = r["bases"][b]["units"]
        return [np.array([u["lexical"][key] for u in us if u["seed"] == i and u["lexical"][key] is not None])
                for i in sorted({u["seed"] for u in us})]

    for b in bases:
        out["raw"][b] = depth_trend({r["layer"]: by_seed(r, b) for r in rows}, n_boot, seed)
        if "random" in bases and b != "random":  # the null resampled too (analyses.trend)
            out["minus_random"][b] = depth_trend({r["layer"]: by_seed(r, b) for r in rows}, n_boot, seed,
                                                 null={r["layer"]: by_seed(r, "random") for r in rows})
    return out


# --- across layers ------------------------------------------------------------------------------

def _ci(m: dict, sign: bool = False) -> str:
    if m.get("mean") is None:
        return "n/a"
    f = "{:+.3f}" if sign else "{:.3f}"
    lo, hi = m["ci95"]
    return f"{f.format(m['mean'])} [{f.format(lo)}, {f.format(hi)}]"


def lexical_table(results: dict, names: dict) -> tuple[list[str], list[list[str]]]:
    head = ["layer", "basis", "bigram R², in-sample [95% CI]", "bigram R², leave-one-out", "bigram R², ε²",
            "token R², in-sample", "undefined / n", "top-and-random corr. (for reference)"]
    rows = []
    for r in results["rows"]:
        for b, s in (r.get("lexical") or {}).items():
            k = r["bases"][b]["kinds"]["top_random"]
            rows.append([str(r["layer"]), names.get(b, b), _ci(s["bigram"]), _ci(s["bigram_loo"]), _ci(s["bigram_adj"]),
                         _ci(s["token"]), f"{s['bigram']['n_undefined']} / {s['bigram']['n'] + s['bigram']['n_undefined']}",
                         f"{k['mean_undefined_at_chance']:.3f}"])
    return head, rows


def density_table(results: dict, names: dict, key: str = "density") -> tuple[list[str], list[list[str]]]:
    what = "density" if key == "density" else "lexical-ceiling"
    head = ["layer", "basis", "reference", "raw difference of means", f"within {what} bins [95% CI]",
            "bins shared", "units in shared bins (basis / reference)"]
    rows = []
    for r in results["rows"]:
        for ref, res in (r.get(key) or {}).items():
            for b, d in res["differences"].items():
                if b == ref or (ref == "neurons" and b == "random"):
                    continue
                rows.append([str(r["layer"]), names.get(b, b), names.get(ref, ref), f"{d['raw_difference']:+.3f}",
                             _ci(d, True), str(d["n_bins"]),
                             f"{d['n_units']} / {d['n_reference_units']} of {len(r['bases'][b]['units'])} / "
                             f"{len(r['bases'][ref]['units'])}"])
    return head, rows


def ceiling_table(results: dict, names: dict) -> tuple[list[str], list[list[str]]]:
    return density_table(results, names, "ceiling_matched")


def summary_text(results: dict, names: dict) -> tuple[list[str], list[str], list[str]]:
    """(lexical, ceiling-matched and density sentences) for the report; empty lists when the rows lack them."""
    rows = results["rows"]
    lex, ceil, den = [], [], []
    if all(r.get("lexical") for r in rows):
        first = rows[0]["lexical"][next(iter(rows[0]["lexical"]))]
        lex.append("Lexical ceiling: per unit, the R² of the best lookup table from token identity, and from (previous "
                   "token, token) identity with back-off to the token for bigrams seen fewer than "
                   f"{first['min_count']} times, fit on the {first['n_tokens']:,} held-out tokens themselves "
                   f"({first['n_token_groups']:,} tokens, {first['n_bigram_groups']:,} bigrams). The in-sample value is the "
                   "ceiling at best (optimistic for rare groups); leave-one-out and ε² are honest estimates. Mean over "
                   "units with a 95% bootstrap CI; constant units are undefined and left out.")
        for b in results["bases"]:
            vals = [r["lexical"][b]["bigram"]["mean"] for r in rows if b in r["lexical"]]
            loo = [r["lexical"][b]["bigram_loo"]["mean"] for r in rows if b in r["lexical"]]
            lex.append(f"{names.get(b, b)}: bigram ceiling by layer "
                       + ", ".join("n/a" if v is None else f"{v:.3f}" for v in vals) + " (leave-one-out "
                       + ", ".join("n/a" if v is None else f"{v:.3f}" for v in loo) + ").")
        for which, label in (("raw", "bigram ceiling (in-sample)"), ("minus_random", "bigram ceiling minus random directions'")):
            for b, t in (results.get("ceiling_trend") or {}).get(which, {}).items():
                lex.append(f"Trend with depth, {names.get(b, b)} {label}: " + " ".join(t["text"]))
        ceil.append("Ceiling-matched: units binned by their in-sample bigram ceiling (bins 0.2 "
                   "wide), and a basis's top-and-random correlation compared with the reference's among units a token "
                   "explainer could read equally well, pooled over shared bins as in the density-matched comparison.")
    if all(r.get("density") for r in rows):
        den.append("Density-matched: units binned by firing density on the train split (log bins, one per decade); "
                   "within each bin a basis's mean top-and-random correlation (undefined at 0) minus the reference's, "
                   "pooled over the bins both have with weights n_b n_r / (n_b + n_r); CI from a bootstrap within bins.")
        for ref in REFERENCES:
            for b in results["bases"]:
                if b == ref or (ref == "neurons" and b == "random"):
                    continue
                cells = [r["density"].get(ref, {}).get("differences", {}).get(b) for r in rows]
                if not any(cells):
                    continue
                den.append(f"{names.get(b, b)} − {names.get(ref, ref)} within density bins, by layer: "
                           + ", ".join("n/a" if c is None or c["mean"] is None else f"{c['mean']:+.3f}" for c in cells)
                           + " (raw: " + ", ".join("n/a" if c is None else f"{c['raw_difference']:+.3f}" for c in cells) + ").")
        for ref in REFERENCES:
            for b in results["bases"]:
                cells = [(r.get("ceiling_matched") or {}).get(ref, {}).get("differences", {}).get(b) for r in rows]
                if b == ref or (ref == "neurons" and b == "random") or not any(cells):
                    continue
                ceil.append(f"{names.get(b, b)} − {names.get(ref, ref)} within ceiling bins, by layer: "
                            + ", ".join("n/a" if c is None or c["mean"] is None else f"{c['mean']:+.3f}" for c in cells)
                            + " (raw: " + ", ".join("n/a" if c is None else f"{c['raw_difference']:+.3f}" for c in cells) + ").")
    return lex, ceil, den

"""The layer-depth comparison across layers: results.json, report.md (tables that state their sample
sizes and undefined counts) and report.html (the same, with plotly figures; plotly's JavaScript is
embedded, so it opens offline).

The headline: for every basis (neurons, SAE features and the nulls of analyses/bases.py), its mean
score per layer with a 95% CI, and the same minus the `random` null of that layer (the calibrated
quantity), for each of the four scores of analyses/scoring/kinds.py. The trend with depth comes
from analyses.trend when it is there (a CI over layers, units and seeds, and a test of constant vs
line vs step); otherwise the report gives only per-layer means and says so."""

from __future__ import annotations

import html
import math
from pathlib import Path

import numpy as np

from analyses.bases import SIGN_RULE
from analyses.depth_calibration import (
    ceiling_matched,
    ceiling_table,
    ceiling_trends,
    density_table,
    lexical_table,
    summary_text,
)
from analyses.depth_cross_check import cross_check, cross_table, cross_text
from analyses.scoring.kinds import CHANCE, KIND_NAMES, KINDS
from analyses.trend import depth_trend
from interp.files import write_text_atomic

BASIS_NAMES = {"neurons": "neurons", "sae": "SAE features", "random": "random directions", "rotated": "rotated neurons",
               "pca": "PCA", "ica": "ICA", "sae-random-model": "SAE on a random model"}
COLORS = {"neurons": "#1f77b4", "sae": "#d62728", "random": "#7f7f7f", "rotated": "#bcbd22", "pca": "#2ca02c",
          "ica": "#9467bd", "sae-random-model": "#ff7f0e"}

# the calibrations of analyses/depth_calibration.py: (results key of their sentences, heading, table)
EXTRAS = (("lexical_text", "Lexical ceiling: what token and bigram identity can explain at each depth", lexical_table),
          ("ceiling_text", "Ceiling-matched comparison", ceiling_table),
          ("density_text", "Density-matched comparison", density_table))


def write_reports(results: dict, out: str | Path) -> tuple[Path, Path]:
    out = Path(out)
    md, page = out / "report.md", out / "report.html"
    write_text_atomic(md, markdown(results))  # each is whole or as it was: a full disk is one line
    write_text_atomic(page, html_page(results))
    return md, page


# --- across layers -------------------------------------------------------------------------

def summarize(model_name: str, rows: list[dict], settings: dict, cfg, training: dict, seconds: dict) -> dict:
    """results.json (`cfg` a DepthConfig): per-layer rows and the sample sizes."""
    layers = [r["layer"] for r in rows]
    bases = [b for b in cfg.bases if all(b in r["bases"] for r in rows)]
    sizes = sorted({p["n"] for r in rows for b in bases for p in r["bases"][b]["per_seed"]})  # per dictionary
    heldout = {r["text"]["heldout_tokens_sha256"] for r in rows}
    missed = [{"layer": r["layer"], "seed_index": q["training"]["seed_index"], "ev": q["training"]["ev"]}
              for r in rows for q in r["sae_quality"] + r.get("random_model_sae_quality", []) if not q["training"]["reached"]]
    results = {
        "trend": trends(rows, bases, cfg.scoring.n_boot, cfg.seed),
        "sae_training": training, "model": model_name, "site": cfg.site, "layers": layers, "bases": bases, "rows": rows,
        "sample_sizes": {"features_per_layer_asked": cfg.features_per_layer, "scored_per_layer_and_basis": sizes,
                         "equal": len(sizes) == 1, "n_boot": cfg.scoring.n_boot, "seeds": cfg.seeds},
        "sign_rule": SIGN_RULE, "target_missed": missed,
        "same_heldout_text": len(heldout) == 1, "settings": settings, "seconds": seconds,
    }
    for r in rows:  # from the units' ceilings, so a finished run gets them when it is summarised again
        if r.get("lexical"):
            r["ceiling_matched"] = ceiling_matched(r["bases"], "top_random", cfg.scoring.n_boot, cfg.seed)
    results["ceiling_trend"] = ceiling_trends(rows, bases, cfg.scoring.n_boot, cfg.seed)
    results["cross_check"] = cross_check(rows, cfg.scoring.n_boot, cfg.seed)
    results["lexical_text"], results["ceiling_text"], results["density_text"] = summary_text(results, BASIS_NAMES)
    return results


def seed_scores(row: dict, basis: str, kind: str) -> list[np.ndarray]:
    """One array of unit scores per seed (undefined at chance) of a basis at one layer."""
    units = row["bases"][basis]["units"]
    seeds = sorted({u["seed"] for u in units})
    return [np.array([CHANCE[kind] if u[kind] is None else u[kind] for u in units if u["seed"] == i]) for i in seeds]


def trends(rows: list[dict], bases: list[str], n_boot: int, seed: int) -> dict:
    """analyses.trend.depth_trend of every basis and score kind, raw and minus random.

    Minus random: the basis's layer mean minus the random null's (each the mean over its seeds), with
    both resampled (seeds, then units) in every bootstrap draw, so the per-layer CIs and the slope's
    interval include the null's own sampling error as well as the basis's."""
    out = {"raw": {}, "minus_random": {}}
    if len(rows) < 2:
        return out
    for basis in bases:
        out["raw"][basis], out["minus_random"][basis] = {}, {}
        for kind in KINDS:
            by_layer = {r["layer"]: seed_scores(r, basis, kind) for r in rows}
            out["raw"][basis][kind] = depth_trend(by_layer, n_boot, seed)
            if "random" in bases and basis != "random":
                null = {r["layer"]: seed_scores(r, "random", kind) for r in rows}
                out["minus_random"][basis][kind] = depth_trend(by_layer, n_boot, seed, null=null)
    return out


def diff_ci(a, b, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05) -> tuple[float, float, float]:
    """mean(b) - mean(a) and its percentile-bootstrap CI, resampling each group on its own."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) == 0 or len(b) == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    d = b[rng.integers(0, len(b), (n_boot, len(b)))].mean(1) - a[rng.integers(0, len(a), (n_boot, len(a)))].mean(1)
    lo, hi = np.quantile(d, [alpha / 2, 1 - alpha / 2])
    return float(b.mean() - a.mean()), float(lo), float(hi)


# --- words and tables -----------------------------------------------------------------------

def _num(x, digits: int = 3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _ci(mean, lo, hi, sign: bool = False) -> str:
    if sign and mean is not None and not math.isnan(mean):
        return f"{mean:+.3f} [{lo:+.3f}, {hi:+.3f}]"
    return f"{_num(mean)} [{_num(lo)}, {_num(hi)}]"


def score_table(results: dict, kind: str = "top_random") -> tuple[list[str], list[list[str]]]:
    """One row per layer and basis: the kind's mean (undefined at chance) [CI], minus random [CI],
    undefined count, mean with undefined left out [CI], n."""
    head = ["layer", "basis", f"{KIND_NAMES[kind]}: mean [95% CI]", "minus random [95% CI]", "undefined / n",
            "mean, undefined left out [95% CI]", "per seed", "half-units + / −"]
    rows = []
    for r in results["rows"]:
        for b in results["bases"]:
            k = r["bases"][b]["kinds"][kind]
            cal = r["calibrated"][kind].get(b)
            seeds = r["bases"][b]["per_seed"]
            rows.append([str(r["layer"]), BASIS_NAMES[b], _ci(k["mean_undefined_at_chance"], *k["ci95_undefined_at_chance"]),
                         "—" if b == "random" or cal is None else _ci(cal["mean"], cal["lo"], cal["hi"], True),
                         f"{k['n_undefined']} / {k['n']}", _ci(k["mean_defined"], *k["ci95_defined"]),
                         " / ".join(_num(s[kind]) for s in seeds) if len(seeds) > 1 else "",
                         "{} / {}".format(r["bases"][b]["n_sides"]["+"], r["bases"][b]["n_sides"]["-"])])
    return head, rows


def headline_table(results: dict) -> tuple[list[str], list[list[str]]]:
    """Layers x bases: every basis minus random (top-and-random correlation, undefined at chance)."""
    bases = [b for b in results["bases"] if b != "random"]
    head = ["layer", "random (null)"] + [f"{BASIS_NAMES[b]} − random" for b in bases]
    rows = []
    for r in results["rows"]:
        k = r["bases"]["random"]["kinds"]["top_random"] if "random" in r["bases"] else None
        cells = [str(r["layer"]), _ci(k["mean_undefined_at_chance"], *k["ci95_undefined_at_chance"]) if k else "—"]
        for b in bases:
            cal = r["calibrated"]["top_random"].get(b)
            cells.append("—" if cal is None else _ci(cal["mean"], cal["lo"], cal["hi"], True))
        rows.append(cells)
    return head, rows


def quality_table(results: dict) -> tuple[list[str], list[list[str]]]:
    head = ["layer", "model", "seed", "training tokens", "EV", "target reached", "CE recovered", "L0", "dead (eval)",
            "live SAE latents / all (train)"]
    rows = []
    for r in results["rows"]:
        for which, qs in (("trained", r["sae_quality"]), ("random init", r.get("random_model_sae_quality", []))):
            basis = "sae" if which == "trained" else "sae-random-model"
            for q in qs:
                t = q["training"]
                reached = "—" if t["target_ev"] is None else ("yes" if t["reached"] else "MISSED")
                live = ""
                if basis in r["bases"]:
                    ps = r["bases"][basis]
                    live = f"{ps['n_live']} / {ps['n_total']} (all seeds)"
                rows.append([str(r["layer"]), which, str(t["seed_index"]), f"{t['tokens']:,}", _num(q["explained_variance"]),
                             reached, _num(q.get("ce_loss_score")), _num(q["l0"], 1), _num(q.get("dead_fraction")), live])
    return head, rows


def setup_text(results: dict) -> list[str]:
    """Plain sentences: what was measured, on how much text, with what sample sizes."""
    rows, st, c = results["rows"], results["settings"], results["settings"]["config"]
    first = rows[0]
    q, t = first["sae_quality"][0], first["text"]
    sizes, tr = results["sample_sizes"], results["sae_training"]
    n_text = (f"{sizes['scored_per_layer_and_basis'][0]} units of every dictionary at every layer" if sizes["equal"] else
              f"UNEQUAL sample sizes across layers or bases ({', '.join(map(str, sizes['scored_per_layer_and_basis']))}; "
              f"{sizes['features_per_layer_asked']} asked per dictionary): some dictionary had fewer live units")
    seeds = sizes["seeds"]
    lines = [
        f"Model {results['model']}, site {results['site']}, layers {', '.join(map(str, results['layers']))}; bases: "
        + ", ".join(BASIS_NAMES[b] for b in results["bases"]) + ".",
        f"Sign rule: {results['sign_rule']}.",
        f"Sample: {n_text} ({c['features_per_layer']} per dictionary; seeded bases have {seeds} dictionar"
        f"{'y' if seeds == 1 else 'ies'} per layer, SAE on a random model one), drawn among live units (firing at least once "
        f"on the train split) with a seed fixed by the run's seed ({c['seed']}), the basis and the layer.",
        f"Text: explanations read from {t['n_train_tokens']:,} train tokens; every layer simulated on the same "
        f"{t['n_heldout_tokens']:,} held-out tokens (windows of {st['context_size']} tokens, sha256 "
        f"{t['heldout_tokens_sha256'][:12]}; the same {len(t['heldout_random_examples'])} random held-out examples for every unit).",
        f"Scores (explainer '{st['explainer']}', simulator '{st['simulator']}'): top-and-random and random-only correlations "
        "(Bills et al. 2023), a band correlation over held-out examples drawn uniformly from 5 equal-width bands of "
        "(0, train max] plus silent ones (after Bricken et al. 2023), and detection AUROC. Undefined scores (constant "
        "simulation or truth; one-class contexts for AUROC) are counted per cell; means are given with undefined at chance "
        "(0, AUROC 0.5) and with undefined left out. CIs: 95% percentile bootstrap over units "
        f"({sizes['n_boot']} resamples; seeds pooled); 'minus random' resamples both bases' units.",
        f"SAEs: {c['arch']}, d_in {q['d_in']}, d_sae {q['d_sae']}" + (f", k {q['k']}" if q["k"] else "") + ", "
        + (f"trained in rounds of {c['sae_tokens'] or tr['tokens']:,} tokens at a constant learning rate until their held-out "
           f"EV reached {tr['target_ev']} or {tr['token_cap']:,} tokens" if tr.get("target_ev") is not None else
           f"trained for {tr['steps']} steps of {tr['batch_size']} tokens ({tr['tokens']:,} tokens, lr {tr['lr']:g})")
        + f"; quality on {q['n_eval_tokens']:,} held-out tokens, BOS left out as in training.",
    ]
    if results["target_missed"]:
        lines.append("MISSED the EV target: " + "; ".join(f"layer {m['layer']} seed {m['seed_index']} (EV {m['ev']:.3f})"
                                                         for m in results["target_missed"]) + ".")
    if not results["same_heldout_text"]:
        lines.append("WARNING: the layers were not all scored on the same held-out text.")
    return lines


def trend_text(results: dict, kind: str = "top_random") -> list[str]:
    tr = results.get("trend") or {}
    out = []
    for which, label in (("raw", ""), ("minus_random", " minus random directions")):
        for basis, t in tr.get(which, {}).items():
            if kind in t:
                out.append(f"{BASIS_NAMES[basis]}{label} ({KIND_NAMES[kind]}): " + " ".join(t[kind]["text"]))
    return out or ["No trend: fewer than two layers."]


def trend_table(results: dict, kind: str = "top_random") -> tuple[list[str], list[list[str]]]:
    """Per basis, raw and minus random: slope [CI counting units, seeds and layers], the winning
    shape and its Akaike weight."""
    head = ["basis", "quantity", "slope per layer [95% CI]", "CI from units and seeds alone", "between-layer SD",
            "best shape (Akaike weights c / l / s)"]
    rows = []
    tr = results.get("trend") or {}
    for which, label in (("raw", "score"), ("minus_random", "minus random")):
        for basis, t in tr.get(which, {}).items():
            if kind not in t:
                continue
            t = t[kind]
            s, sh = t.get("slope"), t["shape"]
            w = sh.get("weights", {})
            rows.append([BASIS_NAMES[basis], label,
                         "n/a" if not s else f"{s['per_layer']:+.4f} [{s['lo']:+.4f}, {s['hi']:+.4f}]",
                         "n/a" if not s else f"[{s['within_layer_only_lo']:+.4f}, {s['within_layer_only_hi']:+.4f}]",
                         "n/a" if not s else f"{s['tau']:.3f}",
                         (sh["winner"] or sh.get("note", "")) + (f" ({w['constant']:.2f} / {w['line']:.2f} / {w['step']:.2f})" if w else "")])
    return head, rows


def _md_table(head, rows) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"] + ["| " + " | ".join(r) + " |" for r in rows]


def markdown(results: dict) -> str:
    lines = [f"# Readability by depth: {results['model']}, {results['site']}", ""]
    lines += [f"- {s}" for s in setup_text(results)]
    lines += ["", "## Headline: each basis minus random directions of the same layer (top-and-random correlation)", ""]
    lines += _md_table(*headline_table(results))
    for kind in KINDS:
        lines += ["", f"## {KIND_NAMES[kind]}", ""] + _md_table(*score_table(results, kind))
    lines += ["", "## SAE quality", ""] + _md_table(*quality_table(results))
    lines += ["", "## Trend with depth (top-and-random correlation, undefined at chance)", ""]
    lines += ["Per-layer means with 95% CIs from a hierarchical bootstrap (seeds, then units); the slope's CI also counts "
              "between-layer scatter (analyses/trend.py); shapes compared by AICc: a slope is worth reading only where "
              "the line wins.", ""]
    lines += _md_table(*trend_table(results)) + [""] + [f"- {s}" for s in trend_text(results)]
    lines += ["", "## Trend with depth (band correlation)", ""] + _md_table(*trend_table(results, "bands"))
    for extra, title, table in EXTRAS:
        if results.get(extra):
            lines += ["", f"## {title}", ""] + [f"- {s}" for s in results[extra]] + [""] + _md_table(*table(results, BASIS_NAMES))
    if results.get("cross_check"):
        lines += ["", "## LLM cross-check: rank agreement of LLM and token scores on the same units", ""]
        lines += [f"- {s}" for s in cross_text(results)] + [""] + _md_table(*cross_table(results, BASIS_NAMES))
    sec = results["seconds"]
    names = {"record": "recording", "train_saes": "SAE training", "record_random_model": "recording the random model",
             "train_random_model_saes": "its SAEs", "layers": "per-layer evaluation, fitting and scoring", "this_run": "this invocation"}
    lines += ["", "Seconds: " + ", ".join(f"{names[k]} {sec[k]:,.0f}" for k in names if k in sec)
              + " (recording and training as measured when they ran).", ""]
    return "\n".join(lines)


# --- figures ----------------------------------------------------------------------------------

def figures(results: dict) -> list:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    rows, x = results["rows"], results["layers"]
    figs = []
    for kind in KINDS:
        fig = make_subplots(rows=1, cols=2, subplot_titles=(f"{KIND_NAMES[kind]} (undefined at chance), 95% CI over seeds and units",
                                                            "minus random directions of the same layer and seed"))
        tr = results.get("trend") or {}
        for b in results["bases"]:
            k = [r["bases"][b]["kinds"][kind] for r in rows]
            m = [v["mean_undefined_at_chance"] for v in k]
            lo = [v["ci95_undefined_at_chance"][0] for v in k]
            hi = [v["ci95_undefined_at_chance"][1] for v in k]
            if kind in tr.get("raw", {}).get(b, {}):  # the hierarchical CI (seeds, then units) of analyses.trend
                lay = tr["raw"][b][kind]["layers"]
                m, lo, hi = [v["mean"] for v in lay], [v["lo"] for v in lay], [v["hi"] for v in lay]
            fig.add_trace(go.Scatter(x=x, y=m, mode="lines+markers", name=BASIS_NAMES[b], legendgroup=b, showlegend=kind == KINDS[0],
                                     line={"color": COLORS[b]}, error_y=_err(m, lo, hi)), row=1, col=1)
            if b != "random":
                cal = [r["calibrated"][kind].get(b) for r in rows]
                if kind in tr.get("minus_random", {}).get(b, {}):
                    cal = [{"mean": v["mean"], "lo": v["lo"], "hi": v["hi"]} for v in tr["minus_random"][b][kind]["layers"]]
                if all(cal):
                    cm = [c["mean"] for c in cal]
                    fig.add_trace(go.Scatter(x=x, y=cm, mode="lines+markers", name=BASIS_NAMES[b], legendgroup=b, showlegend=False,
                                             line={"color": COLORS[b]}, error_y=_err(cm, [c["lo"] for c in cal], [c["hi"] for c in cal])),
                                  row=1, col=2)
        fig.add_hline(y=0, line={"dash": "dot", "color": "#999"}, row=1, col=2)
        fig.update_layout(title=f"{KIND_NAMES[kind]} by depth: {results['model']} {results['site']}")
        fig.update_xaxes(tickmode="array", tickvals=x, title_text="layer")
        figs.append(fig)
    if all(r.get("lexical") for r in rows):
        figs.append(ceiling_figure(results))
    quality = make_subplots(rows=1, cols=3, subplot_titles=("explained variance", "CE recovered", "training tokens"))
    for i, (_key, get) in enumerate((("EV", lambda q: q["explained_variance"]), ("CE", lambda q: q.get("ce_loss_score")),
                                    ("tokens", lambda q: q["training"]["tokens"]))):
        n_seeds = len(rows[0]["sae_quality"])
        for s in range(n_seeds):
            quality.add_trace(go.Scatter(x=x, y=[get(r["sae_quality"][s]) for r in rows], mode="lines+markers", showlegend=False,
                                         line={"color": COLORS["sae"]}, name=f"seed {s}"), row=1, col=i + 1)
    quality.update_layout(title="SAE quality by layer (one line per seed)")
    quality.update_xaxes(tickmode="array", tickvals=x, title_text="layer")
    figs.append(quality)
    return figs


def ceiling_figure(results: dict):
    """The lexical ceiling per layer and basis (bigram R², in-sample with its 95% CI, leave-one-out
    dotted) beside the top-and-random score, so the reader sees how much a token explainer could see."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    rows, x = results["rows"], results["layers"]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("top-and-random corr. (undefined at 0), 95% CI",
                                                        "lexical ceiling: bigram R² (in-sample, 95% CI; leave-one-out dotted)"))
    for b in results["bases"]:
        k = [r["bases"][b]["kinds"]["top_random"] for r in rows]
        m = [v["mean_undefined_at_chance"] for v in k]
        fig.add_trace(go.Scatter(x=x, y=m, mode="lines+markers", name=BASIS_NAMES[b], legendgroup=b, line={"color": COLORS[b]},
                                 error_y=_err(m, [v["ci95_undefined_at_chance"][0] for v in k],
                                              [v["ci95_undefined_at_chance"][1] for v in k])), row=1, col=1)
        lex = [r["lexical"].get(b) for r in rows]
        if not all(c and c["bigram"]["mean"] is not None for c in lex):
            continue
        cm = [c["bigram"]["mean"] for c in lex]
        fig.add_trace(go.Scatter(x=x, y=cm, mode="lines+markers", name=BASIS_NAMES[b], legendgroup=b, showlegend=False,
                                 line={"color": COLORS[b]}, error_y=_err(cm, [c["bigram"]["ci95"][0] for c in lex],
                                                                          [c["bigram"]["ci95"][1] for c in lex])), row=1, col=2)
        fig.add_trace(go.Scatter(x=x, y=[c["bigram_loo"]["mean"] for c in lex], mode="lines", name=f"{BASIS_NAMES[b]}, leave-one-out",
                                 legendgroup=b, showlegend=False, line={"color": COLORS[b], "dash": "dot"}), row=1, col=2)
    fig.update_layout(title=f"Score and lexical ceiling by depth: {results['model']} {results['site']}")
    fig.update_xaxes(tickmode="array", tickvals=x, title_text="layer")
    fig.update_yaxes(range=[0, 1], row=1, col=2)
    return fig


def _err(m, lo, hi) -> dict:
    return {"type": "data", "symmetric": False, "array": [h - a for a, h in zip(m, hi)], "arrayminus": [a - low for a, low in zip(m, lo)]}


def html_page(results: dict) -> str:
    from plotly.offline import get_plotlyjs

    esc = html.escape
    parts = ["<!doctype html><html><head><meta charset='utf-8'>",
             f"<title>{esc(results['model'])} {esc(results['site'])}: readability by depth</title>",
             "<style>body{font-family:system-ui,sans-serif;max-width:1300px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}"
             "th{background:#f4f4f4}</style>",
             f"<script>{get_plotlyjs()}</script></head><body>",
             f"<h1>Readability by depth: {esc(results['model'])}, {esc(results['site'])}</h1>"]
    parts += [f"<p>{esc(s)}</p>" for s in setup_text(results)]

    def table(head, rows):
        out = ["<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr>"]
        out += ["<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows]
        return "".join(out) + "</table>"

    parts.append("<h2>Headline: each basis minus random directions of the same layer</h2>" + table(*headline_table(results)))
    parts.append("<h2>Trend with depth</h2>" + table(*trend_table(results)) + "".join(f"<p>{esc(s)}</p>" for s in trend_text(results)))
    for fig in figures(results):
        parts.append(fig.to_html(full_html=False, include_plotlyjs=False))
    for kind in KINDS:
        parts.append(f"<h2>{esc(KIND_NAMES[kind])}</h2>" + table(*score_table(results, kind)))
    parts.append("<h2>SAE quality</h2>" + table(*quality_table(results)))
    for extra, title, make in EXTRAS:
        if results.get(extra):
            parts.append(f"<h2>{esc(title)}</h2>" + "".join(f"<p>{esc(s)}</p>" for s in results[extra])
                         + table(*make(results, BASIS_NAMES)))
    parts.append("<p>Per-unit explanations and scores: layers/L&lt;nn&gt;/&lt;basis&gt;[/s&lt;seed&gt;]/explanations.json; "
                 "every unit's four scores and density: layers/L&lt;nn&gt;/units.json.</p></body></html>")
    return "\n".join(parts)

"""The layer-depth comparison across layers: results.json (per layer, plus the SAE − neurons gap and the
trend with depth, each with a bootstrap CI), report.md (a table that states its sample sizes) and
report.html (the same table and plotly figures, plotly's JavaScript embedded: opens offline).

The headline figure is the one of CRATE-LM (Bai & Ma, arXiv 2410.16443): mean interpretability
score against depth, neurons vs SAE features, with 95% bootstrap CI bands."""

from __future__ import annotations

import html
import math
from pathlib import Path

import numpy as np

KINDS = ("neurons", "sae")
KIND_NAMES = {"neurons": "neurons", "sae": "SAE features"}
COLORS = {"neurons": "#1f77b4", "sae": "#d62728"}
BANDS = {"neurons": "rgba(31,119,180,0.18)", "sae": "rgba(214,39,40,0.18)"}


def write_reports(results: dict, out: str | Path) -> tuple[Path, Path]:
    out = Path(out)
    md, page = out / "report.md", out / "report.html"
    md.write_text(markdown(results))
    page.write_text(html_page(results))
    return md, page


# --- across layers -------------------------------------------------------------------------

def summarize(model_name: str, rows: list[dict], settings: dict, cfg, training: dict, seconds: dict) -> dict:
    """results.json (`cfg` a DepthConfig): per-layer rows, the SAE-minus-neurons gap per layer, and the trend with depth."""
    nb, seed = cfg.scoring.n_boot, cfg.seed
    for row in rows:
        row["gap"] = dict(zip(("mean", "lo", "hi"), diff_ci(row["neurons"]["scores"], row["sae"]["scores"], nb, seed)))
    layers = [r["layer"] for r in rows]
    trend = {kind: dict(zip(("slope", "lo", "hi"), slope_ci(layers, [r[kind]["scores"] for r in rows], nb, seed)))
             for kind in KINDS}
    sizes = sorted({r[kind]["n_scored"] for r in rows for kind in KINDS})
    heldout = {r["text"]["heldout_tokens_sha256"] for r in rows}
    return {
        "sae_training": training,
        "model": model_name, "site": cfg.site, "layers": layers, "rows": rows, "trend_per_layer": trend,
        "sample_sizes": {"features_per_layer_asked": cfg.features_per_layer, "scored_per_layer_and_kind": sizes,
                         "equal": len(sizes) == 1, "n_boot": nb},
        "same_heldout_text": len(heldout) == 1, "settings": settings, "seconds": seconds,
    }


def diff_ci(a, b, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05) -> tuple[float, float, float]:
    """mean(b) - mean(a) and its percentile-bootstrap CI, resampling each group on its own."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) == 0 or len(b) == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    d = b[rng.integers(0, len(b), (n_boot, len(b)))].mean(1) - a[rng.integers(0, len(a), (n_boot, len(a)))].mean(1)
    lo, hi = np.quantile(d, [alpha / 2, 1 - alpha / 2])
    return float(b.mean() - a.mean()), float(lo), float(hi)


def slope_ci(layers: list[int], scores: list, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05) -> tuple[float, float, float]:
    """Least-squares slope of the per-layer mean score against the layer index (score per layer),
    with a percentile-bootstrap CI that resamples features within each layer."""
    x = np.asarray(layers, dtype=np.float64)
    if len(x) < 2 or any(len(s) == 0 for s in scores):
        return float("nan"), float("nan"), float("nan")
    xc = x - x.mean()
    rng = np.random.default_rng(seed)
    means = np.stack([np.asarray(s, dtype=np.float64)[rng.integers(0, len(s), (n_boot, len(s)))].mean(1) for s in scores], 1)
    slopes = (means - means.mean(1, keepdims=True)) @ xc / (xc @ xc)  # [n_boot]
    point = np.array([np.mean(s) for s in scores])
    lo, hi = np.quantile(slopes, [alpha / 2, 1 - alpha / 2])
    return float((point - point.mean()) @ xc / (xc @ xc)), float(lo), float(hi)


# --- words and tables -----------------------------------------------------------------------

def _num(x, digits: int = 3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _ci(mean, lo, hi) -> str:
    return f"{_num(mean)} [{_num(lo)}, {_num(hi)}]"


def table(results: dict) -> tuple[list[str], list[list[str]]]:
    head = ["layer", "neurons: mean [95% CI]", "SAE features: mean [95% CI]", "SAE − neurons [95% CI]",
            "scored (neurons / SAE)", "live neurons / all", "live SAE features / all", "EV", "CE recovered", "L0",
            "dead SAE (train)"]
    rows = []
    for r in results["rows"]:
        n, s, q, g = r["neurons"], r["sae"], r["sae_quality"], r["gap"]
        rows.append([str(r["layer"]), _ci(n["mean_score"], *n["ci95"]), _ci(s["mean_score"], *s["ci95"]),
                     _ci(g["mean"], g["lo"], g["hi"]), f"{n['n_scored']} / {s['n_scored']}",
                     f"{n['n_live']} / {n['n_total']}", f"{s['n_live']} / {s['n_total']}",
                     _num(q["explained_variance"]), _num(q["ce_loss_score"]), _num(q["l0"], 1),
                     f"{100 * q['dead_fraction_train']:.1f}%"])
    return head, rows


def setup_text(results: dict) -> list[str]:
    """Plain sentences: what was measured, on how much text, with what sample sizes."""
    rows, st, c = results["rows"], results["settings"], results["settings"]["config"]
    first = rows[0]
    q, t = first["sae_quality"], first["text"]
    sizes, tr = results["sample_sizes"], results["sae_training"]
    n_text = (f"{sizes['scored_per_layer_and_kind'][0]} features of each kind at every layer" if sizes["equal"] else
              f"UNEQUAL sample sizes across layers or kinds ({', '.join(map(str, sizes['scored_per_layer_and_kind']))}; "
              f"{sizes['features_per_layer_asked']} asked): some dictionary had fewer live features")
    lines = [
        f"Model {results['model']}, site {results['site']}, layers {', '.join(map(str, results['layers']))}.",
        f"Sample: {n_text}, drawn among live features (firing at least once on the train split) with a seed fixed by "
        f"the run's seed ({c['seed']}) and the layer; dead features are excluded, and counted in the table.",
        f"Text: explanations read from {t['n_train_tokens']:,} train tokens; every layer simulated on the same "
        f"{t['n_heldout_tokens']:,} held-out tokens (windows of {st['context_size']} tokens, sha256 "
        f"{t['heldout_tokens_sha256'][:12]}; the same {len(t['heldout_random_examples'])} random held-out examples for every feature).",
        f"Score: the correlation of simulated with true activations over each feature's top and random held-out examples "
        f"(Bills et al. 2023), explainer '{st['explainer']}', simulator '{st['simulator']}'. Means with 95% percentile "
        f"bootstrap CIs ({sizes['n_boot']} resamples); the SAE − neurons gap resamples both groups.",
        f"SAEs: {c['arch']}, d_in {q['d_in']}, d_sae {q['d_sae']}" + (f", k {q['k']}" if q["k"] else "")
        + f", trained for {tr['steps']} steps of {tr['batch_size']} tokens ({tr['tokens']:,} tokens, lr {tr['lr']:g}); "
        f"quality (EV, CE recovered, L0) on {q['n_eval_tokens']:,} held-out tokens"
        + (", each window's BOS position left out as in training" if q.get("skip_bos") else ", BOS positions included")
        + "; dead fraction = never firing on the train split.",
    ]
    if not results["same_heldout_text"]:
        lines.append("WARNING: the layers were not all scored on the same held-out text.")
    return lines


def trend_text(results: dict) -> list[str]:
    out = []
    layers = results["layers"]
    span = layers[-1] - layers[0] if len(layers) > 1 else 0
    for kind, tr in results["trend_per_layer"].items():
        if tr["slope"] is None or math.isnan(tr["slope"]):
            continue
        if tr["hi"] < 0:
            verdict = "falls with depth"
        elif tr["lo"] > 0:
            verdict = "rises with depth"
        else:
            verdict = "shows no trend the CI can tell from zero"
        out.append(f"{KIND_NAMES[kind]}: slope {tr['slope']:+.4f} per layer [95% CI {tr['lo']:+.4f}, {tr['hi']:+.4f}], "
                   f"{tr['slope'] * span:+.3f} over layers {layers[0]}–{layers[-1]}: the score {verdict}.")
    return out


def markdown(results: dict) -> str:
    head, rows = table(results)
    lines = [f"# Neurons vs SAE features by depth: {results['model']}, {results['site']}", ""]
    lines += [f"- {s}" for s in setup_text(results)]
    lines += ["", "| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += ["", "Trend of the mean score with depth (least squares over layers; CI resamples features within layers):", ""]
    lines += [f"- {s}" for s in trend_text(results)]
    sec = results["seconds"]
    names = {"record": "recording", "train_saes": "SAE training", "layers": "per-layer evaluation and scoring",
             "this_run": "this invocation"}
    lines += ["", "Seconds: " + ", ".join(f"{names[k]} {sec[k]:,.0f}" for k in names if k in sec)
              + " (recording and training as measured when they ran).", ""]
    return "\n".join(lines)


# --- figures ----------------------------------------------------------------------------------

def figures(results: dict) -> list:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    rows, x = results["rows"], results["layers"]
    n = results["sample_sizes"]["scored_per_layer_and_kind"]
    figs = []

    head = go.Figure()
    for kind in ("neurons", "sae"):
        lo = [r[kind]["ci95"][0] for r in rows]
        hi = [r[kind]["ci95"][1] for r in rows]
        head.add_trace(go.Scatter(x=x + x[::-1], y=hi + lo[::-1], fill="toself", fillcolor=BANDS[kind], mode="lines", line={"width": 0},
                                  hoverinfo="skip", showlegend=False, name=f"{KIND_NAMES[kind]} 95% CI"))
        head.add_trace(go.Scatter(x=x, y=[r[kind]["mean_score"] for r in rows], mode="lines+markers", name=KIND_NAMES[kind],
                                  line={"color": COLORS[kind]},
                                  customdata=[[r[kind]["ci95"][0], r[kind]["ci95"][1], r[kind]["n_scored"]] for r in rows],
                                  hovertemplate="layer %{x}: %{y:.3f} [%{customdata[0]:.3f}, %{customdata[1]:.3f}], n=%{customdata[2]}"))
    head.update_layout(title=f"Interpretability score vs depth: {results['model']} {results['site']} (n = {'/'.join(map(str, n))} per layer, 95% CI)",
                       xaxis_title="layer", yaxis_title="mean score (simulation correlation)")
    figs.append(head)

    gap = go.Figure(go.Scatter(x=x, y=[r["gap"]["mean"] for r in rows], mode="lines+markers", line={"color": "#444"},
                               error_y={"type": "data", "symmetric": False,
                                        "array": [r["gap"]["hi"] - r["gap"]["mean"] for r in rows],
                                        "arrayminus": [r["gap"]["mean"] - r["gap"]["lo"] for r in rows]}, name="SAE − neurons"))
    gap.add_hline(y=0, line={"dash": "dot", "color": "#999"})
    gap.update_layout(title="SAE features minus neurons (mean score, 95% CI)", xaxis_title="layer", yaxis_title="difference")
    figs.append(gap)

    dist = go.Figure()
    for kind in ("neurons", "sae"):
        xs = [r["layer"] for r in rows for _ in r[kind]["scores"]]
        dist.add_trace(go.Box(x=xs, y=[v for r in rows for v in r[kind]["scores"]], name=KIND_NAMES[kind],
                              marker={"color": COLORS[kind]}, boxpoints="all", jitter=0.4, pointpos=0))
    dist.update_layout(boxmode="group", title="Per-feature scores by layer", xaxis_title="layer", yaxis_title="score")
    figs.append(dist)

    det = go.Figure()
    for kind in ("neurons", "sae"):
        det.add_trace(go.Scatter(x=x, y=[r[kind]["mean_detection_auroc"] for r in rows], mode="lines+markers",
                                 name=KIND_NAMES[kind], line={"color": COLORS[kind]},
                                 error_y={"type": "data", "symmetric": False,
                                          "array": [_nz(r[kind]["detection_ci95"][1], r[kind]["mean_detection_auroc"]) for r in rows],
                                          "arrayminus": [_nz(r[kind]["mean_detection_auroc"], r[kind]["detection_ci95"][0]) for r in rows]}))
    det.update_layout(title="Detection AUROC vs depth (held-out firing vs silent contexts, 95% CI)", xaxis_title="layer", yaxis_title="AUROC")
    figs.append(det)

    quality = make_subplots(rows=1, cols=4, subplot_titles=("explained variance", "CE recovered", "L0", "dead fraction (train)"))
    for i, key in enumerate(("explained_variance", "ce_loss_score", "l0", "dead_fraction_train")):
        quality.add_trace(go.Scatter(x=x, y=[r["sae_quality"][key] for r in rows], mode="lines+markers", showlegend=False,
                                     line={"color": COLORS["sae"]}), row=1, col=i + 1)
    quality.update_layout(title="SAE quality by layer")
    quality.update_xaxes(tickmode="array", tickvals=x, title_text="layer")
    figs.append(quality)
    for fig in figs[:-1]:
        fig.update_xaxes(tickmode="array", tickvals=x)
    return figs


def _nz(a, b) -> float:
    return 0.0 if a is None or b is None or math.isnan(a) or math.isnan(b) else a - b


def html_page(results: dict) -> str:
    from plotly.offline import get_plotlyjs

    head, rows = table(results)
    esc = html.escape
    parts = ["<!doctype html><html><head><meta charset='utf-8'>",
             f"<title>{esc(results['model'])} {esc(results['site'])}: neurons vs SAE features by depth</title>",
             "<style>body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;font-size:14px}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}"
             "th{background:#f4f4f4}</style>",
             f"<script>{get_plotlyjs()}</script></head><body>",
             f"<h1>Neurons vs SAE features by depth: {esc(results['model'])}, {esc(results['site'])}</h1>"]
    parts += [f"<p>{esc(s)}</p>" for s in setup_text(results)]
    for fig in figures(results):
        parts.append(fig.to_html(full_html=False, include_plotlyjs=False))
    parts.append("<h2>Table</h2><table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr>")
    parts += ["<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows]
    parts.append("</table><h2>Trend with depth</h2>")
    parts += [f"<p>{esc(s)}</p>" for s in trend_text(results)]
    parts.append("<p>Per-feature explanations and scores: layers/L&lt;nn&gt;/{neurons,sae}/explanations.json.</p></body></html>")
    return "\n".join(parts)

"""The editing benchmark's results.json, report.md and report.html (plotly's JavaScript embedded,
so the page opens offline). Numbers come from analyses/edits.py, per layer and unit kind."""

from __future__ import annotations

import html
import math
from pathlib import Path

import numpy as np

from analyses.edits import KL_BUDGETS, effect_at_kl
from interp.files import write_text_atomic

KIND_NAMES = {"neurons": "neurons", "z0": "z0 (CRATE's first ISTA estimate)", "sae": "SAE latents, with error term",
              "sae-noerror": "SAE latents, without error term", "random": "random directions"}
COLORS = {"neurons": "#1f77b4", "z0": "#17becf", "sae": "#d62728", "sae-noerror": "#ff7f0e", "random": "#7f7f7f"}


def summarize(model_name: str, rows: list[dict], settings: dict, n_boot: int, seed: int) -> dict:
    kinds = list(dict.fromkeys(k for r in rows for k in r["kinds"]))
    return {"model": model_name, "layers": [r["layer"] for r in rows], "kinds": kinds, "settings": settings,
            "n_boot": n_boot, "kl_budgets": list(KL_BUDGETS), "rows": rows,
            "definitions": {
                "necessity": "rise in next-token CE where the unit fires when zero-ablated there, minus the rise from "
                             "the same ablation at as many random positions (nats)",
                "sufficiency": "rise in the log of the total probability of the unit's top-k promoted tokens (logit effects) at the "
                               "positions where it does not fire, edited there (nats)",
                "collateral_kl": "KL(clean || edited) at the edited positions over all tokens but the promoted ones, "
                                 "both renormalised (nats)",
                "effect_at_kl_b": "the best sufficiency on the unit's curve (zero edit, then the ladder) within "
                                  "collateral KL b; 0 if even the zero edit costs more",
                "auc": "mean of effect_at_kl over budgets 0..0.2 nats"}}


def write_reports(results: dict, out: str | Path) -> None:
    out = Path(out)
    write_text_atomic(out / "report.md", markdown(results))  # each is whole or as it was: a full disk is one line
    write_text_atomic(out / "report.html", html_page(results))


def _ci(s: dict | None, digits: int = 3) -> str:
    if not s or s.get("mean") is None:
        return "n/a"
    return f"{s['mean']:.{digits}f} [{s['lo']:.{digits}f}, {s['hi']:.{digits}f}]"


def _num(x, digits: int = 4) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def headline_table(results: dict, ladder: str = "add") -> tuple[list[str], list[list[str]]]:
    head = ["layer", "units", "n", "density range", f"effect at KL {KL_BUDGETS[0]:g} [95% CI]",
            f"effect at KL {KL_BUDGETS[1]:g} [95% CI]", "AUC [95% CI]", "necessity [95% CI]",
            "strongest edit: sufficiency / collateral KL / CE change", "zero edit: max |Δlogp|, CE change"]
    rows = []
    for r in results["rows"]:
        for kind, res in r["kinds"].items():
            s, us = res["summary"], res["units"]
            d = [u["density"] for u in us]
            dens = f"{min(d):.4f}-{max(d):.4f}" if d else "n/a"
            lad = s[ladder]
            strong = " / ".join(_ci(lad[f"strongest_{k}"]) for k in ("sufficiency", "collateral_kl", "ce_change"))
            z = res["zero_edit"]
            rows.append([str(r["layer"]), KIND_NAMES[kind], str(res["n_units"]), dens,
                         _ci(lad[f"effect_at_kl_{KL_BUDGETS[0]:g}"]), _ci(lad[f"effect_at_kl_{KL_BUDGETS[1]:g}"]),
                         _ci(lad["auc"]), _ci(s["necessity"], 4), strong,
                         f"{z['max_abs_logprob_diff']:.1e}, {z['ce_change']:+.4f}"])
    return head, rows


def readability_lines(results: dict) -> list[str]:
    out = []
    for r in results["rows"]:
        for kind, res in r["kinds"].items():
            sp = res["summary"].get("spearman_readability_vs_add_effect_at_kl_0.2")
            if sp:
                ci = f" [{_num(sp['lo'], 2)}, {_num(sp['hi'], 2)}]" if sp.get("lo") is not None else ""
                out.append(f"layer {r['layer']} {KIND_NAMES[kind]}: Spearman rho between readability (top-and-random) "
                           f"and effect at KL 0.2 = {_num(sp['rho'], 3)}{ci} (95% bootstrap CI over units), n = {sp['n']}")
    return out


def setup_lines(results: dict) -> list[str]:
    st, c = results["settings"], results["settings"]["config"]
    return [f"model {results['model']}, layers {', '.join(map(str, results['layers']))}; {st['eval_windows']} eval windows of "
            f"{st['context_size']} tokens; up to {c['units_per_layer']} units per layer and kind, drawn evenly across "
            f"firing densities (train densities on {c['stat_windows']} windows); bootstrap over units, {results['n_boot']} resamples",
            f"clamp ladder: c x train max, c in {', '.join(f'{x:g}' for x in c['clamp_ladder'])}; add ladder: alpha x the "
            f"site's median norm, alpha in {', '.join(f'{x:g}' for x in c['add_ladder'])}; promoted tokens: top "
            f"{c['promoted_k']} logit effects",
            *[f"{k}: {v}" for k, v in results["definitions"].items()]]


def _md_table(head, rows) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"] + ["| " + " | ".join(x) + " |" for x in rows]


def markdown(results: dict) -> str:
    lines = [f"# Editing benchmark: {results['model']}", ""] + [f"- {s}" for s in setup_lines(results)]
    for ladder in ("add", "clamp"):
        lines += ["", f"## {ladder} ladder", ""] + _md_table(*headline_table(results, ladder))
    rd = readability_lines(results)
    if rd:
        lines += ["", "## Readability against edit quality", ""] + [f"- {s}" for s in rd]
    return "\n".join(lines) + "\n"


def mean_curve(units: list[dict], ladder: str, budgets: np.ndarray) -> list[float]:
    """Mean over units of effect_at_kl at each budget."""
    if not units:
        return [float("nan")] * len(budgets)
    per = [[effect_at_kl([p["collateral_kl"] for p in u["ladders"][ladder]], [p["sufficiency"] for p in u["ladders"][ladder]], b)
            for b in budgets] for u in units]
    return np.mean(per, axis=0).tolist()


def figures(results: dict) -> list:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    budgets = np.linspace(0, 0.5, 51)
    figs = []
    for r in results["rows"]:
        fig = make_subplots(rows=1, cols=3, subplot_titles=("add ladder: mean effect within a KL budget",
                                                            "clamp ladder: mean effect within a KL budget",
                                                            "every unit's add-ladder points"))
        for kind, res in r["kinds"].items():
            for col, ladder in ((1, "add"), (2, "clamp")):
                fig.add_trace(go.Scatter(x=budgets, y=mean_curve(res["units"], ladder, budgets), mode="lines",
                                         name=KIND_NAMES[kind], legendgroup=kind, showlegend=col == 1,
                                         line={"color": COLORS[kind]}), row=1, col=col)
            pts = [p for u in res["units"] for p in u["ladders"]["add"]]
            fig.add_trace(go.Scatter(x=[p["collateral_kl"] for p in pts], y=[p["sufficiency"] for p in pts], mode="markers",
                                     marker={"color": COLORS[kind], "size": 4, "opacity": 0.5}, legendgroup=kind,
                                     showlegend=False, name=KIND_NAMES[kind]), row=1, col=3)
        fig.update_xaxes(title_text="collateral KL budget (nats)", row=1, col=1)
        fig.update_xaxes(title_text="collateral KL budget (nats)", row=1, col=2)
        fig.update_xaxes(title_text="collateral KL (nats)", type="log", row=1, col=3)
        fig.update_yaxes(title_text="sufficiency (nats)", row=1, col=1)
        fig.update_layout(title=f"layer {r['layer']}: target effect against collateral")
        figs.append(fig)
    return figs


def html_page(results: dict) -> str:
    from plotly.offline import get_plotlyjs

    esc = html.escape

    def table(head, rows):
        out = ["<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr>"]
        out += ["<tr>" + "".join(f"<td>{esc(c)}</td>" for c in x) + "</tr>" for x in rows]
        return "".join(out) + "</table>"

    parts = ["<!doctype html><html><head><meta charset='utf-8'>", f"<title>{esc(results['model'])}: editing benchmark</title>",
             "<style>body{font-family:system-ui,sans-serif;max-width:1400px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}"
             "th{background:#f4f4f4}</style>", f"<script>{get_plotlyjs()}</script></head><body>",
             f"<h1>Editing benchmark: {esc(results['model'])}</h1>"]
    parts += [f"<p>{esc(s)}</p>" for s in setup_lines(results)]
    for ladder in ("add", "clamp"):
        parts.append(f"<h2>{ladder} ladder</h2>" + table(*headline_table(results, ladder)))
    parts += [f"<p>{esc(s)}</p>" for s in readability_lines(results)]
    for fig in figures(results):
        parts.append(fig.to_html(full_html=False, include_plotlyjs=False))
    parts.append("<p>Every unit's points: layers/L&lt;nn&gt;/&lt;kind&gt;.json.</p></body></html>")
    return "\n".join(parts)

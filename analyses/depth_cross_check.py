"""The LLM cross-check of the depth comparison: its table in results.json and report.md.

Per layer and basis, over the units the LLM scored too (`--cross-check llm`): Spearman's rho of
LLM and token scores (top-and-random correlation, undefined at 0) with its 95% bootstrap CI over
units (analyses/scoring/agreement.py), both scorers' means on those units, and each basis minus the
random null as each scorer sees it, on the same units. A row "all bases" pools a layer's units."""

from __future__ import annotations

from analyses.depth_bases import calibrated
from analyses.scoring.agreement import cross_summary

KIND = "top_random"


def cross_check(rows: list[dict], n_boot: int = 1000, seed: int = 0) -> list[dict]:
    """[{layer, basis, n, rho, lo, hi, tokens, llm, tokens_minus_random, llm_minus_random}] ([] without a cross-check)."""
    out = []
    for r in rows:
        crossed = {b: [u for u in row["units"] if u.get("cross")] for b, row in r["bases"].items()}
        crossed = {b: u for b, u in crossed.items() if u}
        if not crossed:
            continue
        as_tokens = {b: {"units": u} for b, u in crossed.items()}
        as_llm = {b: {"units": [u["cross"] for u in us]} for b, us in crossed.items()}
        cal_t, cal_l = calibrated(as_tokens, "random", KIND, n_boot, seed), calibrated(as_llm, "random", KIND, n_boot, seed)
        pooled = [u for group in crossed.values() for u in group]
        for b, group in [*crossed.items(), ("all bases", pooled)]:
            s = cross_summary(group, n_boot, seed)[KIND]
            out.append({"layer": r["layer"], "basis": b, **s,
                        "seconds_per_unit": r["bases"][b]["cross_check"].get("seconds_per_unit") if b in r["bases"] else None,
                        "tokens_minus_random": cal_t.get(b) if b != "random" else None,
                        "llm_minus_random": cal_l.get(b) if b != "random" else None})
    return out


def _m(x: dict | None, sign: bool = False) -> str:
    if not x:
        return ""
    f = "{:+.3f}" if sign else "{:.3f}"
    return f"{f.format(x['mean'])} [{f.format(x['lo'])}, {f.format(x['hi'])}]"


def cross_table(results: dict, names: dict) -> tuple[list[str], list[list[str]]]:
    head = ["layer", "basis", "n units", "Spearman rho [95% CI]", "token score", "LLM score", "LLM undefined",
            "token − random", "LLM − random"]
    rows = []
    for c in results.get("cross_check", []):
        rho = "n/a" if c["rho"] is None else f"{c['rho']:+.2f} [{c['lo']:+.2f}, {c['hi']:+.2f}]"
        rows.append([str(c["layer"]), names.get(c["basis"], c["basis"]), str(c["n"]), rho, _m(c["tokens"]), _m(c["llm"]),
                     str(c["llm"]["n_undefined"]), _m(c["tokens_minus_random"], True), _m(c["llm_minus_random"], True)])
    return head, rows


def cross_text(results: dict) -> list[str]:
    cc = results.get("cross_check", [])
    if not cc:
        return []
    scorer = next((r["bases"][b]["cross_check"]["scorer"] for r in results["rows"] for b in r["bases"]
                   if r["bases"][b].get("cross_check")), "an LLM")
    return [f"The same units, on the same train and held-out examples, explained and simulated a second time by {scorer} "
            "(its explainer writes one sentence from the top train examples). Scores: top-and-random correlation, undefined "
            "at 0 (the LLM simulator simulates no band examples).",
            "Spearman's rho between the two scores over units; its 95% CI is a percentile bootstrap that resamples units "
            "(pairs); minus random resamples both bases' units. 'all bases' pools the layer's units."]

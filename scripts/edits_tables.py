"""The tables of docs/editing.md from compare-edits results:
    python scripts/edits_tables.py runs/edits/gpt2-2l-e1024/results.json runs/edits/crate-2l-e1024/results.json"""

import json
import sys

from analyses.edits import spearman
from analyses.report import diff_ci


def ci(s: dict, d: int = 2) -> str:
    return "n/a" if s["mean"] is None else f"{s['mean']:.{d}f} [{s['lo']:.{d}f}, {s['hi']:.{d}f}]"


def strongest(s: dict, ladder: str) -> str:
    return " / ".join(ci(s[ladder][f"strongest_{x}"], 3) for x in ("sufficiency", "collateral_kl", "ce_change"))


def main(paths: list[str]) -> None:
    runs = [json.load(open(p)) for p in paths]
    print("| model | layer | units | n | density range | effect at KL 0.05 (add) | effect at KL 0.2 (add) | AUC (add) "
          "| effect at KL 0.2 (clamp) | necessity (nats) | zero edit: max abs dlogp / CE change |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        for row in r["rows"]:
            for k, res in row["kinds"].items():
                s, z, d = res["summary"], res["zero_edit"], [u["density"] for u in res["units"]]
                print(f"| {r['model']} | {row['layer']} | {k} | {res['n_units']} | {min(d):.3f}-{max(d):.3f} "
                      f"| {ci(s['add']['effect_at_kl_0.05'])} | {ci(s['add']['effect_at_kl_0.2'])} | {ci(s['add']['auc'])} "
                      f"| {ci(s['clamp']['effect_at_kl_0.2'])} | {ci(s['necessity'], 4)} "
                      f"| {z['max_abs_logprob_diff']:.1e} / {z['ce_change']:+.4f} |")
    print("\n| model | layer | units | strongest add (8x median norm): sufficiency / collateral KL / CE change "
          "| strongest clamp (10x train max) |")
    print("|---|---|---|---|---|")
    for r in runs:
        for row in r["rows"]:
            for k, res in row["kinds"].items():
                print(f"| {r['model']} | {row['layer']} | {k} | {strongest(res['summary'], 'add')} "
                      f"| {strongest(res['summary'], 'clamp')} |")
    print("\n| model | layer | units | minus random directions of the same layer: effect at KL 0.2 (add) | AUC (add) |")
    print("|---|---|---|---|---|")
    for r in runs:
        for row in r["rows"]:
            if "random" not in row["kinds"]:
                continue
            null = row["kinds"]["random"]["units"]
            for k, res in row["kinds"].items():
                if k == "random":
                    continue
                cells = []
                for key in ("effect_at_kl_0.2", "auc"):
                    m, lo, hi = diff_ci([u["curves"]["add"][key] for u in null], [u["curves"]["add"][key] for u in res["units"]], 2000, 0)
                    cells.append(f"{m:+.2f} [{lo:+.2f}, {hi:+.2f}]")
                print(f"| {r['model']} | {row['layer']} | {k} | {cells[0]} | {cells[1]} |")
    read = [(r, row, k, res) for r in runs for row in r["rows"] for k, res in row["kinds"].items()
            if any(u.get("readability") is not None for u in res["units"])]
    if read:
        print("\n| model | layer | units | n | Spearman rho, readability vs add effect at KL 0.2 [95% CI] |")
        print("|---|---|---|---|---|")
        for r, row, k, res in read:
            sp = spearman([u["readability"] for u in res["units"]], [u["curves"]["add"]["effect_at_kl_0.2"] for u in res["units"]], 2000, 0)
            rho = "n/a" if sp["rho"] is None else f"{sp['rho']:+.2f} [{sp['lo']:+.2f}, {sp['hi']:+.2f}]"
            print(f"| {r['model']} | {row['layer']} | {k} | {sp['n']} | {rho} |")
    by = {r["model"]: r for r in runs}
    if {"gpt2-2l", "crate-2l"} <= set(by):
        print("\n| layer | measure | CRATE neurons minus GPT-2 ... | difference [95% CI] |")
        print("|---|---|---|---|")
        for row_c in by["crate-2l"]["rows"]:
            row_g = next((r for r in by["gpt2-2l"]["rows"] if r["layer"] == row_c["layer"]), None)
            if row_g is None:
                continue
            for lad, key in (("add", "effect_at_kl_0.05"), ("add", "effect_at_kl_0.2"), ("add", "auc"), ("clamp", "effect_at_kl_0.2")):
                a = [u["curves"][lad][key] for u in row_c["kinds"]["neurons"]["units"]]
                for kind in ("sae", "sae-noerror", "neurons"):
                    if kind in row_g["kinds"]:
                        b = [u["curves"][lad][key] for u in row_g["kinds"][kind]["units"]]
                        m, lo, hi = diff_ci(b, a, 2000, 0)
                        print(f"| {row_c['layer']} | {lad} {key} | {kind} | {m:+.2f} [{lo:+.2f}, {hi:+.2f}] |")


if __name__ == "__main__":
    main(sys.argv[1:])

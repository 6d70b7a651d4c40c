"""The four scores of a unit, and their means over a sample of units, as the depth report shows them.

- `top_random`: correlation of simulation and truth over the unit's top and random held-out
  examples (Bills et al. 2023's "top-and-random" score);
- `random_only`: the same correlation over the random held-out examples alone (Bills et al.'s
  "random-only" score, which a unit that only fires on its top examples cannot pass);
- `bands`: the correlation over examples drawn uniformly from activation bands plus silent ones
  (Bricken et al. 2023; analyses/scoring/bands.py);
- `detection`: the AUROC with which the simulation tells firing from silent held-out contexts.

A score is UNDEFINED when the simulation or the truth is constant on its examples (a correlation)
or when the contexts are all firing or all silent (an AUROC). Every mean is given twice: with
undefined scores counted at chance (0 for a correlation, 0.5 for an AUROC) and with them left out,
each with its 95% percentile bootstrap CI over units, and the count of undefined ones."""

from __future__ import annotations

from analyses.scoring.stats import bootstrap_ci

KINDS = ("top_random", "random_only", "bands", "detection")
CHANCE = {"top_random": 0.0, "random_only": 0.0, "bands": 0.0, "detection": 0.5}
KIND_NAMES = {"top_random": "top-and-random corr.", "random_only": "random-only corr.",
              "bands": "band (Anthropic-style) corr.", "detection": "detection AUROC"}


def kind_values(score) -> dict[str, float | None]:
    """A FeatureScore's four scores, None where undefined."""
    return {"top_random": score.score if score.defined else None, "random_only": score.score_random,
            "bands": score.score_bands, "detection": score.detection_auroc}


def summarize_values(values: list, kind: str, n_boot: int = 1000, seed: int = 0) -> dict:
    """{n, n_undefined, mean_undefined_at_chance, ci95_undefined_at_chance, mean_defined, ci95_defined}."""
    defined = [v for v in values if v is not None]
    filled = [CHANCE[kind] if v is None else v for v in values]
    m0, lo0, hi0 = bootstrap_ci(filled, n_boot, 0.05, seed)
    m1, lo1, hi1 = bootstrap_ci(defined, n_boot, 0.05, seed)
    return {"n": len(values), "n_undefined": len(values) - len(defined), "chance": CHANCE[kind],
            "mean_undefined_at_chance": m0, "ci95_undefined_at_chance": [lo0, hi0],
            "mean_defined": m1, "ci95_defined": [lo1, hi1]}


def summarize_kinds(scores: list, n_boot: int = 1000, seed: int = 0) -> dict:
    vals = [kind_values(s) for s in scores]
    return {k: summarize_values([v[k] for v in vals], k, n_boot, seed) for k in KINDS}

"""What an edit of one unit buys and what it costs: the editing benchmark's measurements.

All pure: next-token log-probabilities [batch, pos, vocab] of the clean model and of the edited
one, the tokens [batch, pos], bool masks [batch, pos] of where the edit applied, in; numbers out.
Logits at position p predict token p + 1, so losses use positions 0 .. pos - 2.

- necessity: zero-ablate the unit where it fires; the rise in next-token loss there, minus the
  rise from the same ablation at as many random positions (the part any ablation would cause).
- sufficiency: make the unit fire where it does not (clamp or add, below); the rise in the log of
  the total probability of its promoted tokens (the top-k of its logit effects) at those
  positions. (The total, not a mean per token: when one promoted token takes the mass, the
  others' log-probabilities fall, and a mean would call the best edit harmful.)
- collateral: at the same positions, the KL divergence (nats) from the clean to the edited
  next-token distribution over every OTHER token (the promoted tokens taken out, both
  distributions renormalised): what the edit moved that it was not meant to move. Also the full
  KL and the change in held-out CE loss over all positions.
- the curve: per unit, (collateral, sufficiency) at each strength of a ladder, starting at the
  zero edit. effect_at_kl(b) is the best sufficiency on the piecewise-linear curve within a
  collateral budget b (0 when even the zero edit exceeds it); auc is its mean over budgets
  0 .. kl_max, so both read in the units of sufficiency (nats of log-probability)."""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.stats import rankdata

KL_BUDGETS = (0.05, 0.2)


def log_probs(logits: torch.Tensor) -> torch.Tensor:
    return logits.float().log_softmax(-1)


def token_ce(lp: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:  # [b, pos - 1]
    return -lp[:, :-1].gather(-1, tokens[:, 1:, None].to(lp.device))[..., 0]


def off_target_kl(clean_lp: torch.Tensor, edit_lp: torch.Tensor, promoted: torch.Tensor) -> torch.Tensor:  # [...]
    """KL(clean || edited) per position over the tokens not in `promoted`, both renormalised.

    Written without copying the vocabulary: with P the promoted tokens' total probability,
    KL_rest = (KL_full - sum_promoted p_c (c - e)) / (1 - P_c) - log(1 - P_c) + log(1 - P_e)."""
    pc = clean_lp.exp()
    full = (pc * (clean_lp - edit_lp)).sum(-1)
    c, e = clean_lp[..., promoted], edit_lp[..., promoted]
    inside = (c.exp() * (c - e)).sum(-1)
    rest_c = (1 - c.exp().sum(-1)).clamp(min=1e-12)
    rest_e = (1 - e.exp().sum(-1)).clamp(min=1e-12)
    return (full - inside) / rest_c - rest_c.log() + rest_e.log()


def full_kl(clean_lp: torch.Tensor, edit_lp: torch.Tensor) -> torch.Tensor:
    return (clean_lp.exp() * (clean_lp - edit_lp)).sum(-1)


def _mean(x: torch.Tensor) -> float:
    return float(x.double().mean()) if x.numel() else math.nan


def edit_point(clean_lp: torch.Tensor, edit_lp: torch.Tensor, tokens: torch.Tensor, target: torch.Tensor,
               promoted: torch.Tensor) -> dict:
    """One point of a unit's curve: sufficiency and collateral at the `target` positions, the full
    KL there, and the change in CE loss over every position (a positive change is a worse model)."""
    c, e = clean_lp[..., promoted], edit_lp[..., promoted]  # [b, pos, k]
    full = (clean_lp.exp() * (clean_lp - edit_lp)).sum(-1)  # [b, pos]
    inside = (c.exp() * (c - e)).sum(-1)
    rest_c = (1 - c.exp().sum(-1)).clamp(min=1e-12)
    rest_e = (1 - e.exp().sum(-1)).clamp(min=1e-12)
    off = (full - inside) / rest_c - rest_c.log() + rest_e.log()  # off_target_kl, sharing `full`
    return {
        "sufficiency": _mean((e.logsumexp(-1) - c.logsumexp(-1))[target]),
        "collateral_kl": _mean(off[target]),
        "full_kl": _mean(full[target]),
        "ce_change": _mean(token_ce(edit_lp, tokens) - token_ce(clean_lp, tokens)),
    }


def necessity(clean_lp: torch.Tensor, fired_lp: torch.Tensor, random_lp: torch.Tensor, tokens: torch.Tensor,
              firing: torch.Tensor, random: torch.Tensor) -> dict:
    """fired_lp: the unit ablated where it fires (`firing`); random_lp: ablated at the `random` mask."""
    ce = token_ce(clean_lp, tokens)
    at_fire = _mean((token_ce(fired_lp, tokens) - ce)[firing[:, :-1]])
    at_random = _mean((token_ce(random_lp, tokens) - ce)[random[:, :-1]])
    return {"necessity": at_fire - at_random, "rise_where_firing": at_fire, "rise_at_random": at_random,
            "n_firing": int(firing[:, :-1].sum()), "n_random": int(random[:, :-1].sum())}


def effect_at_kl(kl, effect, budget: float) -> float:
    """The largest effect on the piecewise-linear curve through (kl[i], effect[i]), in ladder
    order, over the part whose KL is at most `budget`; 0 if no part is."""
    kl, effect = [float(k) for k in kl], [float(e) for e in effect]
    best = None
    for i, (k, e) in enumerate(zip(kl, effect)):
        if k <= budget:
            best = e if best is None else max(best, e)
        if i + 1 < len(kl):
            k1, e1 = kl[i + 1], effect[i + 1]
            if min(k, k1) <= budget < max(k, k1):  # the segment crosses the budget: its point there
                at = e + (e1 - e) * (budget - k) / (k1 - k)
                best = at if best is None else max(best, at)
    return 0.0 if best is None else best


def auc(kl, effect, kl_max: float = 0.2, n: int = 41) -> float:
    """Mean of effect_at_kl over n budgets evenly spaced in [0, kl_max]."""
    return float(np.mean([effect_at_kl(kl, effect, b) for b in np.linspace(0.0, kl_max, n)]))


def curve_summary(points: list[dict], budgets=KL_BUDGETS, kl_max: float = 0.2) -> dict:
    """effect at each budget and the AUC, from a unit's points (the zero edit first)."""
    kl = [p["collateral_kl"] for p in points]
    eff = [p["sufficiency"] for p in points]
    out = {f"effect_at_kl_{b:g}": effect_at_kl(kl, eff, b) for b in budgets}
    out["auc"] = auc(kl, eff, kl_max)
    return out


def bootstrap_mean(values, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05) -> dict:
    """Mean over units with a percentile-bootstrap CI (NaNs left out and counted)."""
    x = np.asarray([v for v in values if v is not None], dtype=np.float64)
    nan = int(np.isnan(x).sum())
    x = x[~np.isnan(x)]
    if len(x) == 0:
        return {"mean": None, "lo": None, "hi": None, "n": 0, "undefined": nan}
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), (n_boot, len(x)))].mean(1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return {"mean": float(x.mean()), "lo": float(lo), "hi": float(hi), "n": int(len(x)), "undefined": nan}


def _ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="stable")
    r = np.empty(len(x))
    r[order] = np.arange(len(x), dtype=np.float64)
    for v in np.unique(x):  # ties share their mean rank
        same = x == v
        r[same] = r[same].mean()
    return r


def spearman(a, b, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05) -> dict:
    """Spearman's rank correlation of paired values (pairs with a NaN or None dropped), with a
    percentile-bootstrap CI that resamples the pairs (the units): {rho, lo, hi, n}. Resamples whose
    ranks are all tied (rho undefined) are left out of the CI; lo and hi are None below 3 pairs."""
    pairs = [(float(x), float(y)) for x, y in zip(a, b) if x is not None and y is not None
             and not (math.isnan(float(x)) or math.isnan(float(y)))]
    none = {"rho": None, "lo": None, "hi": None, "n": len(pairs)}
    if len(pairs) < 3:
        return none
    x, y = (np.array(v) for v in zip(*pairs))
    rx, ry = _ranks(x), _ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return none
    rho = float(np.corrcoef(rx, ry)[0, 1])
    idx = np.random.default_rng(seed).integers(0, len(x), (n_boot, len(x)))
    boot = _rank_corr(rankdata(x[idx], axis=1), rankdata(y[idx], axis=1))
    boot = boot[np.isfinite(boot)]
    lo, hi = np.quantile(boot, [alpha / 2, 1 - alpha / 2]) if len(boot) else (np.nan, np.nan)
    return {"rho": rho, "lo": float(lo), "hi": float(hi), "n": len(pairs)}


def _rank_corr(rx: np.ndarray, ry: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row pair of ranks [n_boot, n] (NaN where a row is constant)."""
    dx, dy = rx - rx.mean(1, keepdims=True), ry - ry.mean(1, keepdims=True)
    den = np.sqrt((dx * dx).sum(1) * (dy * dy).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (dx * dy).sum(1) / np.where(den > 0, den, 1), np.nan)


def pick_across_densities(density: np.ndarray, eligible: np.ndarray, n: int) -> list[int]:
    """n eligible unit ids spread evenly over the order of their firing densities."""
    ids = np.flatnonzero(eligible)
    if len(ids) <= n:
        return ids.tolist()
    ids = ids[np.argsort(density[ids], kind="stable")]
    return sorted(ids[np.unique(np.linspace(0, len(ids) - 1, n).round().astype(int))].tolist())

"""Detection, in the style of delphi (Paulo et al. 2024): can the explanation tell held-out
contexts where the feature fires from contexts where it does not?

Each held-out example (a context of `example_len` tokens, top or random) gets the explanation's
verdict: its largest simulated activation. It is a firing context when its largest TRUE activation
exceeds `threshold` (a fraction of the feature's train max; see ScoringConfig.fire_frac). The
score is the AUROC of the verdicts against those labels: 1 = every firing context ranked above
every silent one, 0.5 = chance. Computed exactly from ranks (the Mann-Whitney U statistic, ties
counted half), as sklearn's roc_auc_score does, at a fraction of its per-call cost."""

from __future__ import annotations

import numpy as np
import torch


def detection_auroc(
    sim: torch.Tensor,  # [n, L] simulated activations
    acts: torch.Tensor,  # [n, L] true activations
    valid: torch.Tensor,  # [n, L] bool
    threshold: float,
) -> tuple[float | None, int, int]:
    """(AUROC or None when only one class is present, n firing contexts, n silent contexts)."""
    low = torch.finfo(torch.float32).min
    verdict = torch.where(valid, sim.float(), low).amax(1)
    fires = torch.where(valid, acts.float(), low).amax(1) > threshold
    n_pos = int(fires.sum())
    n_neg = len(fires) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None, n_pos, n_neg
    return auroc(verdict.numpy(), fires.numpy()), n_pos, n_neg


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """P(score of a random positive > score of a random negative), ties counted half."""
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2)[inverse]  # 1-based, ties share their average rank
    pos = labels.astype(bool)
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))

"""The lexical ceiling: how much of a unit's held-out variance token identity, and (previous token,
token) identity, can explain at best.

    from analyses.lexical import lexical_ceiling, summarize_ceiling
    c = lexical_ceiling(acts, tokens)          # acts [W, ctx, F] (or [n, F]), tokens [W, ctx] (or [n])
    c["bigram"]                                # [F] R^2 of the best bigram lookup table, fit on these tokens
    summarize_ceiling(c, n_boot=1000)          # JSON: mean and 95% CI of each, undefined counts

A token explainer (analyses/scoring/explain.py) can only predict a unit's activation from the token
and the one before it. So whatever it scores, it cannot beat the unit's best lookup table from those
identities. The ceiling is that table's R^2, fit on the held-out set itself: each token predicted by
the mean activation of its group on the held-out tokens (the least-squares best predictor that is a
function of the group), R^2 = 1 - SSE / SST = the between-group share of the variance.

Groups:
- `token`: the token id.
- `bigram`: (previous token, token). A window's (or document's) first token has no previous token,
  so it forms the bigram (start, token).

Sparse groups. A group seen once is predicted perfectly by its own mean, so an in-sample table
over rare bigrams says "explains everything" about noise. We back off: a group seen fewer than
`min_count` times (default 2) is predicted by its parent, so a rare bigram by its token's mean and a
rare token by the overall mean (a rare bigram whose token is also rare ends at the overall mean).
Even with back-off, the in-sample R^2 is optimistic by about (number of groups - 1) / (n - 1) for a
unit with no lexical structure, so we also give:
- `*_loo`: leave-one-out R^2: each token predicted from the OTHER tokens of its group (its back-off
  parent when it is alone in its group). An honest out-of-sample estimate; it can be negative.
- `*_adj`: epsilon-squared, the ANOVA bias correction (SS_between - (k - 1) MS_within) / SS_total
  over the k groups that remain after back-off, which is about unbiased for the population share.
The in-sample value (`token`, `bigram`) is the ceiling "at best"; read it with the other two beside.

A unit constant on the held-out tokens has no variance to explain: its values are NaN and it is
counted as undefined. `valid` [same shape as tokens] drops tokens (e.g. BOS) from every sum; a
dropped token still counts as the previous token of the next one.

Cost: one sparse (groups x tokens) matrix product per grouping and chunk of `chunk` units."""

from __future__ import annotations

import numpy as np
from safetensors.numpy import load_file
from scipy import sparse

from interp.errors import InterpError

START = -1  # the "previous token" of a window's first token


def _flatten(acts, tokens, starts, valid):
    acts = np.asarray(acts)
    tokens = np.asarray(tokens)
    if acts.ndim == 3:  # windows: [W, ctx, F] with tokens [W, ctx]
        if tokens.shape != acts.shape[:2]:
            raise InterpError(f"activations {tuple(acts.shape)} and tokens {tuple(tokens.shape)} do not have the same windows.")
        W, ctx, F = acts.shape
        first = np.zeros((W, ctx), dtype=bool)
        first[:, 0] = True
        starts = first if starts is None else (first | np.asarray(starts, dtype=bool).reshape(W, ctx))
        acts, tokens, starts = acts.reshape(W * ctx, F), tokens.reshape(-1), starts.reshape(-1)
        valid = None if valid is None else np.asarray(valid, dtype=bool).reshape(-1)
    elif acts.ndim == 2:
        if tokens.shape != (acts.shape[0],):
            raise InterpError(f"activations {tuple(acts.shape)} need one token id per row, not tokens of shape {tuple(tokens.shape)}.")
        starts = np.zeros(len(tokens), dtype=bool) if starts is None else np.asarray(starts, dtype=bool).ravel()
        if len(starts):
            starts[0] = True
        valid = None if valid is None else np.asarray(valid, dtype=bool).ravel()
    else:
        raise InterpError(f"activations must be [tokens, units] or [windows, ctx, units], not of shape {tuple(acts.shape)}.")
    if len(starts) != len(tokens) or (valid is not None and len(valid) != len(tokens)):
        raise InterpError("starts and valid need one entry per token.")
    prev = np.empty_like(tokens, dtype=np.int64)
    prev[1:] = tokens[:-1]
    prev[starts] = START
    if valid is not None:
        acts, tokens, prev = acts[valid], tokens[valid], prev[valid]
    if len(tokens) < 2:
        raise InterpError(f"the lexical ceiling needs at least 2 tokens, not {len(tokens)}.")
    return acts, tokens.astype(np.int64), prev


def _group_ids(keys: np.ndarray) -> tuple[np.ndarray, int]:
    """(group of each row [n], number of groups) for rows of an [n] or [n, 2] int key."""
    _, inv = np.unique(keys, axis=0 if keys.ndim == 2 else None, return_inverse=True)
    inv = inv.ravel()
    return inv, int(inv.max()) + 1


def _sums(groups: np.ndarray, k: int, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's group sum [n, f] and group size [n] (one sparse product)."""
    n = len(groups)
    M = sparse.csr_matrix((np.ones(n), (groups, np.arange(n))), shape=(k, n))
    size = np.bincount(groups, minlength=k).astype(np.float64)
    return (M @ a)[groups], size[groups]


def _r2(levels: list[tuple[np.ndarray, int]], A: np.ndarray, min_count: int, chunk: int):
    """In-sample, leave-one-out and epsilon-squared R^2 [F] of the backed-off group-means predictor:
    each row takes the mean of its group at the first level (finest first) where that group has at
    least min_count rows, else the overall mean. Also returns how many rows each level predicted."""
    n, F = A.shape
    sizes = [np.bincount(g, minlength=k)[g] for g, k in levels]
    # the level that predicts each row (len(levels) = the overall mean)
    use = np.full(n, len(levels))
    for i in reversed(range(len(levels))):
        use[sizes[i] >= min_count] = i
    # leave one out: the finest level where the group has another row of the data, else the overall mean
    use_loo = np.full(n, len(levels))
    for i in reversed(range(len(levels))):
        use_loo[(sizes[i] >= min_count) & (sizes[i] >= 2)] = i
    # the number of distinct prediction groups, for epsilon-squared
    k_pred = sum(len(np.unique(levels[i][0][use == i])) for i in range(len(levels))) + int((use == len(levels)).any())
    out = [np.empty(F) for _ in range(3)]
    for c0 in range(0, F, chunk):
        a = A[:, c0:c0 + chunk].astype(np.float64)
        total = a.sum(axis=0)
        mu = total / n
        sst = ((a - mu) ** 2).sum(axis=0)
        pred = np.broadcast_to(mu, a.shape).copy()
        loo = (total - a) / (n - 1)
        for i, (g, k) in enumerate(levels):
            s, m = _sums(g, k, a)
            pred[use == i] = (s / m[:, None])[use == i]
            sel = use_loo == i
            loo[sel] = (s[sel] - a[sel]) / (m[sel, None] - 1)
        sse = ((a - pred) ** 2).sum(axis=0)
        sse_loo = ((a - loo) ** 2).sum(axis=0)
        msw = sse / (n - k_pred) if n > k_pred else np.full_like(sse, np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            defined = sst > 1e-12 * np.maximum(1.0, (a ** 2).sum(axis=0))
            out[0][c0:c0 + chunk] = np.where(defined, 1 - sse / sst, np.nan)
            out[1][c0:c0 + chunk] = np.where(defined, 1 - sse_loo / sst, np.nan)
            out[2][c0:c0 + chunk] = np.where(defined, (sst - sse - (k_pred - 1) * msw) / sst, np.nan)
    return out, np.bincount(use, minlength=len(levels) + 1)


def lexical_ceiling(acts, tokens, starts=None, valid=None, min_count: int = 2, chunk: int = 256) -> dict:
    """Per unit, the R^2 of the token and bigram lookup tables on these tokens (see the module doc).
    acts: [n, F] with tokens [n] (starts [n] True where a document begins), or [W, ctx, F] with
    tokens [W, ctx] (each window starts a document). Returns numpy arrays [F]: token, token_loo,
    token_adj, bigram, bigram_loo, bigram_adj, variance; and counts: n_tokens, n_token_groups,
    n_bigram_groups, n_backed_off_bigram_tokens, n_backed_off_token_tokens, min_count."""
    if min_count < 1:
        raise InterpError(f"min_count must be at least 1, not {min_count}.")
    A, tok, prev = _flatten(acts, tokens, starts, valid)
    token = _group_ids(tok)
    bigram = _group_ids(np.stack([prev, tok], axis=1))
    out = {}
    (out["token"], out["token_loo"], out["token_adj"]), by_tok = _r2([token], A, min_count, chunk)
    (out["bigram"], out["bigram_loo"], out["bigram_adj"]), by_big = _r2([bigram, token], A, min_count, chunk)
    out["variance"] = A.astype(np.float64).var(axis=0)
    out |= {"n_tokens": len(tok), "n_token_groups": token[1], "n_bigram_groups": bigram[1],
            "n_backed_off_token_tokens": int(by_tok[1]), "n_backed_off_bigram_tokens": int(by_big[1] + by_big[2]),
            "min_count": min_count}
    return out


def summarize_ceiling(ceiling: dict, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05) -> dict:
    """JSON: for each quantity, the mean over defined units with a percentile-bootstrap CI over units,
    the number defined and undefined (constant units), plus the counts of lexical_ceiling."""
    rng = np.random.default_rng(seed)
    out = {}
    for key in ("token", "token_loo", "token_adj", "bigram", "bigram_loo", "bigram_adj"):
        v = np.asarray(ceiling[key], dtype=np.float64)
        d = v[np.isfinite(v)]
        if len(d) == 0:
            out[key] = {"mean": None, "ci95": [None, None], "n": 0, "n_undefined": len(v)}
            continue
        boot = d[rng.integers(0, len(d), (n_boot, len(d)))].mean(axis=1)
        lo, hi = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
        out[key] = {"mean": float(d.mean()), "ci95": [float(lo), float(hi)], "n": len(d), "n_undefined": int(len(v) - len(d))}
    out |= {k: ceiling[k] for k in ("n_tokens", "n_token_groups", "n_bigram_groups", "n_backed_off_token_tokens",
                                    "n_backed_off_bigram_tokens", "min_count")}
    return out


def per_unit(ceiling: dict) -> list[dict]:
    """[{token, token_loo, bigram, bigram_loo, ...}] one dict per unit, NaN as None (JSON)."""
    keys = ("token", "token_loo", "token_adj", "bigram", "bigram_loo", "bigram_adj")
    F = len(ceiling["token"])
    return [{k: (None if not np.isfinite(ceiling[k][j]) else float(ceiling[k][j])) for k in keys} for j in range(F)]


def ceiling_of_file(path, windows, valid=None, min_count: int = 2) -> dict:
    """lexical_ceiling of a scored basis's heldout_acts.safetensors (analyses/scoring/results.py:
    {"features" [F], "acts" [W, ctx, F]}) on the held-out windows [W, ctx] it was recorded from;
    the result also holds "features" [F], the unit ids in the order of the arrays."""
    d = load_file(str(path))
    out = lexical_ceiling(d["acts"], np.asarray(windows), valid=valid, min_count=min_count)
    out["features"] = d["features"]
    return out

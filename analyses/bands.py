"""Activation histograms and examples sampled from activation bands, for many features in ONE pass.

Bands are the equal-width intervals of [0, max] (Anthropic's "subsample intervals"), but the max is
only known once the pass is over. This module needs no second pass:

- Histogram. Feature f's firing activations (> 0) are counted in `n_bins` bins of width 2**e_f,
  e_f the smallest integer with n_bins * 2**e_f >= the max seen so far; so the max always lies in
  the upper half of the grid (at least n_bins / 2 bins are in use). When the max outgrows the grid,
  e_f rises and bins merge 2, 4, ... at a time: counts add, so the histogram stays exact.
- Samples. Every firing token draws a random key; each (feature, bin) keeps the `per_bin` tokens
  with the smallest keys among all tokens that ever fell in it (priority sampling). Those are a
  uniform sample without replacement of the bin, and stay so through merges: the m smallest keys
  of a union are among the m smallest of each part. At the end a band is a run of whole bins, and
  its uniform sample is the m smallest keys over its bins' keepers.

The price is that band edges fall on bin edges: at most half a bin (max / n_bins) from the exact
fraction of the max. The edges reported are the true ones, so nothing shown is misstated."""

from __future__ import annotations

import torch

NEVER = -(1 << 20)  # the exponent of a feature that has not fired yet


def window_contexts(
    z: torch.Tensor,  # [w, ctx, F] feature activations of one batch of windows
    win: torch.Tensor,  # [...] window within the batch
    pos: torch.Tensor,  # [...] position within the window
    feat: torch.Tensor,  # [...] column of z
    before: int,
    length: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(start [...], acts [..., length]): `length` tokens around each (win, pos), kept inside its
    window (the model saw nothing across a window's edge), and feature `feat`'s activations on them."""
    w, ctx, F = z.shape
    start = (pos - before).clamp(min=0).clamp(max=ctx - length)
    rows = (win * ctx + start).unsqueeze(-1) + torch.arange(length)  # [..., length]
    return start, z.reshape(w * ctx, F)[rows, feat.unsqueeze(-1)]


def smallest_per_group(groups: torch.Tensor, keys: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Of entries (group, key), keys in [0, 1), the m with the smallest keys in each group:
    (which [K], slot [K]), `which` indexing the entries and `slot` their rank within their group."""
    order = torch.sort(groups.double() + keys.double()).indices  # by group, then key
    g = groups[order]
    n = len(g)
    first = torch.ones(n, dtype=torch.bool)
    first[1:] = g[1:] != g[:-1]
    arange = torch.arange(n)
    rank = arange - torch.cummax(torch.where(first, arange, 0), 0).values
    keep = rank < m
    return order[keep], rank[keep]


class BandSampler:
    """Exact per-feature histograms and per-bin priority samples, updated batch by batch."""

    FIELDS = ("value", "index", "start", "acts")

    def __init__(self, n_features: int, n_bins: int, per_bin: int, before: int, length: int, generator: torch.Generator):
        self.F, self.n_bins, self.m, self.before, self.length = n_features, n_bins, per_bin, before, length
        self.gen = generator
        G = n_features * n_bins
        self.exp = torch.full((n_features,), NEVER, dtype=torch.int64)
        self.counts = torch.zeros(n_features, n_bins, dtype=torch.int64)
        self.keys = torch.full((G, per_bin), float("inf"))
        self.thresh = torch.full((G,), float("inf"))  # largest key of each bin's keepers (inf: room left)
        self.store = {
            "value": torch.zeros(G, per_bin),
            "index": torch.full((G, per_bin), -1, dtype=torch.int64),  # global token index of the example
            "start": torch.full((G, per_bin), -1, dtype=torch.int64),  # global token index of its context's start
            "acts": torch.zeros(G, per_bin, length, dtype=torch.float16),  # the feature on the context
        }

    # -- the grid ----------------------------------------------------------------------------
    def _grow(self, fmax: torch.Tensor) -> None:
        """Raise each feature's bin width to cover `fmax` [F], merging bins (counts and samples)."""
        fired = fmax > 0
        need = torch.ceil(torch.log2(fmax.clamp(min=1e-30) / self.n_bins)).to(torch.int64)
        # log2 may round either way: fix to the smallest e with n_bins * 2**e >= fmax
        need += (self.n_bins * torch.pow(2.0, need.double()) < fmax.double()).long()
        need -= (self.n_bins * torch.pow(2.0, need.double() - 1) >= fmax.double()).long()
        new = torch.where(fired, torch.maximum(self.exp, need), self.exp)
        grew = (new > self.exp) & (self.exp != NEVER)
        feats = grew.nonzero().flatten()
        if len(feats):
            shift = (new[feats] - self.exp[feats]).clamp(max=62)
            self._merge(feats, shift)
        self.exp = new

    def _merge(self, feats: torch.Tensor, shift: torch.Tensor) -> None:
        nb, m = self.n_bins, self.m
        new_bin = torch.bitwise_right_shift(torch.arange(nb).unsqueeze(0), shift.unsqueeze(1))  # [Fc, nb]
        counts = torch.zeros(len(feats), nb, dtype=torch.int64)
        self.counts[feats] = counts.scatter_add_(1, new_bin, self.counts[feats])
        groups = (feats.unsqueeze(1) * nb + torch.arange(nb)).flatten()  # [Fc * nb] the rows involved
        slots = (groups.unsqueeze(1) * m + torch.arange(m)).flatten()  # flat (group, slot) entries
        keys = self.keys.view(-1)[slots]
        live = torch.isfinite(keys)
        slots, keys = slots[live], keys[live]
        target = (feats.unsqueeze(1) * nb + new_bin).flatten().repeat_interleave(m)[live]
        payload = {k: v.view(-1, *v.shape[2:])[slots] for k, v in self.store.items()}
        self._refill(groups, target, keys, payload)

    def _refill(self, reset: torch.Tensor, groups: torch.Tensor, keys: torch.Tensor, payload: dict) -> None:
        """Empty the rows `reset`, then keep the m smallest-key entries of each group among those given."""
        self.keys[reset] = float("inf")
        which, slot = smallest_per_group(groups, keys, self.m)
        g = groups[which]
        self.keys[g, slot] = keys[which]
        for k, v in self.store.items():
            v[g, slot] = payload[k][which]
        self.thresh[reset] = self.keys[reset].max(dim=1).values

    # -- one batch -----------------------------------------------------------------------------
    def update(self, z: torch.Tensor, row: torch.Tensor, col: torch.Tensor, value: torch.Tensor, fmax: torch.Tensor, first_token: int) -> None:
        """z [w, ctx, F] activations of windows whose first token has global index `first_token`;
        (row, col, value) its entries > 0, row indexing z's tokens; fmax [F] the max so far, this
        batch included."""
        self._grow(fmax)
        if len(row) == 0:
            return
        w, ctx, F = z.shape
        m = self.m
        bins = torch.floor(value.double() / torch.pow(2.0, self.exp[col].double())).long().clamp(0, self.n_bins - 1)
        group = col * self.n_bins + bins
        self.counts.view(-1).add_(torch.bincount(group, minlength=self.F * self.n_bins))

        key = torch.rand(len(row), generator=self.gen)
        cand = (key < self.thresh[group]).nonzero().flatten()  # a full bin takes only keys below its largest
        if len(cand) == 0:
            return
        # this batch's m smallest keys per bin, as a dense [T, m] table beside the bins' keepers
        which, rank = smallest_per_group(group[cand], key[cand], m)
        cand = cand[which]
        touched, t_of = torch.unique_consecutive(group[cand], return_inverse=True)
        T = len(touched)
        new_keys = torch.full((T, m), float("inf"))
        new_keys[t_of, rank] = key[cand]
        new_src = torch.full((T, m), -1, dtype=torch.int64)
        new_src[t_of, rank] = cand
        kv, ki = torch.cat([self.keys[touched], new_keys], 1).topk(m, dim=1, largest=False)  # the m survivors
        # new survivors take the slots of the evicted keepers (pairing the i-th with the i-th)
        kept_new = torch.zeros(T, 2 * m, dtype=torch.bool).scatter_(1, ki, torch.isfinite(kv))[:, m:]
        evicted = torch.ones(T, 2 * m, dtype=torch.bool).scatter_(1, ki, False)[:, :m]
        n_new = kept_new.sum(1)
        ev_slot = torch.sort(evicted.to(torch.int8), dim=1, descending=True, stable=True).indices
        new_col = torch.sort(kept_new.to(torch.int8), dim=1, descending=True, stable=True).indices
        t, i = (torch.arange(m).unsqueeze(0) < n_new.unsqueeze(1)).nonzero(as_tuple=True)
        g, slot, j = touched[t], ev_slot[t, i], new_col[t, i]
        src = new_src[t, j]
        self.keys[g, slot] = new_keys[t, j]
        r, c = row[src], col[src]
        win, pos = r // ctx, r % ctx
        start, acts = window_contexts(z, win, pos, c, self.before, self.length)
        self.store["value"][g, slot] = value[src]
        self.store["index"][g, slot] = first_token + r
        self.store["start"][g, slot] = first_token + win * ctx + start
        self.store["acts"][g, slot] = acts.to(torch.float16)
        self.thresh[touched] = self.keys[touched].max(dim=1).values

    # -- the end ---------------------------------------------------------------------------------
    def bands(self, fmax: torch.Tensor, n_bands: int) -> dict[str, torch.Tensor]:
        """Bands of [0, max] as runs of bins, each with its exact count and a uniform sample."""
        F, nb, m = self.F, self.n_bins, self.m
        width = torch.where(self.exp == NEVER, 0.0, torch.pow(2.0, self.exp.double())).float()  # [F]
        top_bin = torch.where(width > 0, torch.floor(fmax / width.clamp(min=1e-30)).long().clamp(max=nb - 1), 0) + 1
        frac = torch.arange(n_bands + 1) / n_bands
        in_bins = torch.where(width > 0, fmax / width.clamp(min=1e-30), 0.0)  # the max, in bins
        edges_bin = torch.round(frac.unsqueeze(0) * in_bins.unsqueeze(1)).long()  # [F, n_bands + 1]
        edges_bin[:, -1] = top_bin  # the last band ends with the max's bin
        band_of_bin = (torch.arange(nb).unsqueeze(0).unsqueeze(2) >= edges_bin[:, None, 1:]).sum(-1)  # [F, nb]
        keys = self.keys.view(F, nb, m)
        out = {k: [] for k in self.FIELDS}
        for b in range(n_bands):
            masked = torch.where((band_of_bin == b).unsqueeze(2), keys, float("inf")).view(F, nb * m)
            kv, ki = masked.topk(m, dim=1, largest=False)  # [F, m]
            flat_slot = torch.arange(F).unsqueeze(1) * nb * m + ki
            for k, v in self.store.items():
                got = v.view(F * nb * m, *v.shape[2:])[flat_slot]
                if k == "value":
                    got = torch.where(torch.isfinite(kv), got, 0.0)
                elif k != "acts":
                    got = torch.where(torch.isfinite(kv), got, -1)
                out[k].append(got)
        res = {f"band_{k}": torch.stack(v, dim=1) for k, v in out.items()}  # [F, n_bands, m, ...]
        # sort each band's sample by value, largest first, empty slots (value 0) last
        order = res["band_value"].argsort(dim=2, descending=True)
        for k, v in res.items():
            idx = order.view(*order.shape, *([1] * (v.dim() - 3))).expand_as(v)
            res[k] = v.gather(2, idx)
        counts = torch.zeros(F, n_bands, dtype=torch.int64).scatter_add_(1, band_of_bin.clamp(max=n_bands - 1), self.counts)
        res["band_count"] = counts
        edges = edges_bin.float() * width.unsqueeze(1)
        edges[:, -1] = fmax  # nothing lies above the max: say so rather than name the bin's edge
        res["band_edges"] = edges
        res["hist_count"] = self.counts
        res["hist_width"] = width
        return res

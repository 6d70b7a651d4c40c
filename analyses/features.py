"""Per-feature statistics over a corpus, for every feature at once, in ONE streaming pass.

For each batch of windows the dictionary encodes the activations once ([tokens, n_features]) and
every statistic is updated from that one matrix, vectorised over features:

- density, mean and max: running counts and sums;
- top examples: each window is cut into stretches of `top_span` tokens and each stretch offers
  its peak, so a feature's list is not twenty views of one passage; a torch.topk over the
  batch's stretches merges with the running top-k;
- histogram and band samples: analyses/bands.py (exact, one pass, no need to know the max first);
- every example keeps its context (the window's tokens around it, never across the window's edge)
  with the feature's activation on each of those tokens.

Logit effects and neighbours depend on weights only: see analyses/logits.py. `FeatureStats` holds
it all and is saved as `features.safetensors` plus `features.json`."""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

import torch
from safetensors.torch import load_file

from analyses.bands import BandSampler, window_contexts
from analyses.dictionary import Dictionary
from interp.errors import InterpError
from interp.files import write_safetensors_atomic, write_text_atomic
from interp.sites import parse_ranges

STATS_FILE = "features.safetensors"
META_FILE = "features.json"


@dataclass
class FeatureStatsConfig:
    n_top: int = 20  # top activating examples per feature
    top_span: int = 64  # at most one top example per stretch of this many tokens of a window
    ctx_before: int = 15  # tokens of context shown before an example's token
    ctx_after: int = 5  # and after it
    n_bands: int = 10  # equal-width activation bands of [0, max]
    per_band: int = 5  # examples sampled from each band
    n_bins: int = 64  # histogram bins (at least half of them below the max)
    # interp's windows start with BOS, where activations are outliers (an attention sink) that
    # would crowd every top list: leave position 0 out of all statistics
    ignore_first: bool = True
    n_logits: int = 10  # top and bottom tokens of each feature's logit effect
    n_neighbours: int = 10  # nearest features by decoder cosine
    seed: int = 0


@dataclass
class FeatureStats:
    """Tensors indexed by the position of a feature in `features` (not by its id)."""

    features: torch.Tensor  # [F] int64 feature ids in the dictionary
    tensors: dict[str, torch.Tensor]  # name -> [F, ...]
    meta: dict = field(default_factory=dict)

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.tensors[name]

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        write_safetensors_atomic(folder / STATS_FILE, {"features": self.features, **self.tensors})
        write_text_atomic(folder / META_FILE, json.dumps(self.meta, indent=1))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> FeatureStats:
        folder = Path(folder)
        if not (folder / STATS_FILE).exists():
            raise InterpError(f"{folder} holds no {STATS_FILE}; compute feature statistics first (interp dashboard).")
        t = load_file(str(folder / STATS_FILE))
        return cls(features=t.pop("features"), tensors=t, meta=json.loads((folder / META_FILE).read_text()))


class TopExamples:
    """The running top-k examples of every feature, with their contexts."""

    def __init__(self, n_features: int, k: int, span: int, before: int, length: int):
        self.k, self.span, self.before, self.length = k, span, before, length
        self.value = torch.full((n_features, k), float("-inf"))
        self.index = torch.full((n_features, k), -1, dtype=torch.int64)
        self.start = torch.full((n_features, k), -1, dtype=torch.int64)
        self.acts = torch.zeros(n_features, k, length, dtype=torch.float16)

    def update(self, z: torch.Tensor, row: torch.Tensor, col: torch.Tensor, value: torch.Tensor, first_token: int) -> None:
        """z [w, ctx, F]; (row, col, value) its entries > 0 (row indexes z's tokens)."""
        w, ctx, F = z.shape
        span = min(self.span, ctx)
        n_sp = -(-ctx // span)
        # each stretch's peak, from the firing entries only: [w * n_sp, F]
        cell = ((row // ctx) * n_sp + (row % ctx) // span) * F + col
        peak = torch.zeros(w * n_sp * F).scatter_reduce_(0, cell, value, "amax")
        at = cell[value == peak[cell]]
        peak_row = torch.zeros(w * n_sp * F, dtype=torch.int64).scatter_(0, at, row[value == peak[cell]])
        v, i = peak.view(w * n_sp, F).topk(min(self.k, w * n_sp), dim=0)  # [k', F]
        r = peak_row.view(w * n_sp, F).gather(0, i)
        v, r = v.T, r.T  # [F, k]
        sel = (v[:, 0] > self.value[:, -1]).nonzero().flatten()  # features this batch can improve
        if len(sel) == 0:
            return
        v, r = torch.where(v[sel] > 0, v[sel], float("-inf")), r[sel]  # only firing tokens are examples
        win, pos = r // ctx, r % ctx
        k = self.k
        value = torch.cat([self.value[sel], v], 1)  # [S, k + k']
        best = value.topk(k, dim=1).indices  # [S, k], sorted largest first
        new = best >= k
        index = torch.cat([self.index[sel], first_token + r], 1).gather(1, best)
        acts = self.acts[sel].gather(1, best.clamp(max=k - 1).unsqueeze(2).expand(-1, -1, self.length))
        starts = self.start[sel].gather(1, best.clamp(max=k - 1))
        # contexts only for the batch's examples that made it into the top k
        s_i, j = new.nonzero(as_tuple=True)
        c = best[s_i, j] - k
        start, ctx_acts = window_contexts(z, win[s_i, c], pos[s_i, c], sel[s_i], self.before, self.length)
        starts[s_i, j] = first_token + win[s_i, c] * ctx + start
        acts[s_i, j] = ctx_acts.to(torch.float16)
        self.value[sel] = value.gather(1, best)
        self.index[sel] = index
        self.start[sel] = starts
        self.acts[sel] = acts


class FeatureStatsAccumulator:
    """Feed batches of feature activations in corpus order; `finish()` gives FeatureStats."""

    def __init__(self, features: torch.Tensor, context_size: int, cfg: FeatureStatsConfig = FeatureStatsConfig()):
        self.features, self.ctx, self.cfg = features, context_size, cfg
        F = len(features)
        self.length = min(cfg.ctx_before + 1 + cfg.ctx_after, context_size)
        self.count = torch.zeros(F, dtype=torch.int64)
        self.sum = torch.zeros(F, dtype=torch.float64)
        self.max = torch.zeros(F)
        self.top = TopExamples(F, cfg.n_top, cfg.top_span, cfg.ctx_before, self.length)
        gen = torch.Generator().manual_seed(cfg.seed)
        self.bands = BandSampler(F, cfg.n_bins, cfg.per_band, cfg.ctx_before, self.length, gen)
        self.tokens: list[torch.Tensor] = []  # [w, ctx] int32 per batch: contexts are read back at the end
        self.n_windows = 0

    def update(self, tokens: torch.Tensor, z: torch.Tensor) -> None:
        """tokens [w, ctx]; z [w, ctx, F] the selected features' activations (may be modified)."""
        if self.cfg.ignore_first:
            z[:, 0] = 0
        first = self.n_windows * self.ctx
        flat = z.view(-1, z.shape[-1])
        row, col = (flat > 0).nonzero(as_tuple=True)  # everything below works from the firing entries
        value = flat[row, col]
        self.count += torch.bincount(col, minlength=flat.shape[1])
        self.sum.index_add_(0, col, value.double())
        self.max = torch.maximum(self.max, torch.zeros_like(self.max).scatter_reduce_(0, col, value, "amax"))
        self.top.update(z, row, col, value, first)
        self.bands.update(z, row, col, value, self.max, first)
        self.tokens.append(tokens.to(torch.int32))
        self.n_windows += len(tokens)

    def finish(self) -> FeatureStats:
        cfg = self.cfg
        corpus = torch.cat(self.tokens).view(-1) if self.tokens else torch.zeros(0, dtype=torch.int32)
        n_tokens = self.n_windows * (self.ctx - int(cfg.ignore_first))
        span = torch.arange(self.length)

        def context_tokens(start: torch.Tensor) -> torch.Tensor:  # [...] -> [..., length]
            return torch.where(start.unsqueeze(-1) >= 0, corpus[(start.clamp(min=0).unsqueeze(-1) + span).clamp(max=max(len(corpus) - 1, 0))], -1)

        fired = self.top.value > float("-inf")
        t = {
            "count": self.count,
            "density": self.count.double() / max(n_tokens, 1),
            "mean": (self.sum / self.count.clamp(min=1)).float(),
            "max": self.max.clamp(min=0),
            "top_value": torch.where(fired, self.top.value, 0.0),
            "top_index": torch.where(fired, self.top.index, -1),
            "top_start": torch.where(fired, self.top.start, -1),
            "top_acts": self.top.acts,
        }
        t["top_tokens"] = context_tokens(t["top_start"])
        t.update(self.bands.bands(self.max, cfg.n_bands))
        t["band_tokens"] = context_tokens(t["band_start"])
        meta = {"n_tokens": n_tokens, "n_windows": self.n_windows, "context_size": self.ctx,
                "context_length": self.length, "config": asdict(cfg)}
        return FeatureStats(features=self.features, tensors=t, meta=meta)


@contextmanager
def single_thread():
    """The bookkeeping is many small memory-bound ops: extra threads gain little there, and when
    other processes share the cores every op waits for a descheduled sibling."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def parse_features(spec: str | None, n_features: int) -> torch.Tensor:
    """'all', '0-99', '1,5,9' or a mix like '0-9,42' -> sorted unique ids [F] int64."""
    if spec is None or spec.strip() == "all":
        return torch.arange(n_features)
    try:
        ids = parse_ranges(spec, skip_empty=True)
    except ValueError:
        raise InterpError(f"cannot read features {spec!r}: use 'all', a range like '0-99' or a list like '1,5,9'.") from None
    bad = [i for i in ids if not 0 <= i < n_features]
    if bad or not ids:
        raise InterpError(f"feature {bad[0] if bad else spec!r} does not exist: this dictionary has features 0 to {n_features - 1}.")
    return torch.tensor(sorted(set(ids)), dtype=torch.int64)


def compute_feature_stats(
    dictionary: Dictionary,
    batches: Iterable[tuple[torch.Tensor, dict[str, torch.Tensor]]],  # (tokens [w, ctx], {hook: acts [w, ctx, d]})
    features: torch.Tensor | None = None,  # ids to keep; None = all
    cfg: FeatureStatsConfig = FeatureStatsConfig(),
    device: torch.device | str | None = None,
    progress=None,  # optional callable(n_tokens_done)
) -> FeatureStats:
    """The one streaming pass: encode each batch once and update every feature's statistics."""
    device = torch.device(device or "cpu")
    ids = torch.arange(dictionary.n_features) if features is None else features
    select = None if len(ids) == dictionary.n_features and bool((ids == torch.arange(len(ids))).all()) else ids.to(device)
    acc = None
    t0 = time.perf_counter()
    with torch.no_grad():
        for tokens, acts in batches:
            x = acts[dictionary.hook_name]
            w, ctx, d = x.shape
            if acc is None:
                acc = FeatureStatsAccumulator(ids, ctx, cfg)
            z = dictionary.encode(x.reshape(w * ctx, d).to(device))
            z = z.index_select(1, select) if select is not None else z
            if z.data_ptr() == x.data_ptr() or not z.is_contiguous():  # identity dictionary: don't write into the cache's batch
                z = z.contiguous().clone()
            with single_thread():
                acc.update(tokens, z.float().cpu().view(w, ctx, -1))
            if progress:
                progress(w * ctx)
    if acc is None:
        raise InterpError("the activation source gave no tokens; record some with `interp record` or pass --tokens.")
    stats = acc.finish()
    stats.meta.update(hook_name=dictionary.hook_name, model_name=dictionary.model_name, kind=dictionary.kind,
                      n_features_total=dictionary.n_features, seconds_pass=round(time.perf_counter() - t0, 3))
    return stats

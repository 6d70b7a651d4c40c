"""Examples for scoring, gathered for many features at once in ONE streaming pass over a split.

An example is a stretch of `example_len` consecutive tokens of a window (position 0, the BOS
token, is left out, as in analyses/features.py; a window's last stretch may be shorter, and its
missing tokens are marked invalid). Stretches are numbered in corpus order: stretch s is stretch
s % n_per_window of window s // n_per_window, so an example is just an integer and its tokens are
read back from the split's windows.

Per split we keep, for every feature at once:
- top examples: the `n_top` stretches with the largest peak activation, among those that fire;
- random examples: `n_random` stretches SHARED by all features, the ones with the smallest keys
  under a fixed hash of (seed, split, stretch number). They depend only on the text and the seed,
  never on the features or the batching, so every layer of a model is scored on the same random
  held-out text (Bills et al.'s "random" examples);
- each feature's count of firing examples (stretches with an activation > 0): whether it is alive.

The true activations of every kept example are copied out while its batch is at hand, so no
second pass is needed."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Iterable

import numpy as np
import torch

from analyses.dictionary import Dictionary
from analyses.scoring.bands import BandCollector
from interp.errors import InterpError

SALTS = {"train": 1, "heldout": 2, "bands": 3}


def stretch_keys(sid: torch.Tensor, seed: int, salt: int) -> torch.Tensor:  # [n] int64 >= 0
    """A splitmix64 hash of each stretch number: a fixed pseudo-random order of the corpus."""
    x = sid.numpy().astype(np.uint64) + np.uint64((seed * 1_000_003 + salt) * 0x9E3779B97F4A7C15 % (1 << 64))
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    x = x ^ (x >> np.uint64(31))
    return torch.from_numpy((x >> np.uint64(1)).astype(np.int64))


@dataclass
class FeatureExamples:
    """One feature's examples of one split: its top ones first, then the shared random ones."""

    feature: int
    tokens: torch.Tensor  # [n, L] int64
    prev: torch.Tensor  # [n, L] int64 the token before each (the window's, across example edges)
    acts: torch.Tensor  # [n, L] true activations
    valid: torch.Tensor  # [n, L] bool: False past a window's end
    n_top: int  # rows [:n_top] are top examples, the rest random

    @property
    def n_random(self) -> int:
        return len(self.tokens) - self.n_top


@dataclass
class SplitExamples:
    """One split's examples for F features. Top tensors are per feature, random ones shared."""

    features: torch.Tensor  # [F] feature ids in the dictionary
    windows: torch.Tensor  # [W, ctx] int64: the split's token windows, in corpus order
    example_len: int
    count: torch.Tensor  # [F] int64 examples (stretches) where the feature fires (activation > 0)
    top_value: torch.Tensor  # [F, k] peak activation, -inf where fewer than k stretches fired
    top_sid: torch.Tensor  # [F, k] int64 stretch numbers, -1 where none
    top_acts: torch.Tensor  # [F, k, L] true activations on the stretch's tokens
    rand_sid: torch.Tensor  # [r] int64
    rand_acts: torch.Tensor  # [F, r, L]
    # band examples (analyses/scoring/bands.py), only when asked for: [F, B, m] and [F, B, m, L]
    band_sid: torch.Tensor | None = None
    band_acts: torch.Tensor | None = None
    all_acts: torch.Tensor | None = None  # [W, ctx, F] float16: every token's activation, only when asked for

    @property
    def per_window(self) -> int:
        return -(-(self.windows.shape[1] - 1) // self.example_len)

    @property
    def n_tokens(self) -> int:
        return self.windows.shape[0] * (self.windows.shape[1] - 1)

    @property
    def max(self) -> torch.Tensor:  # [F] the largest activation seen on the split (0 if none)
        return self.top_value[:, 0].clamp(min=0) if self.top_value.shape[1] else torch.zeros(len(self.features))

    def stretch_tokens(self, sid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(tokens, previous tokens, valid), each [..., L], of stretches `sid` [...] (all >= 0)."""
        ctx, L = self.windows.shape[1], self.example_len
        win, j = sid // self.per_window, sid % self.per_window
        pos = 1 + j.unsqueeze(-1) * L + torch.arange(L)  # [..., L]
        valid = pos < ctx
        pos = pos.clamp(max=ctx - 1)
        rows = win.unsqueeze(-1).expand_as(pos)
        return self.windows[rows, pos], self.windows[rows, pos - 1], valid

    @cached_property
    def _random_tokens(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.stretch_tokens(self.rand_sid)

    def feature(self, j: int, top: bool = True, random: bool = True) -> FeatureExamples:
        """The examples of the feature at position j (its top ones that fired, then the random ones)."""
        parts = []
        if top:
            sid = self.top_sid[j]
            have = sid >= 0
            parts.append((*self.stretch_tokens(sid[have]), self.top_acts[j][have]))
        if random:
            parts.append((*self._random_tokens, self.rand_acts[j]))
        tok, prev, valid, acts = (torch.cat(x) for x in zip(*parts))
        return FeatureExamples(int(self.features[j]), tok, prev, acts, valid, len(parts[0][0]) if top else 0)

    def band_examples(self, j: int) -> FeatureExamples | None:
        """The feature at position j's band examples (every band, silent one first), or None."""
        if self.band_sid is None:
            return None
        sid, acts = self.band_sid[j].flatten(), self.band_acts[j].flatten(0, 1)
        have = sid >= 0
        tok, prev, valid = self.stretch_tokens(sid[have])
        return FeatureExamples(int(self.features[j]), tok, prev, acts[have], valid, 0)

    def select(self, cols: torch.Tensor) -> SplitExamples:
        """The same examples for a subset of the features (`cols` index positions, not ids)."""
        bands = (None, None) if self.band_sid is None else (self.band_sid[cols], self.band_acts[cols])
        every = None if self.all_acts is None else self.all_acts[..., cols]
        return SplitExamples(self.features[cols], self.windows, self.example_len, self.count[cols], self.top_value[cols],
                             self.top_sid[cols], self.top_acts[cols], self.rand_sid, self.rand_acts[cols], *bands, every)


class ExampleCollector:
    """Feed batches of windows and their feature activations in corpus order; `finish()`."""

    def __init__(self, n_features: int, example_len: int, n_top: int, n_random: int, seed: int, split: str,
                 bands=None, keep_all: bool = False):
        if example_len < 1:
            raise InterpError(f"an example must be at least one token long, not {example_len}.")
        self.F, self.L, self.k, self.r = n_features, example_len, n_top, n_random
        self.seed, self.salt = seed, SALTS[split]
        self.count = torch.zeros(n_features, dtype=torch.int64)
        self.value = torch.full((n_features, n_top), float("-inf"))
        self.sid = torch.full((n_features, n_top), -1, dtype=torch.int64)
        self.acts = torch.zeros(n_features, n_top, example_len)
        self.rkey = torch.full((n_random,), torch.iinfo(torch.int64).max, dtype=torch.int64)
        self.rsid = torch.full((n_random,), -1, dtype=torch.int64)
        self.racts = torch.zeros(n_random, example_len, n_features)  # [r, L, F] while streaming
        self.windows: list[torch.Tensor] = []
        self.n_stretches = 0
        self.ctx: int | None = None
        self.bands = bands  # a BandCollector (analyses/scoring/bands.py) or None
        self.all: list[torch.Tensor] | None = [] if keep_all else None

    def update(self, tokens: torch.Tensor, z: torch.Tensor) -> None:
        """tokens [w, ctx]; z [w, ctx, F] the features' activations on them (only read)."""
        w, ctx, F = z.shape
        if self.ctx is None:
            self.ctx = ctx
        if ctx != self.ctx or ctx < 2:
            raise InterpError(f"windows of {ctx} tokens after windows of {self.ctx}: score one recording (one context size, at least 2) at a time.")
        L = self.L
        n_full, rem = divmod(ctx - 1, L)
        # each stretch's peak, from views of z: no padded copy of the batch
        peaks = [z[:, 1 : 1 + n_full * L].reshape(w, n_full, L, F).amax(2)] if n_full else []
        if rem:
            peaks.append(z[:, 1 + n_full * L :].amax(1, keepdim=True))
        peak = torch.cat(peaks, 1).reshape(-1, F)  # [S, F], S = w * stretches per window
        flat = z.reshape(w * ctx, F)
        self.count += (peak > 0).sum(0)
        self._update_top(peak, flat, ctx, self.n_stretches)
        self._update_random(peak.shape[0], flat, ctx, self.n_stretches)
        if self.bands is not None:
            sid = self.n_stretches + torch.arange(peak.shape[0])
            self.bands.update(peak, flat, lambda local: self._rows(local, ctx), stretch_keys(sid, self.seed, SALTS["bands"]), sid)
        self.windows.append(tokens.to(torch.int32))
        if self.all is not None:
            self.all.append(z.to(torch.float16))
        self.n_stretches += peak.shape[0]

    def _rows(self, local: torch.Tensor, ctx: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows of the batch's [w * ctx, F] matrix holding stretches `local` [...]: ([..., L], valid)."""
        n_sp = -(-(ctx - 1) // self.L)
        pos = 1 + (local % n_sp).unsqueeze(-1) * self.L + torch.arange(self.L)
        valid = pos < ctx
        return (local // n_sp).unsqueeze(-1) * ctx + pos.clamp(max=ctx - 1), valid

    def _update_top(self, peak: torch.Tensor, flat: torch.Tensor, ctx: int, first: int) -> None:
        k = min(self.k, peak.shape[0])
        if k == 0:
            return
        sel = (peak.amax(0) > self.value[:, -1]).nonzero().flatten()  # features this batch can improve
        if len(sel) == 0:
            return
        v, i = peak[:, sel].T.topk(k, dim=1)  # [|sel|, k]
        # only firing stretches that beat the feature's current k-th best can enter: copy just those
        enters = (v > 0) & (v > self.value[sel, -1:])
        v = torch.where(enters, v, float("-inf"))
        fs, cs = enters.nonzero(as_tuple=True)
        rows, valid = self._rows(i[fs, cs], ctx)  # [m, L]
        new_acts = torch.zeros(len(sel), k, self.L)
        new_acts[fs, cs] = torch.where(valid, flat[rows, sel[fs].unsqueeze(1)], 0.0)
        value = torch.cat([self.value[sel], v], 1)
        sid = torch.cat([self.sid[sel], torch.where(v > float("-inf"), first + i, -1)], 1)
        acts = torch.cat([self.acts[sel], new_acts], 1)
        best = value.topk(self.k, dim=1).indices  # [|sel|, k], largest first
        self.value[sel] = value.gather(1, best)
        self.sid[sel] = sid.gather(1, best)
        self.acts[sel] = acts.gather(1, best.unsqueeze(-1).expand(-1, -1, self.L))

    def _update_random(self, S: int, flat: torch.Tensor, ctx: int, first: int) -> None:
        r = min(self.r, S)
        if r == 0:
            return
        keys, i = stretch_keys(first + torch.arange(S), self.seed, self.salt).topk(r, largest=False)
        if keys[0] >= self.rkey.max():
            return
        rows, valid = self._rows(i, ctx)  # [r, L]
        acts = flat[rows] * valid.unsqueeze(-1)  # [r, L, F]
        allkeys = torch.cat([self.rkey, keys])
        keep = allkeys.topk(self.r, largest=False).indices  # smallest keys first
        self.rkey = allkeys[keep]
        self.rsid = torch.cat([self.rsid, first + i])[keep]
        self.racts = torch.cat([self.racts, acts])[keep]

    def finish(self, features: torch.Tensor) -> SplitExamples:
        if not self.windows:
            raise InterpError("the activation source gave no tokens; record some with `interp record`.")
        have = self.rsid >= 0
        if int(have.sum()) < self.r:  # fewer stretches in the whole split than random examples asked for
            self.rsid, self.racts = self.rsid[have], self.racts[have]
        band_sid, band_acts = self.bands.finish() if self.bands is not None else (None, None)
        return SplitExamples(
            all_acts=torch.cat(self.all) if self.all else None,
            band_sid=band_sid,
            band_acts=band_acts,
            features=features,
            windows=torch.cat(self.windows).to(torch.int64),
            example_len=self.L,
            count=self.count,
            top_value=self.value,
            top_sid=self.sid,
            top_acts=self.acts,
            rand_sid=self.rsid,
            rand_acts=self.racts.permute(2, 0, 1).contiguous(),
        )


def collect_examples(
    dictionary: Dictionary,
    batches: Iterable[tuple[torch.Tensor, dict[str, torch.Tensor]]],  # (tokens [w, ctx], {hook: acts [w, ctx, d]})
    features: torch.Tensor,  # [F] ids to keep
    split: str,
    *args,
    **kwargs,
) -> SplitExamples:
    """The streaming pass over one split: encode each batch once, keep every feature's examples.
    The arguments after `split` (example_len, n_top, n_random, seed, device, ...) are collect_many's."""
    return collect_many({"": (dictionary, features)}, batches, split, *args, **kwargs)[""]


def collect_many(
    dictionaries: dict[str, tuple[Dictionary, torch.Tensor]],  # name -> (dictionary, feature ids [F])
    batches: Iterable[tuple[torch.Tensor, dict[str, torch.Tensor]]],
    split: str,
    example_len: int = 32,
    n_top: int = 20,
    n_random: int = 20,
    seed: int = 0,
    device: torch.device | str | None = None,
    bands: dict | None = None,  # name -> (train max [F], BandConfig): also collect band examples
    keep_all: bool = False,  # keep every token's activation of the given features (all_acts)
) -> dict[str, SplitExamples]:
    """One pass over a split for many dictionaries at once (e.g. every layer's bases, from one
    forward pass of the model); each reads its own hook from the batches. All get the same
    random examples, since those depend only on the text."""
    device = torch.device(device or "cpu")
    plan = {}
    for name, (dictionary, features) in dictionaries.items():
        everything = len(features) == dictionary.n_features and bool((features == torch.arange(len(features))).all())
        band = BandCollector(*bands[name], example_len) if bands and name in bands else None
        plan[name] = (dictionary, None if everything else features.to(device),
                      ExampleCollector(len(features), example_len, n_top, n_random, seed, split, band, keep_all))
    with torch.no_grad():
        for tokens, acts in batches:
            for dictionary, select, acc in plan.values():
                if dictionary.hook_name not in acts:
                    raise InterpError(f"the activations hold no {dictionary.hook_name!r} (they hold {', '.join(acts)}); record that hook.")
                x = acts[dictionary.hook_name]
                w, ctx, d = x.shape
                z = dictionary.encode(x.reshape(w * ctx, d).to(device))
                z = z.index_select(1, select) if select is not None else z
                acc.update(tokens, z.float().cpu().reshape(w, ctx, -1))
    return {name: acc.finish(dictionaries[name][1]) for name, (_, _, acc) in plan.items()}

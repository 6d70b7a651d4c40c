"""Band examples for the Anthropic-style score (Bricken et al. 2023, "Towards Monosemanticity"):
held-out examples drawn uniformly from bands of activation, plus examples where the unit is silent.

The bands are the `n_bands` equal-width intervals of (0, train max] (Bricken et al.'s intervals of
the activation range; the last band also takes peaks above the train max), and one band of silent
examples (peak <= 0). An example (a stretch of tokens, as in analyses/scoring/examples.py) falls in
the band of its peak activation. Each (unit, band) keeps the `per_band` stretches (`n_silent` for
the silent band) with the smallest keys under the fixed stretch hash: a uniform sample of the band,
the same whatever the batching, gathered in the same streaming pass as the other held-out examples.
A band with fewer stretches than asked for gives what it has; the score is the correlation of
simulation and truth over every token of every band example."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from interp.errors import InterpError

EMPTY = torch.iinfo(torch.int64).max


@dataclass
class BandConfig:
    n_bands: int = 5
    per_band: int = 4  # examples per activation band
    n_silent: int = 10  # examples where the unit never fires

    def check(self) -> None:
        if self.n_bands < 1 or self.per_band < 1 or self.n_silent < 0:
            raise InterpError(f"bands need n_bands >= 1 and per_band >= 1 and n_silent >= 0, not {self}.")


class BandCollector:
    """Feed each batch's stretch peaks; `finish()` gives (sid [F, B, m], acts [F, B, m, L]), B = n_bands + 1
    (band 0 the silent one), -1 where a band ran out of stretches."""

    def __init__(self, train_max: torch.Tensor, cfg: BandConfig, example_len: int):
        cfg.check()
        self.max = torch.as_tensor(train_max, dtype=torch.float32).clamp(min=1e-30)
        self.cfg, self.L, F = cfg, example_len, len(train_max)
        self.m = max(cfg.per_band, cfg.n_silent)
        B = cfg.n_bands + 1
        self.want = torch.tensor([cfg.n_silent] + [cfg.per_band] * cfg.n_bands)
        self.keys = torch.full((B, self.m, F), EMPTY, dtype=torch.int64)
        self.sid = torch.full((B, self.m, F), -1, dtype=torch.int64)
        self.acts = torch.zeros(B, self.m, F, example_len)

    def band_of(self, peak: torch.Tensor) -> torch.Tensor:  # [S, F] -> band index, 0 = silent
        b = torch.ceil(peak / self.max * self.cfg.n_bands).long().clamp(1, self.cfg.n_bands)
        return torch.where(peak > 0, b, 0)

    def update(self, peak: torch.Tensor, flat: torch.Tensor, rows: Callable, keys: torch.Tensor, sid: torch.Tensor) -> None:
        """peak [S, F] each stretch's peak; flat [w * ctx, F] the batch's activations; rows(local
        [...]) -> (rows of flat [..., L], valid); keys [S] the stretches' hash keys; sid [S] their numbers."""
        S, F = peak.shape
        band = self.band_of(peak)
        cols = torch.arange(F)
        for b in range(len(self.want)):
            m = int(self.want[b])
            if m == 0:
                continue
            keyed = torch.where(band == b, keys.unsqueeze(1), EMPTY)  # [S, F]
            kv, ki = keyed.topk(min(m, S), dim=0, largest=False)  # [m', F]
            if bool((kv == EMPTY).all()):
                continue
            r, valid = rows(ki)  # [m', F, L]
            new_acts = torch.where(valid, flat[r, cols.view(1, F, 1)], 0.0)
            allk = torch.cat([self.keys[b, :m], kv])
            keep = allk.topk(m, dim=0, largest=False).indices  # [m, F]
            allsid = torch.cat([self.sid[b, :m], torch.where(kv == EMPTY, -1, sid[ki])])
            allacts = torch.cat([self.acts[b, :m], new_acts])
            self.keys[b, :m] = allk.gather(0, keep)
            self.sid[b, :m] = allsid.gather(0, keep)
            self.acts[b, :m] = allacts.gather(0, keep.unsqueeze(-1).expand(-1, -1, self.L))

    def finish(self) -> tuple[torch.Tensor, torch.Tensor]:
        sid = torch.where(self.keys == EMPTY, -1, self.sid)
        return sid.permute(2, 0, 1).contiguous(), self.acts.permute(2, 0, 1, 3).contiguous()

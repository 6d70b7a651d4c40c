"""The zero-ablated pass of evaluate_sae, computed once per evaluation where that is exact.

When a residual-stream hook (blocks.L.hook_resid_pre / _mid / _post) is zeroed at every position
from `first` on, the blocks after it see, at those positions, the same input (zeros) everywhere,
and the positions before `first` depend only on the window's first `first` tokens (causal
attention). So the ablated next-token log-probs of a window depend only on tokens[:first]:
- first = 0: on nothing at all. Every position's attention mixes values that are all the same
  vector (its weights sum to 1, whatever the positional scheme does to them), so every position
  of every window gets the same log-probs: one position, run once.
- first = 1 (BOS kept clean): on the window's first token only; windows all begin with BOS, so
  one window's ablated pass, run once, serves every window.
Other hooks (attention, MLP outputs or neurons) leave the residual stream carrying each token's
information, so their ablated pass is run on each batch as before (`applies` is False)."""

from __future__ import annotations

from typing import Any

import torch

from sae import metrics

SHORTCUT_HOOKS = ("hook_resid_pre", "hook_resid_mid", "hook_resid_post")


def applies(hook_name: str) -> bool:
    """True for a residual-stream hook inside a block, where the shortcut is exact."""
    parts = hook_name.split(".")
    return len(parts) == 3 and parts[0] == "blocks" and parts[1].isdigit() and parts[2] in SHORTCUT_HOOKS


class ZeroAblated:
    """Log-probs of the zero-ablated model, one entry per distinct tokens[:first] (see the module
    doc). `start` is the hook's block: the pass runs from there on a residual `resid` [1, p, d]."""

    def __init__(self, model: Any, hook_name: str, first: int, start: int):
        self.model, self.hook_name, self.first, self.start = model, hook_name, first, start
        self.cache: dict[tuple[int, ...], torch.Tensor] = {}

    def log_probs(self, tokens: torch.Tensor, resid: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """[(row indices, log-probs [1, 1 or p, vocab])] covering the batch's rows, one per distinct
        prefix. resid [b, p, d]: the batch's input to block `start` (read for a new prefix only)."""
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, row in enumerate(tokens[:, :self.first].tolist()):
            groups.setdefault(tuple(row), []).append(i)
        out = []
        for key, rows in groups.items():
            if key not in self.cache:
                r = resid[rows[0]:rows[0] + 1]
                if self.first == 0:
                    r = torch.zeros_like(r[:, :1])  # one position stands for all (its input is replaced anyway)
                logits = self.model.run_with_hooks(r, start_at_layer=self.start, return_type="logits",
                                                   fwd_hooks=[(self.hook_name, metrics.zero_hook(self.first))])
                self.cache[key] = logits.log_softmax(-1)
            out.append((torch.tensor(rows, device=tokens.device), self.cache[key]))
        return out

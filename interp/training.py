"""What the SAE trainer (sae/) and the LM trainer (interp/lm/) share: the optimizer with its fused
kernel when torch has one, its state to and from flat tensors (for safetensors checkpoints), the
step a killed run resumes from, the seed of an epoch's shuffle, and the one divergence error."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import torch

from interp.checkpoints import checkpoint_steps
from interp.errors import InterpError


class TrainingDiverged(InterpError):
    """The loss or a gradient became NaN or infinite; the last good checkpoint is kept on disk."""


def fused_adam(cls: type[torch.optim.Optimizer], params, **kw) -> torch.optim.Optimizer:
    """`cls` (Adam or AdamW) with one fused kernel per parameter where this torch has it (CPU since
    2.4), else the multi-tensor (foreach) implementation: the same update either way."""
    try:
        return cls(params, fused=True, **kw)
    except (RuntimeError, TypeError):
        return cls(params, foreach=True, **kw)


def optimizer_tensors(opt: torch.optim.Optimizer, names: Mapping[int, str], prefix: str) -> dict[str, torch.Tensor]:
    """{f"{prefix}.{name}.{key}": tensor} for every parameter's optimizer state (scalars as 0-d
    tensors). `names` maps id(param) to the name it is stored under."""
    out = {}
    for p, st in opt.state.items():
        for key, val in st.items():
            out[f"{prefix}.{names[id(p)]}.{key}"] = val if torch.is_tensor(val) else torch.tensor(val)
    return out


def load_optimizer_tensors(opt: torch.optim.Optimizer, t: Mapping[str, torch.Tensor],
                           params: Mapping[str, torch.nn.Parameter], prefix: str) -> None:
    """The inverse of optimizer_tensors: `params` maps the stored names to this optimizer's
    parameters. A moment shaped like its parameter takes the parameter's memory layout (a
    transposed weight keeps its moments transposed, which the fused kernel wants)."""
    opt.state.clear()
    for name, p in params.items():
        head = f"{prefix}.{name}."
        st = {key[len(head):]: v for key, v in t.items() if key.startswith(head)}
        if st:
            opt.state[p] = {k: (torch.empty_like(p).copy_(v) if v.shape == p.shape else v.clone()) for k, v in st.items()}


def param_indices(opt: torch.optim.Optimizer) -> dict[int, str]:
    """id(param) -> its index in the optimizer's parameter groups, as a name (state_dict's numbering)."""
    params = [p for group in opt.param_groups for p in group["params"]]
    return {id(p): str(i) for i, p in enumerate(params)}


def indexed_params(opt: torch.optim.Optimizer) -> dict[str, torch.nn.Parameter]:
    params = [p for group in opt.param_groups for p in group["params"]]
    return {str(i): p for i, p in enumerate(params)}


def resume_step(dirs: Iterable[str | Path], error: type[InterpError] = InterpError) -> int | None:
    """The latest checkpoint step every folder holds (they train together), or None if none holds one."""
    found = [set(checkpoint_steps(Path(d))) for d in dirs]
    if not any(found):
        return None
    common = set.intersection(*found)
    if not common:
        raise error(
            "the output folders hold checkpoints of different steps (or some have none), so the runs "
            "cannot resume together; delete the checkpoints folders or train with resume off."
        )
    return max(common)


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of epoch `epoch`'s shuffle in a run seeded `seed`: every data order (the LM's
    windows, a store's rows, a stream's buffer) is a pure function of (seed, epoch)."""
    return seed * 1_000_003 + epoch


def check_finite(value: float, what: str, step: int, name: str = "") -> None:
    """Raise TrainingDiverged if `value` (the loss or a gradient norm) is NaN or infinite."""
    if not torch.isfinite(torch.as_tensor(value)):
        raise TrainingDiverged(f"{name + ': ' if name else ''}{what} became {value} at step {step}")

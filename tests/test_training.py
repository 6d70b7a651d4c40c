"""interp/training.py, the toolkit both trainers share: optimizer state through flat tensors, the
fused-kernel fallback, the step to resume from, one divergence error."""

import pytest
import torch

from interp.checkpoints import write_checkpoint
from interp.errors import InterpError
from interp.training import (
    TrainingDiverged,
    check_finite,
    fused_adam,
    indexed_params,
    load_optimizer_tensors,
    optimizer_tensors,
    param_indices,
    resume_step,
)
from sae import TrainingDiverged as SAETrainingDiverged


def _steps(opt, params, n=3):
    g = torch.Generator().manual_seed(0)
    for _ in range(n):
        opt.zero_grad()
        sum((p * torch.randn(p.shape, generator=g)).sum() ** 2 for p in params).backward()
        opt.step()


@pytest.mark.parametrize("cls", [torch.optim.Adam, torch.optim.AdamW])
def test_optimizer_state_round_trips_through_flat_tensors(cls):
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(4, 3)), torch.nn.Parameter(torch.randn(3))]
    opt = fused_adam(cls, params, lr=1e-2)
    _steps(opt, params)
    flat = optimizer_tensors(opt, param_indices(opt), "opt")
    assert all(torch.is_tensor(v) for v in flat.values()) and len(flat) == 2 * len(opt.state[params[0]])
    copies = [torch.nn.Parameter(p.detach().clone()) for p in params]
    opt2 = fused_adam(cls, copies, lr=1e-2)
    load_optimizer_tensors(opt2, flat, indexed_params(opt2), "opt")
    _steps(opt, params, 2)
    _steps(opt2, copies, 2)
    for p, q in zip(params, copies):
        assert torch.equal(p, q)


def test_fused_adam_falls_back_to_foreach():
    class NoFused(torch.optim.Adam):
        def __init__(self, params, fused=None, **kw):
            if fused:
                raise RuntimeError("no fused kernel here")
            super().__init__(params, **kw)

    opt = fused_adam(NoFused, [torch.nn.Parameter(torch.zeros(2))], lr=1.0)
    assert opt.param_groups[0]["foreach"] is True


def test_resume_step_is_the_latest_step_every_folder_holds(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert resume_step([a, b]) is None
    for folder, steps in ((a, (10, 20, 30)), (b, (10, 20))):
        for s in steps:
            write_checkpoint(folder, s, {"x": torch.zeros(1)}, {})
    assert resume_step([a]) == 30
    assert resume_step([a, b]) == 20
    c = tmp_path / "c"
    write_checkpoint(c, 5, {"x": torch.zeros(1)}, {})
    with pytest.raises(InterpError, match="different steps"):
        resume_step([a, c])


def test_one_divergence_error_for_both_trainers():
    assert SAETrainingDiverged is TrainingDiverged
    check_finite(1.0, "the loss", 3)
    with pytest.raises(TrainingDiverged, match="sae: the loss became nan at step 3"):
        check_finite(float("nan"), "the loss", 3, "sae")

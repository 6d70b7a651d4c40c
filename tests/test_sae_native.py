"""The native TopK kernels (sae/csrc/topk_step.cpp) give what the torch path gives, and the
step's thread switching (sae/threads.py) leaves torch's thread count as it found it."""

import pytest
import torch

from sae import SAEConfig, TrainConfig, Trainer, create_sae, native
from sae.base import StepContext
from sae.kernels import Bags
from sae.threads import small_ops, wide

needs_native = pytest.mark.skipif(native.kernels() is None, reason="no C++ toolchain: the torch path is all there is")


@needs_native
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_native_topk_rows_gives_torch_topk_values(dtype):
    g = torch.Generator().manual_seed(0)
    pre = torch.randn(48, 1000, generator=g).to(dtype)
    pre[1] = (pre[1] * 2).round()  # ties at the k-th place
    pre[2] = 0.5  # all one value
    pre[3, 7] = float("nan")  # NaN ranks first, as in torch.topk
    for k in (1, 5, 32, 100, 600):
        vals, idx = native.kernels().topk_rows(pre, k)
        ref = pre.topk(k, dim=1).values
        assert torch.equal(vals[[0, 1, 2, *range(4, 48)]].sort(1).values, ref[[0, 1, 2, *range(4, 48)]].sort(1).values)
        assert torch.equal(vals[3].nan_to_num(9.0).sort().values, ref[3].nan_to_num(9.0).sort().values)
        assert torch.equal(pre.gather(1, idx)[4:], vals[4:]) and torch.isnan(vals[3]).sum() == 1
        assert all(len(set(row.tolist())) == k for row in idx)


@needs_native
def test_native_pair_dots_match_the_torch_kernel():
    g = torch.Generator().manual_seed(1)
    idx = torch.randint(0, 300, (64, 8), generator=g)
    rows, table = torch.randn(64, 40, generator=g, dtype=torch.float64), torch.randn(300, 40, generator=g, dtype=torch.float64)
    dots = Bags.build(idx, 300).pair_dots(rows, table).reshape(64, 8)
    assert torch.allclose(dots, (rows[:, None, :] * table[idx]).sum(-1), atol=1e-12)


@pytest.mark.parametrize("arch", ["topk", "batchtopk"])
def test_step_gradients_are_the_same_with_and_without_the_native_kernels(arch, monkeypatch):
    sae = create_sae(SAEConfig(arch, 16, 64, k=4)).double()
    sae.init_weights(torch.Generator().manual_seed(0), TrainConfig())
    x = torch.randn(32, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    dead = torch.zeros(64, dtype=torch.bool)
    dead[::3] = True
    step_ctx = StepContext(0.0, (x - x.mean(0)).pow(2).sum(), dead, k_aux=5)

    def grads():
        out = sae.training_loss(x, step_ctx)
        return torch.autograd.grad(out.loss, list(sae.parameters()))

    with_native = grads()
    monkeypatch.setitem(native._state, "module", None)
    for a, b in zip(with_native, grads()):
        assert torch.allclose(a, b, atol=1e-12)


def test_small_ops_runs_one_thread_and_wide_restores_the_callers_count():
    n = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with small_ops():
            assert torch.get_num_threads() == 1
            with wide():
                assert torch.get_num_threads() == 2
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with wide():  # outside a step: nothing changes
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(n)


def test_a_topk_trainer_steps_with_its_small_operators_on_one_thread():
    tr = Trainer(create_sae(SAEConfig("topk", 16, 64, k=4)), TrainConfig(steps=3))
    x = torch.randn(32, 16, generator=torch.Generator().manual_seed(0))
    tr.initialize(x)
    before = torch.get_num_threads()
    tr.step(x)
    assert tr.small_ops_on_one_thread and torch.get_num_threads() == before

"""The native TopK kernels (sae/csrc/topk_step.cpp) give what the torch path gives, and the
step's thread switching (sae/threads.py) leaves torch's thread count as it found it."""

import pytest
import torch

from sae import SAEConfig, TrainConfig, Trainer, create_sae, native
from sae.base import StepContext
from sae.batchtopk import batch_topk
from sae.heap import keep_freed_memory
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


def _torch_batch_topk(pre, k, monkeypatch):
    with monkeypatch.context() as m:
        m.setitem(native._state, "module", None)
        return batch_topk(pre, k)


def _by_row(vals, cols, offsets):
    rows = torch.repeat_interleave(torch.arange(offsets.numel()), torch.diff(offsets, append=offsets.new_tensor([vals.numel()])))
    order = (rows * (cols.max() + 1 if cols.numel() else 1) + cols).argsort()
    return vals[order], cols[order], rows[order]


@needs_native
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("B,S,k", [(64, 1000, 4), (32, 64, 4), (16, 300, 40), (8, 20, 3), (256, 4608, 32)])
def test_native_batch_topk_keeps_what_the_torch_path_keeps(dtype, B, S, k, monkeypatch):
    """Ties at the threshold (all kept, as in the torch path), a row holding many winners (read
    whole: the fallback), a constant row, a row with nothing positive, and shapes too small to
    chunk (every row read whole)."""
    g = torch.Generator().manual_seed(B + S)
    pre = torch.randn(B, S, generator=g).to(dtype)
    pre[1] += 5  # more than 2k winners in one row: its candidates all survive
    pre[2] = (pre[2] * 2).round()
    pre[3] = 0.5
    pre[4] = -1.0
    vals, cols, offsets = native.kernels().batch_topk(pre, k * B, min(S, 2 * k))
    ref = _torch_batch_topk(pre, k, monkeypatch)
    assert torch.equal(offsets, ref[2])
    for a, b in zip(_by_row(vals, cols, offsets), _by_row(*ref)):
        assert torch.equal(a, b)
    assert torch.equal(pre[torch.repeat_interleave(torch.arange(B), torch.diff(offsets, append=offsets.new_tensor([vals.numel()]))), cols], vals)
    ends = [*offsets[1:].tolist(), vals.numel()]
    assert all(bool((cols[a + 1:e] > cols[a:max(a, e - 1)]).all()) for a, e in zip(offsets.tolist(), ends) if e > a)  # column order


@needs_native
def test_native_batch_topk_gives_way_to_the_torch_path_on_nan():
    pre = torch.randn(16, 512, generator=torch.Generator().manual_seed(0))
    pre[5, 9] = float("nan")
    assert native.kernels().batch_topk(pre, 64, 8) == []
    vals, cols, offsets = batch_topk(pre, 4)  # the torch path decides; it does not fail
    assert offsets.numel() == 16


@needs_native
def test_batchtopk_gradients_with_and_without_native_when_rows_hold_many_winners(monkeypatch):
    sae = create_sae(SAEConfig("batchtopk", 16, 600, k=4)).double()
    sae.init_weights(torch.Generator().manual_seed(0), TrainConfig())
    x = torch.randn(32, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    x[:3] *= 6  # a few tokens with large activations take many of the batch's winners
    step_ctx = StepContext(0.0, (x - x.mean(0)).pow(2).sum())

    def grads():
        return torch.autograd.grad(sae.training_loss(x, step_ctx).loss, list(sae.parameters()))

    with torch.no_grad():
        pre = (x - sae.b_dec) @ sae.W_enc + sae.b_enc
        _, _, offsets = batch_topk(pre, 4)
    sizes = torch.diff(offsets, append=offsets.new_tensor([4 * 32]))
    assert int(sizes.max()) > 8  # some row's 2k candidates were not enough
    with_native = grads()
    monkeypatch.setitem(native._state, "module", None)
    for a, b in zip(with_native, grads()):
        assert torch.allclose(a, b, atol=1e-12)


@needs_native
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_native_sparse_backward_matches_the_torch_kernels(dtype):
    g0 = torch.Generator().manual_seed(4)
    B, S, d, k = 40, 200, 24, 6
    idx = torch.rand(B, S, generator=g0).topk(k, dim=1).indices
    vals = torch.randn(B, k, generator=g0).to(dtype)  # some negative: relu sends them nothing
    bags = Bags.build(idx, S)
    g, W = torch.randn(B, d, generator=g0).to(dtype), torch.randn(S, d, generator=g0).to(dtype)
    g_W_dec, g_pre, g_b_enc = native.kernels().sparse_backward(g, W, vals.reshape(-1), bags.tokens, bags.perm, bags.latent_offsets)
    ref_dots = bags.pair_dots(g, W)
    on = vals.reshape(-1) > 0
    tol = 1e-12 if dtype == torch.float64 else 1e-4
    assert torch.allclose(g_pre, ref_dots * on, atol=tol)
    assert torch.allclose(g_W_dec, bags.per_latent_sum(g, vals.relu()), atol=tol)
    assert torch.allclose(g_b_enc, torch.zeros(S, dtype=dtype).index_add_(0, idx.reshape(-1), ref_dots * on), atol=tol)


def test_keep_freed_memory_is_set_once_and_says_whether_it_took():
    assert keep_freed_memory() in (True, False)
    assert keep_freed_memory() == keep_freed_memory()

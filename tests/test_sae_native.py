"""The native TopK kernels (sae/csrc/topk_step.cpp) give what the torch path gives, and the
step's thread switching (sae/threads.py) leaves torch's thread count as it found it."""

import pytest
import torch

from sae import SAEConfig, TrainConfig, Trainer, create_sae, native
from sae.base import StepContext
from sae.batchtopk import batch_topk
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
    on = vals.reshape(-1) > 0
    tol = 1e-12 if dtype == torch.float64 else 1e-4
    g_W_dec, g_pre, g_b_enc, g_sorted = native.kernels().sparse_backward(
        g, W, vals.reshape(-1), bags.tokens, bags.perm, bags.latent_offsets)
    assert torch.equal(g_sorted, g_pre[bags.perm])
    xc = torch.randn(B, d, generator=g0).to(dtype)
    assert torch.allclose(native.kernels().per_latent_sum(xc, g_sorted, bags.tokens, bags.latent_offsets),
                          bags.per_latent_sum(xc, g_pre), atol=tol)
    ref_dots = bags.pair_dots(g, W)
    assert torch.allclose(g_pre, ref_dots * on, atol=tol)
    assert torch.allclose(g_W_dec, bags.per_latent_sum(g, vals.relu()), atol=tol)
    assert torch.allclose(g_b_enc, torch.zeros(S, dtype=dtype).index_add_(0, idx.reshape(-1), ref_dots * on), atol=tol)


@needs_native
@pytest.mark.parametrize("arch", ["topk", "batchtopk"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_wide_step_gives_the_torch_paths_loss_and_gradients(arch, dtype, monkeypatch):
    # d_in 150 = two 4-vector blocks, one vector and a tail in float (L 16); d_sae 600 leaves the AVX-512
    # candidate pass (float) a tail too. Covers decode_residual, per_latent_sum, group_by_latent, the scale
    # folded into sparse_backward, and the trainer's row projections.
    g0 = torch.Generator().manual_seed(5)
    sae = create_sae(SAEConfig(arch, 150, 600, k=8)).to(dtype)
    sae.init_weights(g0, TrainConfig())
    with torch.no_grad():
        sae.b_dec.copy_(torch.randn(150, generator=g0).to(dtype) * 0.1)
        sae.b_enc.copy_(torch.randn(600, generator=g0).to(dtype) * 0.1)
    x = torch.randn(64, 150, generator=g0).to(dtype)
    step_ctx = StepContext(0.0, (x - x.mean(0)).pow(2).sum(), None, k_aux=0)

    def run():
        out = sae.training_loss(x, step_ctx)
        return (out.loss.detach(), *torch.autograd.grad(out.loss, list(sae.parameters())))

    with_native = run()
    monkeypatch.setitem(native._state, "module", None)
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-5)
    for a, b in zip(with_native, run()):
        assert torch.allclose(a, b, **tol)


@needs_native
def test_native_row_projections_match_torch():
    g0 = torch.Generator().manual_seed(6)
    W = torch.randn(70, 150, generator=g0, dtype=torch.float64)
    g = torch.randn(70, 150, generator=g0, dtype=torch.float64)
    want_g = g - (g * W).sum(1, keepdim=True) * W
    native.kernels().project_rows(g, W, 0.0)
    assert torch.allclose(g, want_g, atol=1e-12)
    W[3] = 0.0
    want_W = W / W.norm(dim=1, keepdim=True).clamp_min(1e-12)
    native.kernels().project_rows(torch.empty(0, dtype=W.dtype), W, 1e-12)
    assert torch.allclose(W, want_W, atol=1e-14) and torch.equal(W[3], torch.zeros(150, dtype=W.dtype))


def _native_outputs(pre, k):
    f = native.kernels()
    vals, idx = f.topk_rows(pre, k)
    bags = Bags.build(idx, pre.shape[1])
    g = torch.linspace(-1, 1, pre.shape[0] * 24, dtype=pre.dtype).reshape(pre.shape[0], 24)
    W = torch.linspace(-2, 2, pre.shape[1] * 24, dtype=pre.dtype).reshape(pre.shape[1], 24)
    return (vals, idx, *f.batch_topk(pre, k * pre.shape[0], 2 * k),
            *f.sparse_backward(g, W, vals.reshape(-1), bags.tokens, bags.perm, bags.latent_offsets, 0.5),
            *f.decode_residual(W, vals.reshape(-1).relu(), idx.reshape(-1), bags.token_offsets(), g))


@needs_native
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_native_kernels_give_the_same_at_one_and_two_threads(dtype):
    pre = torch.randn(300, 700, generator=torch.Generator().manual_seed(7)).to(dtype)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _native_outputs(pre, 8)
        torch.set_num_threads(2)
        two = _native_outputs(pre, 8)
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(a, b) for a, b in zip(one, two))


@needs_native
def test_the_avx512_candidate_pass_gives_what_the_generic_one_gives():
    f = native.kernels()
    g = torch.Generator().manual_seed(8)
    pre = torch.randn(200, 1000, generator=g)
    pre[1] = (pre[1] * 2).round()  # ties
    pre[2, 5] = float("nan")
    try:
        on = [f.set_avx512(True) and None, f.topk_rows(pre, 32), f.batch_topk(pre, 200 * 32, 64)]
        f.set_avx512(False)
        off = [None, f.topk_rows(pre, 32), f.batch_topk(pre, 200 * 32, 64)]
    finally:
        f.set_avx512(True)
    assert all(torch.equal(a.nan_to_num(9.0), b.nan_to_num(9.0)) for a, b in zip(on[1], off[1]))  # NaN != NaN
    assert on[2] == off[2] == []  # a NaN: both leave it to the torch path
    pre[2, 5] = 0.0
    f.set_avx512(True)
    with_avx = f.batch_topk(pre, 200 * 32, 64)
    f.set_avx512(False)
    try:
        without = f.batch_topk(pre, 200 * 32, 64)
    finally:
        f.set_avx512(True)
    assert all(torch.equal(a, b) for a, b in zip(with_avx, without))


@pytest.mark.parametrize("arch", ["topk", "relu"])
def test_the_torch_paths_decoder_projection_builds_no_graph(arch, monkeypatch):
    # the torch path (no native kernels: a GPU, INTERP_NATIVE=0) projects W_dec's gradient in place; under
    # autograd that would give the gradient a graph of its own
    monkeypatch.setitem(native._state, "module", None)
    sae = create_sae(SAEConfig(arch, 16, 64, k=4 if arch == "topk" else None))
    trainer = Trainer(sae, TrainConfig(steps=10))
    x = torch.randn(32, 16, generator=torch.Generator().manual_seed(9))
    trainer.initialize(x)
    for _ in range(2):
        trainer.step(x)
    assert sae.W_dec.grad.grad_fn is None and not sae.W_dec.grad.requires_grad

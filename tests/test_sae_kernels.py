"""The training kernels give the same loss and gradients as plain autograd on the written-out
equation, in float64."""

import pytest
import torch

from sae import SAEConfig, TrainConfig, create_sae
from sae.base import StepContext
from sae.batchtopk import batch_topk
from sae.reference import reference_loss

D, S, K, B = 16, 64, 4, 32


def make(arch: str):
    sae = create_sae(SAEConfig(arch, D, S, k=K if "topk" in arch else None)).double()
    sae.init_weights(torch.Generator().manual_seed(0), TrainConfig(jumprelu_init_threshold=0.3))
    with torch.no_grad():
        sae.b_dec.normal_(generator=torch.Generator().manual_seed(1))
        sae.b_enc.normal_(0, 0.3, generator=torch.Generator().manual_seed(2))
        sae.W_dec.mul_(1.3)  # decoder norms that are not 1, so the L1 weighting matters
    x = torch.randn(B, D, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    return sae, x


@pytest.mark.parametrize("arch,density", [("topk", None), ("batchtopk", None), ("relu", None), ("relu", 0.01),
                                          ("jumprelu", None)])
def test_loss_and_gradients_match_plain_autograd(arch, density):
    """relu at density 0.01 takes its sparse path."""
    sae, x = make(arch)
    dead = torch.zeros(S, dtype=torch.bool)
    dead[::3] = True
    step_ctx = StepContext(0.3, (x - x.mean(0)).pow(2).sum(), dead if "topk" in arch else None, k_aux=5, density=density)
    out = sae.training_loss(x, step_ctx)
    names, params = zip(*sae.named_parameters())
    grads = torch.autograd.grad(out.loss, params)
    ref = reference_loss(sae, x, step_ctx)
    ref_grads = torch.autograd.grad(ref, params)
    # jumprelu's L0 value is a count over the batch size in the default dtype (float32)
    assert float(out.loss.detach()) == pytest.approx(float(ref.detach()), rel=1e-7 if arch == "jumprelu" else 1e-12)
    for name, g, r in zip(names, grads, ref_grads):
        assert torch.allclose(g, r, atol=1e-12), name
    assert out.fired.sum() > 0


def test_jumprelu_straight_through_gradients():
    sae, x = make("jumprelu")
    eps, coef = 0.5, 0.7
    out = sae.training_loss(x, StepContext(coef, torch.tensor(1.0), cfg=TrainConfig(jumprelu_bandwidth=eps)))
    g_log_theta, g_W_enc = torch.autograd.grad(out.loss, [sae.log_threshold, sae.W_enc])
    with torch.no_grad():
        theta = sae.threshold
        pre = (x - sae.b_dec) @ sae.W_enc + sae.b_enc
        z = pre * (pre > theta)
        x_hat = z @ sae.W_dec + sae.b_dec
        g_z = 2 * (x_hat - x) / B @ sae.W_dec.T
        near = ((pre - theta).abs() < eps / 2).double()
        # d loss/d theta = sum_b near/eps * (-theta * g_z - coef/B): the rectangle-kernel STE
        g_theta = (near / eps * (-theta * g_z - coef / B)).sum(0)
        g_W = (x - sae.b_dec).T @ (g_z * (pre > theta))  # the L0 term sends nothing to the encoder
    assert torch.allclose(g_log_theta, g_theta * theta, atol=1e-10)
    assert torch.allclose(g_W_enc, g_W, atol=1e-10)
    assert float(out.terms["l0"]) == pytest.approx(float((pre > theta).sum()) / B)


def test_batch_topk_is_exact_even_when_one_row_holds_many_winners():
    g = torch.Generator().manual_seed(0)
    pre = torch.randn(64, 100, generator=g)
    pre[3] += 5  # row 3 alone holds more than its 2k candidates of the global top k*B
    vals, cols, offsets = batch_topk(pre, 4)
    ref = pre.relu().flatten().topk(4 * 64)
    assert torch.equal(vals.sort().values, ref.values.sort().values)
    rows = torch.repeat_interleave(torch.arange(64), torch.diff(offsets, append=torch.tensor([len(vals)])))
    assert torch.equal(pre[rows, cols], vals)
    assert int((rows == 3).sum()) > 8


def test_unit_norm_decoder_stays_unit_norm_after_steps():
    from sae import Trainer
    sae = create_sae(SAEConfig("topk", D, S, k=K))
    tr = Trainer(sae, TrainConfig(steps=10, lr=1e-2))
    x = torch.randn(B, D, generator=torch.Generator().manual_seed(0)) * 3 + 1
    tr.initialize(x)
    for _ in range(5):
        tr.step(x)
    assert torch.allclose(sae.W_dec.norm(dim=1), torch.ones(S), atol=1e-6)


@pytest.mark.parametrize("private_op", [True, False])
def test_pair_dots_with_and_without_torchs_private_kernel(private_op, monkeypatch):
    from sae.kernels import Bags
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(0, S, (B, K), generator=g)
    rows, table = torch.randn(B, D, generator=g), torch.randn(S, D, generator=g)
    bags = Bags.build(idx, S)
    if not private_op:
        class NoPrivateOps:
            def __getattr__(self, name):
                raise AttributeError(name)
        monkeypatch.setattr(torch.ops, "aten", NoPrivateOps())
    dots = bags.pair_dots(rows, table).reshape(B, K)
    assert torch.allclose(dots, (rows[:, None, :] * table[idx]).sum(-1), atol=1e-5)

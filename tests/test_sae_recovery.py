"""Each architecture learns a known sparse dictionary: 512 random unit directions in d=64,
exactly 4 active per sample with magnitudes in [0.5, 1.5]."""

import pytest
import torch

from sae import SAEConfig, TrainConfig, create_sae, train_sae

D_IN, N_TRUE, ACTIVE = 64, 512, 4


@pytest.fixture(autouse=True)
def one_thread():
    # small matrices on a shared 2-core machine: one thread avoids OpenMP contention
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def true_dictionary() -> torch.Tensor:  # [512, 64] unit rows
    d = torch.randn(N_TRUE, D_IN, generator=torch.Generator().manual_seed(0))
    return d / d.norm(dim=1, keepdim=True)


def sample(step: int, batch: int = 512) -> torch.Tensor:
    g = torch.Generator().manual_seed(1000 + step)
    idx = torch.rand(batch, N_TRUE, generator=g).topk(ACTIVE, dim=1).indices
    mags = 0.5 + torch.rand(batch, ACTIVE, generator=g)
    return torch.zeros(batch, N_TRUE).scatter_(1, idx, mags) @ true_dictionary()


def batches(start: int):
    step = start
    while True:
        yield sample(step)
        step += 1


def train(arch: str, tmp_path, **kw):
    cfg = SAEConfig(arch, D_IN, 1024, k=ACTIVE if "topk" in arch else None)
    tcfg = TrainConfig(steps=300, lr=1e-2, lr_warmup_steps=10, checkpoint_every=1000, dead_tokens=10_000, **kw)
    return train_sae(create_sae(cfg), batches, tcfg, tmp_path, resume=False, progress=False)


def best_cosines(sae) -> torch.Tensor:  # [512]: each true direction's closest decoder row
    w = sae.W_dec / sae.W_dec.norm(dim=1, keepdim=True)
    return (true_dictionary() @ w.T).max(dim=1).values


def explained_variance(sae, x: torch.Tensor) -> float:
    return float(1 - (x - sae(x)).pow(2).sum() / (x - x.mean(0)).pow(2).sum())


@pytest.mark.parametrize("arch,kw", [("topk", {}), ("relu", {"sparsity_coefficient": 2.0})])
def test_recovers_the_true_dictionary(arch, kw, tmp_path):
    sae = train(arch, tmp_path, **kw)
    cos = best_cosines(sae)
    assert cos.mean() >= 0.9, f"{arch}: mean best cosine {cos.mean():.3f}"
    x = sample(99_999)
    l0 = float((sae.encode(x) > 0).float().sum(1).mean())
    assert 3 <= l0 <= 30


def test_batchtopk_trains_with_k_per_token_on_average(tmp_path):
    sae = train("batchtopk", tmp_path)
    x = sample(99_999)
    z = sae.encode(x)  # saved form: a JumpReLU with the learnt threshold
    assert sae.cfg.architecture == "jumprelu" and sae.cfg.extra["trained_as"] == "batchtopk"
    assert 2 <= float((z > 0).float().sum(1).mean()) <= 8
    assert explained_variance(sae, x) > 0.5
    assert best_cosines(sae).mean() > 0.7


def test_jumprelu_learns_thresholds_and_a_sparse_code(tmp_path):
    sae = train("jumprelu", tmp_path, sparsity_coefficient=1.0, jumprelu_init_threshold=1.0)
    x = sample(99_999)
    l0 = float((sae.encode(x) > 0).float().sum(1).mean())
    assert 2 <= l0 <= 30
    assert explained_variance(sae, x) > 0.5
    # thresholds (saved in raw units: divided by the input scale) left their common start
    # of 1.0 and differ between latents
    start = 1.0 / sae.cfg.extra["folded_activation_scale"]
    assert abs(float(sae.threshold.mean()) / start - 1) > 0.1
    assert float(sae.threshold.std() / sae.threshold.mean()) > 0.05

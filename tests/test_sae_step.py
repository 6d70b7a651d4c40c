"""The training step's shortcuts change nothing: the chunked row top-k gives torch.topk's
values, and the trainer's Adam step (transposed weights passed as their contiguous storage)
gives bit-identical weights to torch's own Adam.step()."""

import pytest
import torch

from sae import SAEConfig, TrainConfig, Trainer, create_sae
from sae import trainer as trainer_module
from sae.batchtopk import batch_topk
from sae.select import topk_rows


@pytest.mark.parametrize("ties", [False, True])
def test_topk_rows_gives_torch_topk_values(ties):
    g = torch.Generator().manual_seed(0)
    pre = torch.randn(64, 1024, generator=g)
    if ties:  # few distinct values: many ties at the k-th place
        pre = (pre * 2).round()
    pre[3] = 1.0  # a row that is all one value
    pre[5, :] = torch.arange(1024.0)  # the largest entries crowd into few chunks
    for k in (1, 8, 32):
        vals, idx = topk_rows(pre, k)
        ref = pre.topk(k, dim=1).values
        assert torch.equal(vals.sort(1).values, ref.sort(1).values)
        assert torch.equal(pre.gather(1, idx), vals)  # the indices point at those values
        assert all(len(set(row.tolist())) == k for row in idx)  # no entry picked twice


def test_batch_topk_with_the_chunked_selection_matches_a_global_topk():
    pre = torch.randn(32, 1024, generator=torch.Generator().manual_seed(1))
    vals, cols, offsets = batch_topk(pre, 8)
    ref = pre.relu().flatten().topk(8 * 32).values
    assert torch.equal(vals.sort().values, ref[ref > 0].sort().values)


@pytest.mark.parametrize("arch", ["topk", "batchtopk"])
def test_trainer_adam_step_is_bit_identical_to_torch_adam(arch, monkeypatch):
    x = torch.randn(256, 32, generator=torch.Generator().manual_seed(2))

    def run(step_fn):
        monkeypatch.setattr(trainer_module, "_adam_step", step_fn)
        tr = Trainer(create_sae(SAEConfig(arch, 32, 512, k=8)), TrainConfig(steps=100, seed=0))
        tr.initialize(x)
        for _ in range(4):
            tr.step(x)
        return {k: v.clone() for k, v in tr.sae.state_dict().items()}, tr

    ours, tr = run(trainer_module._adam_step)
    theirs, _ = run(lambda opt: opt.step())
    assert tr.sae.W_enc.stride() == (1, 32)  # the transposed layout the shortcut exists for
    for k in ours:
        assert torch.equal(ours[k], theirs[k]), k

"""The random-model null's model: same shapes and hooks, new weights, fixed by its seed."""

import torch

from interp.models.random_copy import random_copy


def test_a_random_copy_has_the_same_shapes_new_weights_and_is_reproducible(tiny_model, tiny_windows):
    a, b = random_copy(tiny_model, seed=1), random_copy(tiny_model, seed=1)
    pa, p0 = dict(a.named_parameters()), dict(tiny_model.named_parameters())
    assert pa.keys() == p0.keys() and all(pa[k].shape == p0[k].shape for k in p0)
    assert not torch.equal(pa["blocks.0.mlp.W_in"], p0["blocks.0.mlp.W_in"])
    for k, v in b.named_parameters():
        assert torch.equal(v, pa[k])
    _, cache = a.run_with_cache(tiny_windows[:2], names_filter="blocks.1.mlp.hook_post")
    assert cache["blocks.1.mlp.hook_post"].shape == (2, 16, 64)
    assert a.cfg.model_name.endswith("-random-init") and tiny_model.cfg.model_name == "tiny"

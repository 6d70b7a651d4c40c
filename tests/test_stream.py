import torch

from interp.stream import stream_activations

HOOKS = ["blocks.0.hook_resid_post", "blocks.1.hook_mlp_out"]


def take(it, n):
    return [next(it) for _ in range(n)]


def test_stream_batches_are_shuffled_model_activations(tiny_model, tiny_windows):
    # 40 windows of 16 tokens; batches of 32 tokens, blocks of 4 batches = 8 windows
    batches = take(stream_activations(tiny_model, tiny_windows, HOOKS, batch_size=32, block_batches=4, seed=0), 20)
    got = torch.cat([b[HOOKS[1]] for b in batches])  # one epoch: every token once
    _, cache = tiny_model.run_with_cache(tiny_windows, names_filter=HOOKS)
    want = cache[HOOKS[1]].reshape(-1, 32)
    assert got.shape == want.shape
    torch.testing.assert_close(got[got[:, 0].argsort()], want[want[:, 0].argsort()], rtol=1e-5, atol=1e-5)
    # the hooks' rows stay aligned token by token
    r = torch.cat([b[HOOKS[0]] for b in batches])
    w = cache[HOOKS[0]].reshape(-1, 32)
    torch.testing.assert_close(r[got[:, 0].argsort()], w[want[:, 0].argsort()], rtol=1e-5, atol=1e-5)
    # shuffled: the first batch is not one window's run of tokens
    assert not torch.allclose(batches[0][HOOKS[1]][:16], want[:16])


def test_stream_resumes_at_any_step(tiny_model, tiny_windows):
    full = take(stream_activations(tiny_model, tiny_windows, HOOKS, batch_size=32, block_batches=4, seed=5), 11)
    resumed = take(stream_activations(tiny_model, tiny_windows, HOOKS, batch_size=32, block_batches=4, seed=5, start_step=6), 5)
    for a, b in zip(full[6:], resumed):
        torch.testing.assert_close(a[HOOKS[0]], b[HOOKS[0]])


def test_skip_bos_leaves_out_every_first_position(tiny_model, tiny_windows):
    batches = take(stream_activations(tiny_model, tiny_windows, HOOKS, batch_size=30, block_batches=4, seed=0, skip_bos=True), 4)
    got = torch.cat([b[HOOKS[0]] for b in batches])
    _, cache = tiny_model.run_with_cache(tiny_windows, names_filter=HOOKS)
    first = cache[HOOKS[0]][:, 0]  # [40, 32]
    rest = cache[HOOKS[0]][:, 1:].reshape(-1, 32)
    assert torch.cdist(got, first).min() > 1e-3  # no BOS row anywhere
    assert torch.cdist(got, rest, compute_mode="donot_use_mm_for_euclid_dist").min(dim=1).values.max() < 1e-4  # every row is a real non-BOS row

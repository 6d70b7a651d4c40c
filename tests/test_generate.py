"""sae.generate: default = plain sampling with the seed; steered = a full-forward loop with the edit."""

import math

import pytest
import torch

from sae import Add, Clamp, Neuron, SAEError, generate, generate_stream

PROMPT = [5, 17, 3, 44, 9]


@torch.no_grad()
def test_no_intervention_equals_transformer_lens_sampling_with_the_seed(tiny_model):
    g = generate(tiny_model, PROMPT, seed=7, max_new_tokens=12, temperature=1.0)
    torch.manual_seed(7)
    # (TL's own KV-cached generate does not equal its full-forward one on a model without a
    # tokenizer; the full forward is the reference)
    ref = tiny_model.generate(torch.tensor([PROMPT]), max_new_tokens=12, temperature=1.0, stop_at_eos=False,
                              use_past_kv_cache=False, verbose=False, return_type="tokens")
    assert g.default.tokens == ref[0, len(PROMPT):].tolist()
    assert g.steered.tokens == g.default.tokens  # no edit: the same seed gives the same text
    # log-probs and greedy decoding against one full forward
    logits = tiny_model(torch.tensor([PROMPT + g.default.tokens]))[0].log_softmax(-1)
    want = [float(logits[len(PROMPT) - 1 + i, t]) for i, t in enumerate(g.default.tokens)]
    assert max(abs(a - b) for a, b in zip(g.default.logprobs, want)) < 1e-4
    greedy = generate(tiny_model, PROMPT, max_new_tokens=5, temperature=0)
    toks = list(PROMPT)
    for _ in range(5):
        toks.append(int(tiny_model(torch.tensor([toks]))[0, -1].argmax()))
    assert greedy.default.tokens == toks[len(PROMPT):]


@torch.no_grad()
def test_steered_run_equals_a_full_forward_loop_with_hand_hooks(tiny_model):
    """KV cache plus edits at given absolute positions and where the unit fires."""
    ivs = [Clamp(Neuron(1, 5), 4.0, positions=[2, 6, 8]), Add(Neuron(0, 2), 3.0, positions="firing")]

    def hand_clamp(act, hook):
        a = act.clone()
        idx = [p for p in (2, 6, 8) if p < a.shape[1]]
        a[:, idx, 5] = 4.0
        return a

    def hand_add(act, hook):
        a = act.clone()
        v = a[..., 2]
        a[..., 2] = torch.where(v > 0, v + 3.0, v)
        return a

    g = generate(tiny_model, PROMPT, ivs, seed=3, max_new_tokens=8, temperature=1.0)
    gen = torch.Generator().manual_seed(3)
    toks = list(PROMPT)
    hooks = [("blocks.1.mlp.hook_post", hand_clamp), ("blocks.0.mlp.hook_post", hand_add)]
    for _ in range(8):
        logits = tiny_model.run_with_hooks(torch.tensor([toks]), fwd_hooks=hooks)[0, -1]
        toks.append(int(torch.multinomial(torch.softmax(logits, -1)[None], 1, True, generator=gen)))
    assert g.steered.tokens == toks[len(PROMPT):]
    assert g.steered.tokens != g.default.tokens
    # activations: the unit before its edit, at every position; the default run reads it unedited
    _, cache = tiny_model.run_with_cache(torch.tensor([PROMPT + g.default.tokens]))
    assert len(g.default.activations[0]) == len(PROMPT) + 8
    assert torch.allclose(torch.tensor(g.default.activations[0]), cache["blocks.1.mlp.hook_post"][0, :, 5], atol=1e-5)
    with tiny_model.hooks(fwd_hooks=[("blocks.0.mlp.hook_post", hand_add)]):
        _, cache = tiny_model.run_with_cache(torch.tensor([PROMPT + g.steered.tokens]))
    assert torch.allclose(torch.tensor(g.steered.activations[0]), cache["blocks.1.mlp.hook_post"][0, :, 5], atol=1e-4)


def test_stream_yields_one_step_per_token_and_matches_generate(tiny_model):
    ivs = [Add(Neuron(1, 5), 2.0)]
    steps = list(generate_stream(tiny_model, PROMPT, ivs, seed=1, max_new_tokens=4))
    g = generate(tiny_model, PROMPT, ivs, seed=1, max_new_tokens=4)
    assert [s.steered_token for s in steps] == g.steered.tokens and [s.default_token for s in steps] == g.default.tokens
    assert steps[0].prompt_activations is not None and steps[1].prompt_activations is None


def test_bad_generation_arguments_are_one_clear_error(tiny_model):
    for kwargs, msg in [({"prompt": []}, "empty"), ({"temperature": math.nan}, "temperature"),
                        ({"max_new_tokens": 0}, "max_new_tokens"), ({"max_new_tokens": 100}, "context")]:
        with pytest.raises(SAEError, match=msg):
            generate(tiny_model, **{"prompt": PROMPT, **kwargs})


@torch.no_grad()
def test_a_latent_with_no_edit_reads_the_same_in_both_runs(tiny_model):
    from sae import Latent, SAEConfig, TrainConfig, create_sae
    sae = create_sae(SAEConfig("relu", 32, 64, hook_name="blocks.1.hook_resid_post"))
    sae.init_weights(torch.Generator().manual_seed(0), TrainConfig())
    g = generate(tiny_model, PROMPT, [Add(Latent("blocks.1.hook_resid_post", 4, sae=sae), 0.0)], seed=2, max_new_tokens=6)
    assert g.steered.tokens == g.default.tokens
    assert torch.allclose(torch.tensor(g.steered.activations[0]), torch.tensor(g.default.activations[0]), atol=1e-5)
    assert max(g.default.activations[0]) > 0
    assert not any("hook_sae" in k for k in tiny_model.hook_dict)


@torch.no_grad()
@pytest.mark.parametrize("stop_at_eos", [False, True])
def test_a_given_default_runs_only_the_steered_continuation_and_changes_nothing(tiny_model, stop_at_eos):
    from sae import Latent, SAEConfig, TrainConfig, create_sae
    sae = create_sae(SAEConfig("relu", 32, 64, hook_name="blocks.1.hook_resid_post"))
    sae.init_weights(torch.Generator().manual_seed(0), TrainConfig())
    kw = dict(seed=5, max_new_tokens=10, temperature=1.0, stop_at_eos=stop_at_eos)
    plain = generate(tiny_model, PROMPT, **kw)  # no intervention: the default run alone is what is reused
    for ivs in ([Add(Neuron(1, 5), 6.0)], [Add(Latent("blocks.1.hook_resid_post", 3, sae=sae), 9.0)]):
        whole = generate(tiny_model, PROMPT, ivs, **kw)
        assert whole.default.tokens == plain.default.tokens  # the default run does not depend on the edit
        fast = generate(tiny_model, PROMPT, ivs, default=plain.default, **kw)
        assert fast.default is plain.default
        assert fast.steered == whole.steered  # tokens, text, log-probs and unit values
        assert fast.steered.tokens != fast.default.tokens

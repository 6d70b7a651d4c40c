"""The all-at-once LLM simulator (one teacher-forced forward per batch) and the LLM cross-check,
on tiny local Hugging Face models (random weights, GPT-2's tokenizer: its digits are single tokens)."""

import json
from dataclasses import replace

import numpy as np
import pytest
import synthetic_scoring as ss
import torch
from scipy.stats import spearmanr
from test_depth import CFG, HELD, TRAIN

from analyses.scoring import ScoringConfig, make_scorers, score_many
from analyses.scoring.agreement import cross_summary, spearman, spearman_ci
from analyses.scoring.examples import FeatureExamples
from analyses.scoring.explain import Explanation
from analyses.scoring.llm import CachedLLM, LocalHF, make_llm
from analyses.scoring.llm_explain import LLMExplainer, LLMSimulator
from analyses.scoring.llm_slots import SLOT_PROMPT, SlotSimulator, answer_ids
from interp.errors import InterpError
from interp.gpt2_tokenizer import gpt2_tokenizer
from interp.pipelines.compare_layers import compare_layers


def tiny_lm(folder, arch):
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    if arch == "llama":
        model = LlamaForCausalLM(LlamaConfig(vocab_size=50257, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024))
    else:
        model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=4, n_positions=1024))
    model.save_pretrained(folder)
    gpt2_tokenizer().save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module", params=["llama", "gpt2"])
def local(request, tmp_path_factory):
    return LocalHF(tiny_lm(tmp_path_factory.mktemp(request.param), request.param), device="cpu")


def examples(tok, lengths=(12, 5, 9, 12, 3)):
    """Real words as tokens; example i has lengths[i] valid tokens (the rest past a window's end)."""
    ids = tok(" the cat sat on the mat and then it ran to the dog, which barked at 10 cars\n in a row.")["input_ids"]
    L = max(lengths)
    tokens = torch.tensor([(ids * 3)[i:i + L] for i in range(len(lengths))])
    valid = torch.arange(L).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
    return FeatureExamples(0, tokens, tokens, torch.zeros(tokens.shape), valid, 2)


def test_one_value_per_valid_token_in_0_1_from_one_forward_per_batch(local):
    tok = local.tokenizer
    ex = examples(tok)
    sim = SlotSimulator(local, tok, batch_size=2)
    before = local.forwards
    out = sim.simulate(Explanation(text="the word cat"), ex)
    assert local.forwards - before == 1 + 3  # the prompt's prefix once, then 5 examples in batches of 2
    assert out.shape == ex.tokens.shape
    assert bool(((out[ex.valid] >= 0) & (out[ex.valid] <= 1)).all()) and bool((out[~ex.valid] == 0).all())
    assert float(out[ex.valid].std()) > 0  # a random model is not constant: the slots are read, not filled
    kept = sim.take_prompts()
    assert [k["example"] for k in kept] == list(range(5))
    assert [len(k["answer"]) for k in kept] == ex.valid.sum(1).tolist() and "the word cat" in kept[0]["prompt"]
    sim.simulate(Explanation(text="the word cat"), ex)
    assert local.forwards - before == 1 + 3 + 3  # same explanation: the prefix is not run again


def test_a_slot_is_the_expected_digit_of_a_full_forward_renormalised_over_the_ten(local):
    tok = local.tokenizer
    ex = examples(tok)
    sim = SlotSimulator(local, tok, batch_size=3)  # example 1 (5 tokens) is padded beside examples 0 and 2
    out = sim.simulate(Explanation(text="numbers"), ex)
    prefix = local.chat_ids(SLOT_PROMPT.format(explanation="numbers"))
    digits = answer_ids(tok)
    for i, j in ((1, 4), (3, 7), (4, 0)):
        ids, slots = sim.suffix(ex.tokens[i][ex.valid[i]].tolist())
        with torch.no_grad():
            logits = local._lm(torch.tensor([prefix + ids])).logits[0, len(prefix) + slots[j]]
        p = torch.softmax(logits[digits].double(), -1)
        assert float(out[i, j]) == pytest.approx(float(p @ torch.arange(10.0, dtype=torch.float64)) / 9, abs=1e-4)


def test_the_hf_backend_simulates_all_at_once_and_an_endpoint_generates(local, tmp_path):
    hf = CachedLLM(local, tmp_path)
    _, sim = make_scorers("llm", "llm", llm=hf, tokenizer=local.tokenizer)
    assert isinstance(sim, SlotSimulator) and sim.backend is local
    _, sim = make_scorers("llm", "llm", llm=make_llm("openai", "m", base_url="http://127.0.0.1:9/v1", cache_dir=tmp_path))
    assert isinstance(sim, LLMSimulator)


def test_a_tokenizer_that_splits_a_digit_is_refused():
    def splits_seven(text, add_special_tokens=False):
        return {"input_ids": [1, 2] if text == "7" else [int(text)]}

    with pytest.raises(InterpError, match="writes the digit 7 as 2 tokens"):
        answer_ids(splits_seven)


def test_spearman_agrees_with_scipy_and_its_ci_covers_it():
    g = np.random.default_rng(0)
    a = g.normal(size=30)
    b = a + g.normal(size=30)
    b[:3] = b[3]  # ties
    assert spearman(a, b) == pytest.approx(spearmanr(a, b).statistic)
    ci = spearman_ci(a, b, n_boot=300)
    assert ci["lo"] < ci["rho"] < ci["hi"] and ci["n"] == 30
    assert spearman([1, 2, 3], [5, 5, 5]) is None and spearman([1, 2], [1, 2]) is None
    units = [{"top_random": float(x), "random_only": None, "detection": 0.5, "cross": {"top_random": float(y),
              "random_only": 0.1 * k, "detection": None}} for k, (x, y) in enumerate(zip(a, b))] + [{"top_random": 0.3}]
    s = cross_summary(units, 300)
    assert s["top_random"]["n"] == 30 and s["top_random"]["rho"] == pytest.approx(spearman(a, b))
    assert s["random_only"]["tokens"]["n_undefined"] == 30 and s["detection"]["llm"]["n_undefined"] == 30


def test_the_cross_check_scores_a_subset_of_the_same_units_on_the_same_examples(local, tmp_path):
    tok = gpt2_tokenizer()
    tt, ta, ht, ha = ss.split(lambda t, s: torch.stack([ss.on_token(t, 7, seed=s), ss.on_token(t, 9, seed=s),
                                                        ss.on_token(t, 12, seed=s)], -1), n_train=40, n_heldout=40)
    cfg = ScoringConfig(example_len=8, n_top_train=3, n_random_train=2, n_top_heldout=3, n_random_heldout=3, n_boot=50)
    llm = CachedLLM(LocalHF(local.model_ref, device="cpu", max_new_tokens=6), tmp_path / "cache")
    cross = (LLMExplainer(llm, tok, n_examples=2), SlotSimulator(llm, tok), 2)
    res = score_many({"n": (ss.neurons(3), None)}, ss.batches(tt, ta), ss.batches(ht, ha), cfg, tok, cross=cross)["n"]
    assert len(res.scores) == 3 and len(res.cross.scores) == 2
    mine = res.by_feature()
    for c in res.cross.scores:  # the same held-out examples: the same tokens counted, the same firing contexts
        s = mine[c.feature]
        assert (c.n_heldout_tokens, c.n_firing_contexts, c.n_heldout_top) == (s.n_heldout_tokens, s.n_firing_contexts, s.n_heldout_top)
        assert c.explanation.prompt and len(c.simulation_prompts) == 6 and c.score_bands is None
        assert s.explanation.explainer == "tokens" and c.explanation.explainer.startswith("llm")
    res.save(tmp_path / "out")
    kept = [json.loads(line) for line in (tmp_path / "out" / "cross_check" / "llm_prompts.jsonl").read_text().splitlines()]
    assert [k["kind"] for k in kept].count("explain") == 2 and [k["kind"] for k in kept].count("simulate") == 12
    assert not (tmp_path / "out" / "llm_prompts.jsonl").exists()  # the token pipeline asked no LLM


def test_the_packaged_smollm2_tokenizer_writes_each_digit_as_one_token():
    from transformers import AutoTokenizer

    from interp.models.fetch import fetch_model
    from interp.models.smollm2 import GGUF, GGUF_DIR

    tok = AutoTokenizer.from_pretrained(str(fetch_model("smollm2-135m") / GGUF_DIR), gguf_file=GGUF, local_files_only=True)
    ids = answer_ids(tok)
    assert len(set(ids)) == 10 and [tok.decode([i]) for i in ids] == [str(d) for d in range(10)]
    assert len(tok("10", add_special_tokens=False)["input_ids"]) == 2  # why the scale stops at 9


def test_compare_layers_cross_check_writes_paired_scores_and_their_agreement(tiny_model, local, tmp_path):
    llm = CachedLLM(LocalHF(local.model_ref, device="cpu", max_new_tokens=4), tmp_path / "cache")
    cross = make_scorers("llm", "llm", llm=llm)
    cfg = replace(CFG, bases=("neurons", "sae", "random"), cross_check_units=3)
    res = compare_layers(tiny_model, [1], TRAIN, HELD, tmp_path / "run", cfg, log=lambda s: None, progress=False, cross=cross)
    table = res["cross_check"]
    assert [(c["basis"], c["n"]) for c in table] == [("neurons", 3), ("sae", 3), ("random", 3), ("all bases", 9)]
    assert table[0]["llm_minus_random"] is not None and table[2]["llm_minus_random"] is None
    units = json.loads((tmp_path / "run" / "layers" / "L01" / "units.json").read_text())
    crossed = [u for u in units["sae"] if "cross" in u]
    assert len(crossed) == 3 and len(units["sae"]) == 6 and all(u["cross"]["explanation"] for u in crossed)
    assert (tmp_path / "run" / "layers" / "L01" / "sae" / "s0" / "cross_check" / "llm_prompts.jsonl").exists()
    assert "LLM cross-check" in (tmp_path / "run" / "report.md").read_text()
    assert res["settings"]["cross_check"][1].startswith("llm all-at-once")

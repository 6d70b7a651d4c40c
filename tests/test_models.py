"""load_model reads every kind of model as a HookedTransformer whose outputs match the original."""

import time

import pytest
import torch

from interp.errors import InterpError
from interp.models import OFFLINE_MODELS, fetch_model, load_model, offline_model_dir
from interp.models.converted import MARKER, save_converted
from interp.models.hub import hub_reachable

PARAGRAPH = (
    "The history of the city goes back more than two thousand years. It began as a small fishing "
    "village on the banks of the river, and over the centuries it grew into a busy port. Merchants "
    "from many countries came to trade wool, salt and wine, and the town built walls, churches and "
    "a great market square. Today most of the old buildings are gone, but the narrow streets near "
    "the harbour still follow the lines that were drawn in the middle ages."
)


def centred(logits: torch.Tensor) -> torch.Tensor:
    # TransformerLens centres the unembedding, which shifts every logit of a position equally
    return logits - logits.mean(-1, keepdim=True)


def assert_same_logits(hf_model, model, d_vocab: int) -> None:
    ids = torch.randint(0, d_vocab, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = centred(hf_model(ids).logits)
        got = centred(model(ids))
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() < 1e-4


@pytest.fixture(scope="module")
def gpt2_folder(tmp_path_factory):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    hf = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=64, n_head=4, n_positions=64)).eval()
    folder = tmp_path_factory.mktemp("models") / "tiny-gpt2"
    hf.save_pretrained(folder)
    return folder, hf


def test_gpt2_folder_matches_hugging_face(gpt2_folder):
    folder, hf = gpt2_folder
    model = load_model(folder, device="cpu")
    assert model.cfg.model_name == "tiny-gpt2"
    assert model.cfg.normalization_type == "LNPre"  # LayerNorm folded, as from_pretrained does
    assert_same_logits(hf, model, 50257)


def test_gpt2_folder_without_tokenizer_gets_gpt2s(gpt2_folder):
    model = load_model(gpt2_folder[0], device="cpu")
    assert model.to_tokens("Hello, world!", prepend_bos=False).tolist() == [[15496, 11, 995, 0]]


def test_standard_gpt2_shape_converts():
    from transformers import GPT2Config, GPT2LMHeadModel

    from interp.models.convert import hooked_from_hf

    torch.manual_seed(0)
    # 12 layers, d_model 768, 12 heads as in gpt2; a short vocabulary keeps the test fast
    hf = GPT2LMHeadModel(GPT2Config(vocab_size=1024, n_positions=128)).eval()
    ids = torch.randint(0, 1024, (1, 16))
    with torch.no_grad():
        expected = centred(hf(ids).logits)
    model = hooked_from_hf(hf, None, "gpt2-shape")
    assert (model.cfg.n_layers, model.cfg.d_model, model.cfg.n_heads, model.cfg.d_mlp) == (12, 768, 12, 3072)
    with torch.no_grad():
        assert (centred(model(ids)) - expected).abs().max().item() < 1e-4


@pytest.mark.parametrize("tied", [False, True])
def test_llama_folder_with_grouped_query_attention_matches(tmp_path, tied):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=500, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, rope_theta=50000.0, tie_word_embeddings=tied,
    )
    hf = LlamaForCausalLM(config).eval()
    hf.save_pretrained(tmp_path / "tiny-llama")
    model = load_model(tmp_path / "tiny-llama", device="cpu")
    assert model.cfg.n_key_value_heads == 2 and model.cfg.rotary_base == 50000.0
    assert model.cfg.model_name == "tiny-llama"
    assert_same_logits(hf, model, 500)


def test_converted_folder_round_trips(gpt2_folder, tmp_path):
    model = load_model(gpt2_folder[0], device="cpu")
    save_converted(model, tmp_path / "saved")
    again = load_model(tmp_path / "saved", device="cpu")
    ids = torch.tensor([[1, 2, 3, 50000]])
    with torch.no_grad():
        assert torch.equal(model(ids), again(ids))
    assert again.to_tokens("Hello", prepend_bos=False).tolist() == [[15496]]
    assert load_model(tmp_path / "saved", dtype=torch.bfloat16).W_E.dtype == torch.bfloat16


@pytest.fixture(scope="module")
def smollm2():
    from interp.models.smollm2 import GGUF_DIR, load_gguf

    model = load_model("smollm2-135m", device="cpu")
    hf, tokenizer = load_gguf(offline_model_dir("smollm2-135m") / GGUF_DIR)
    return model, hf, tokenizer


def test_smollm2_loss_matches_hugging_face_gguf(smollm2):
    model, hf, tokenizer = smollm2
    ids = torch.tensor([tokenizer.encode(PARAGRAPH)])
    assert torch.equal(model.to_tokens(PARAGRAPH), ids)  # no BOS, like SmolLM2's own tokenizer
    with torch.no_grad():
        hf_loss = hf(ids, labels=ids).loss.item()
        loss = model(ids, return_type="loss").item()
    assert 1.0 < loss < 5.0  # a trained model, not noise (log 49152 = 10.8)
    assert abs(loss - hf_loss) < 1e-3
    assert model.cfg.model_name == "smollm2-135m"


def test_smollm2_knows_the_capital_of_france(smollm2):
    model = smollm2[0]
    with torch.no_grad():
        logits = model("The capital of France is")[0, -1]
    assert model.tokenizer.decode(logits.argmax()) == " Paris"


def test_fetch_model_is_idempotent():
    start = time.perf_counter()
    folder = fetch_model("smollm2-135m")
    assert time.perf_counter() - start < 1.0
    assert folder == offline_model_dir("smollm2-135m") and (folder / MARKER).is_file()
    assert not list(folder.parent.glob(".smollm2-135m.tmp-*"))


def test_interrupted_fetch_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_HOME", str(tmp_path))

    def broken_build(folder):
        (folder / "model.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setitem(OFFLINE_MODELS, "half-model", broken_build)
    with pytest.raises(KeyboardInterrupt):
        fetch_model("half-model")
    assert list((tmp_path / "models").iterdir()) == []


def test_gpt2_offline_fails_fast_naming_the_offline_choices(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))  # an empty Hub cache
    with pytest.raises(InterpError, match="unreachable") as e:
        load_model("gpt2")
    assert "smollm2-135m" in str(e.value) and "interp fetch model" in str(e.value) and "folder" in str(e.value)


def test_gpt2_offline_loads_from_the_hub_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants
    from transformers import GPT2Config, GPT2LMHeadModel

    from interp.gpt2_tokenizer import gpt2_tokenizer

    # a Hub cache laid out as huggingface_hub writes it, holding a small random "gpt2"
    snapshot = tmp_path / "models--gpt2" / "snapshots" / ("0" * 40)
    torch.manual_seed(0)
    hf = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=64, n_head=4, n_positions=64, n_ctx=64)).eval()
    hf.save_pretrained(snapshot)
    gpt2_tokenizer().save_pretrained(snapshot)
    (tmp_path / "models--gpt2" / "refs").mkdir()
    (tmp_path / "models--gpt2" / "refs" / "main").write_text("0" * 40)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    model = load_model("gpt2", device="cpu")
    assert model.cfg.model_name == "gpt2" and model.cfg.n_layers == 2
    assert_same_logits(hf, model, 50257)


def test_unreachable_hub_is_detected_without_retries(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: connection refused
    assert hub_reachable(timeout=2.0) is False


@pytest.mark.parametrize("name", ["no-such-model", "./no/such/folder"])
def test_unknown_name_or_missing_folder_is_an_interp_error(name):
    with pytest.raises(InterpError, match="smollm2-135m"):
        load_model(name)


def test_folder_of_another_architecture_is_an_interp_error(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(InterpError, match="GPT-2 or Llama"):
        load_model(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InterpError, match="no model"):
        load_model(tmp_path / "empty")

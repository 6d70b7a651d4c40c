"""The deterministic explainer: a feature explained by the tokens and token pairs that make it fire.

An explanation is a short list of terms, each a token ("the token ` the`, in any context") or a
bigram ("` the` right after ` of`"), with a weight: the feature's mean activation, as a fraction of
its train max, where that term applies, shrunk toward the overall mean by `prior_count` pseudo-
occurrences so that a token seen once does not get full weight. Where several terms apply, the most
specific wins (the bigram over its token); tokens no term names get the baseline. Written out:

    " the" (0.83), " of| the" (0.71)

The terms are read off a feature's train examples (top and random) by greedy least squares: start
from the baseline alone, and add the term that most reduces the squared error of that prediction
on the examples' tokens, as long as it raises the prediction where it applies, applies to at least
`min_count` tokens and removes at least `min_gain` of the variance, up to `max_terms` terms. Each step is vectorised over all candidate
terms (every token and bigram present in the examples), so a feature costs a few milliseconds.

Activations are clipped at 0 before explaining: an explanation says where a feature fires."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch

BIG = 1 << 32  # bigram key = (prev + 1) * BIG + token; token ids are far below 2**32


@dataclass
class Term:
    token: int
    prev: int | None  # None: the token in any context; else the token right after `prev`
    weight: float  # predicted activation where the term applies, a fraction of the train max
    count: int  # tokens of the train examples where the term decided the prediction
    text: str = ""  # readable: '" the"' or '" of| the"'


@dataclass
class Explanation:
    text: str  # the readable explanation that dashboards show
    terms: list[Term] = field(default_factory=list)  # empty for an LLM's free-text explanation
    baseline: float = 0.0  # predicted activation of tokens no term names
    explainer: str = "tokens"
    prompt: str | None = None  # what an LLM explainer was asked, and its answer
    answer: str | None = None

    def to_json(self) -> dict:
        out = asdict(self)
        return {k: v for k, v in out.items() if v is not None}


@dataclass
class TokenExplainerConfig:
    max_terms: int = 10  # an explanation a person can read at a glance
    prior_count: float = 1.0  # pseudo-occurrences at the overall mean added to every term
    min_gain: float = 0.01  # a term must remove at least this share of the variance
    min_count: int = 2  # and apply to at least this many tokens: one sighting is no pattern


def token_decoder(tokenizer=None) -> Callable[[int], str]:
    """Token id -> its text (' the'); '#id' when there is no tokenizer."""
    if tokenizer is None:
        return lambda t: f"#{t}"
    cache: dict[int, str] = {}

    def decode(t: int) -> str:
        if t not in cache:
            cache[t] = tokenizer.decode([t])
        return cache[t]

    return decode


def term_text(token: int, prev: int | None, decode: Callable[[int], str]) -> str:
    return json.dumps(decode(token) if prev is None else f"{decode(prev)}|{decode(token)}", ensure_ascii=False)


def _move_gain(Sm, Nm, Ss, Ns, k: float):
    """Drop in squared error when tokens with (centred) sum Sm and count Nm leave a group (Ss, Ns)
    to form their own: each group predicts its shrunk mean S / (N + k)."""
    return Sm**2 / (Nm + k) + (Ss - Sm) ** 2 / (Ns - Nm + k) - Ss**2 / (Ns + k)


def explain_tokens(
    tokens: torch.Tensor,  # [n, L] int64 the train examples' tokens
    prev: torch.Tensor,  # [n, L] int64 the token before each
    acts: torch.Tensor,  # [n, L] the feature's true activations
    valid: torch.Tensor,  # [n, L] bool
    cfg: TokenExplainerConfig = TokenExplainerConfig(),
    decode: Callable[[int], str] = token_decoder(),
) -> Explanation:
    t, p, a = tokens[valid], prev[valid], acts[valid].double().clamp(min=0)
    top = float(a.max()) if len(a) else 0.0
    if top <= 0:
        return Explanation(text="(never fires on the train examples)")
    a = a / top
    mu = float(a.mean())
    c = a - mu  # centred: a group's shrunk mean is mu + S / (N + k)
    k = cfg.prior_count
    ukey, uid = torch.unique(t, return_inverse=True)
    bkey, bid = torch.unique((p + 1) * BIG + t, return_inverse=True)
    b_uni = torch.zeros(len(bkey), dtype=torch.int64).scatter_(0, bid, uid)  # each bigram's token
    Sb = torch.zeros(len(bkey), dtype=torch.float64).index_add_(0, bid, c)
    Nb = torch.bincount(bid, minlength=len(bkey)).double()
    in_u = torch.zeros(len(ukey), dtype=torch.bool)
    in_b = torch.zeros(len(bkey), dtype=torch.bool)
    total = float((c * c).sum())
    for _ in range(cfg.max_terms):
        Su, Nu, Sr, Nr = _groups(c, uid, bid, in_u, in_b)
        # a token not yet named takes its tokens that no named bigram holds, from the rest
        gu = _move_gain(Su, Nu, Sr, Nr, k)
        ok_u = ~in_u & (Nu >= cfg.min_count) & (Su / (Nu + k) > (Sr - Su) / (Nr - Nu + k))
        # a bigram takes its tokens from its token's group if that is named, else from the rest
        named = in_u[b_uni]
        Ss, Ns = torch.where(named, Su[b_uni], Sr), torch.where(named, Nu[b_uni], Nr)
        gb = _move_gain(Sb, Nb, Ss, Ns, k) * (1 - 1e-9)  # on a tie, the plain token is the simpler term
        ok_b = ~in_b & (Nb >= cfg.min_count) & (Sb / (Nb + k) > (Ss - Sb) / (Ns - Nb + k))
        gains = torch.cat([torch.where(ok_u, gu, -1.0), torch.where(ok_b, gb, -1.0)])
        best = int(gains.argmax())
        if float(gains[best]) < cfg.min_gain * total:
            break
        if best < len(ukey):
            in_u[best] = True
        else:
            in_b[best - len(ukey)] = True
    Su, Nu, Sr, Nr = _groups(c, uid, bid, in_u, in_b)
    terms = [Term(int(ukey[u]), None, mu + float(Su[u]) / (float(Nu[u]) + k), int(Nu[u])) for u in in_u.nonzero().flatten()]
    terms += [Term(int(bkey[b] % BIG), int(bkey[b] // BIG) - 1, mu + float(Sb[b]) / (float(Nb[b]) + k), int(Nb[b]))
              for b in in_b.nonzero().flatten()]
    terms.sort(key=lambda x: -x.weight)
    for term in terms:
        term.text = term_text(term.token, term.prev, decode)
    baseline = mu + float(Sr) / (float(Nr) + k)
    text = ", ".join(f"{x.text} ({x.weight:.2f})" for x in terms) if terms else "(no token or token pair predicts it)"
    return Explanation(text=text, terms=terms, baseline=baseline)


def _groups(c, uid, bid, in_u, in_b):
    """(sum and count per token over the tokens no named bigram holds, and those of the rest)."""
    free = ~in_b[bid]
    Su = torch.zeros(len(in_u), dtype=torch.float64).index_add_(0, uid, torch.where(free, c, 0.0))
    Nu = torch.zeros(len(in_u), dtype=torch.float64).index_add_(0, uid, free.double())
    rest = free & ~in_u[uid]
    return Su, Nu, c[rest].sum(), rest.sum().double()

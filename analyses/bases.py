"""Bases of a site, scored side by side: the model's neurons, SAE features, and null bases.

    basis = projection_basis("random", random_directions(d, 100, seed=0), hook)   # a Dictionary

A basis is a `Dictionary` (analyses/dictionary.py), so every basis goes through the same
explainer, simulator and examples. Its units:

- `neurons`: the site's own coordinates (MLP neurons at mlp_post, residual dimensions at resid_*);
- `sae`: the latents of an SAE trained on the site;
- `random`: independent Gaussian directions of the site, normalised to unit length;
- `rotated`: orthonormal columns of a Haar-random rotation of the neuron basis;
- `pca`, `ica`: scikit-learn's PCA and FastICA fitted on train-split tokens of the site; a unit's
  activation is the component's value as `transform` computes it, (x - mean) @ components_.T;
- `sae-random-model`: the same SAE recipe trained on the same site of a randomly initialised copy
  of the model (its activations come from that copy; see interp.models.random_copy).

THE SIGN RULE ("fires"). A unit fires where its activation is > 0, and only that positive part is
explained and scored: truth and simulation are both the positive part. A unit that takes both
signs (a projection, a neuron of a gated or GELU MLP, a residual dimension, a PCA or ICA
component) is split into two half-units, its positive side relu(a) and its negative side
relu(-a), each a unit of its own, sampled, explained and scored like any other. SAE latents are
never negative (ReLU, TopK, JumpReLU), so they have only the positive side. Half-unit j < n is
the positive side of unit j, half-unit n + j its negative side (`half_unit`)."""

from __future__ import annotations

import numpy as np
import torch

from analyses.dictionary import Dictionary
from interp.errors import InterpError

BASES = ("neurons", "sae", "random", "rotated", "pca", "ica", "sae-random-model")
DEFAULT_BASES = ("neurons", "sae", "random", "pca")
NULLS = ("random", "rotated", "pca", "ica", "sae-random-model")
SIGNED = ("neurons", "random", "rotated", "pca", "ica")  # split into positive and negative half-units
SIGN_RULE = ("a unit fires where its activation is > 0; truth and simulation are both its positive part; "
             "a unit taking both signs (neurons, random, rotated, PCA, ICA) is split into two half-units, "
             "relu(a) and relu(-a), each sampled and scored as a unit of its own; SAE latents are never negative")


def parse_bases(text: str) -> list[str]:
    """'neurons,sae,random' -> the list, in the order given; one clear line for an unknown name."""
    names = [b.strip() for b in str(text).split(",") if b.strip()]
    if not names:
        raise InterpError(f"--bases names no basis; choose among {', '.join(BASES)}.")
    bad = [b for b in names if b not in BASES]
    if bad:
        raise InterpError(f"unknown basis {bad[0]!r}; choose among {', '.join(BASES)}.")
    if len(set(names)) != len(names):
        raise InterpError(f"--bases names a basis twice ({text}).")
    return names


def half_unit(j: int, n_units: int) -> tuple[int, str]:
    """Half-unit id -> (unit, '+' or '-')."""
    return (j, "+") if j < n_units else (j - n_units, "-")


# --- directions -------------------------------------------------------------------------------

def random_directions(d: int, n: int, seed: int) -> torch.Tensor:  # [d, n] unit columns
    g = torch.Generator().manual_seed(int(seed))
    W = torch.randn(d, n, generator=g, dtype=torch.float64)
    return (W / W.norm(dim=0, keepdim=True)).float()


def rotation_columns(d: int, n: int, seed: int) -> torch.Tensor:  # [d, n] orthonormal columns
    """The first n columns of a Haar-random d x d rotation (QR of a Gaussian, signs fixed)."""
    if n > d:
        raise InterpError(f"a rotation of {d} dimensions has only {d} columns, not {n}.")
    g = torch.Generator().manual_seed(int(seed))
    q, r = torch.linalg.qr(torch.randn(d, n, generator=g, dtype=torch.float64))
    return (q * torch.sign(torch.diagonal(r)).unsqueeze(0)).float()


def fit_pca(x: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(mean [d], components [d, d]) of scikit-learn's PCA on x [N, d], all d components."""
    from sklearn.decomposition import PCA

    n, d = x.shape
    if n < d:
        raise InterpError(f"PCA of {d} dimensions needs at least {d} tokens to fit on, not {n}; "
                          "record more train tokens or drop pca from --bases.")
    pca = PCA(n_components=d, svd_solver="full", random_state=seed).fit(x)
    return pca.mean_.astype(np.float32), pca.components_.astype(np.float32)


def fit_ica(x: np.ndarray, n_components: int, seed: int = 0, max_iter: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """(mean [d], components [k, d]) of scikit-learn's FastICA (unit-variance whitening) on x [N, d]."""
    import warnings

    from sklearn.decomposition import FastICA
    from sklearn.exceptions import ConvergenceWarning

    n, d = x.shape
    if not 1 <= n_components <= d:
        raise InterpError(f"ICA components must be between 1 and the site's width {d}, not {n_components}.")
    if n < n_components:
        raise InterpError(f"ICA of {n_components} components needs at least {n_components} tokens, not {n}.")
    ica = FastICA(n_components=n_components, whiten="unit-variance", random_state=seed, max_iter=max_iter)
    with warnings.catch_warnings():  # an unconverged ICA is still a basis; the report says how it was fit
        warnings.simplefilter("ignore", ConvergenceWarning)
        ica.fit(x)
    return ica.mean_.astype(np.float32), ica.components_.astype(np.float32)


# --- dictionaries ---------------------------------------------------------------------------------

def projection_basis(kind: str, W: torch.Tensor, hook: str, model_name: str = "",
                     mean: torch.Tensor | None = None) -> Dictionary:
    """Units a = (x - mean) @ W (W [d, n]), split into 2n half-units by the sign rule."""
    W = torch.as_tensor(W, dtype=torch.float32)
    mu = None if mean is None else torch.as_tensor(mean, dtype=torch.float32)

    def encode(x: torch.Tensor) -> torch.Tensor:
        a = (x if mu is None else x - mu.to(x.device)) @ W.to(x.device)
        return torch.cat([a.clamp(min=0), (-a).clamp(min=0)], 1)

    D = W.T.contiguous()
    return Dictionary(encode=encode, W_dec=torch.cat([D, -D]), hook_name=hook, model_name=model_name, kind=kind)


def signed_neurons(neurons: Dictionary) -> Dictionary:
    """The neuron dictionary split into positive and negative half-neurons."""

    def encode(x: torch.Tensor) -> torch.Tensor:
        a = neurons.encode(x)
        return torch.cat([a.clamp(min=0), (-a).clamp(min=0)], 1)

    return Dictionary(encode=encode, W_dec=torch.cat([neurons.W_dec, -neurons.W_dec]), hook_name=neurons.hook_name,
                      model_name=neurons.model_name, decoder_space=neurons.decoder_space, kind="neurons")


def nonnegative(d: Dictionary) -> Dictionary:
    """An SAE's dictionary with its activations clipped at 0 (a no-op for ReLU/TopK/JumpReLU
    latents; it makes the rule hold for any encoder)."""
    return Dictionary(encode=lambda x: d.encode(x).clamp(min=0), W_dec=d.W_dec, hook_name=d.hook_name,
                      model_name=d.model_name, decoder_space=d.decoder_space, kind=d.kind)


def fit_sample(cache, hook: str, n_tokens: int, seed: int = 0) -> np.ndarray:
    """Up to n_tokens train tokens of `hook` from an activation cache, BOS positions left out,
    drawn without replacement with a fixed seed: what PCA and ICA are fitted on."""
    rows = np.arange(cache.n_tokens)
    rows = rows[rows % cache.context_size != 0]
    if n_tokens < len(rows):
        rows = np.sort(np.random.default_rng(seed).choice(rows, n_tokens, replace=False))
    out, start = [], 0
    for i, s in enumerate(cache.shards):
        n = s.n_windows * cache.context_size
        sel = rows[(rows >= start) & (rows < start + n)] - start
        if len(sel):
            out.append(np.asarray(cache.shard_acts(i, hook)[sel], dtype=np.float32))
        start += n
    return np.concatenate(out) if out else np.zeros((0, cache.hooks[hook]), dtype=np.float32)

"""Interpretability scores for features and neurons, after Bills et al. (2023).

For each feature: EXPLAIN it from its top-activating examples on the train split (plus random train
examples, which show where it stays silent); SIMULATE its activations from the explanation alone on
held-out examples, its top-activating ones and random ones shared by every feature; the SCORE is
the correlation of simulated and true activations over all tokens of those held-out examples
(Bills et al.'s "top-and-random" score). DETECTION is the AUROC with which the simulation tells
held-out firing contexts from silent ones (analyses/scoring/detection.py).

A neuron is the feature of the identity dictionary (analyses/dictionary.py), so neurons and SAE
features go through the same code. Dead features (never firing on the train split) are excluded,
as in Bills et al. and CRATE-LM: see analyses/scoring/stats.py.

Two streaming passes, one per split, gather every feature's examples at once
(analyses/scoring/examples.py); the explanation and simulation then loop over features, each on a
few thousand tokens."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import torch

from analyses.dictionary import Dictionary
from analyses.scoring.bands import BandConfig
from analyses.scoring.detection import detection_auroc
from analyses.scoring.examples import FeatureExamples, SplitExamples, collect_many
from analyses.scoring.explain import Explanation, TokenExplainerConfig, explain_tokens, token_decoder
from analyses.scoring.kinds import summarize_kinds
from analyses.scoring.llm_explain import LLMExplainer, LLMSimulator
from analyses.scoring.llm_slots import SlotSimulator
from analyses.scoring.results import FeatureScore, ScoreResult
from analyses.scoring.simulate import simulate_tokens
from analyses.scoring.stats import bootstrap_ci, derived_seed, pearson, sample_live
from interp.errors import InterpError


@dataclass
class ScoringConfig:
    example_len: int = 32  # tokens per example (Bills et al. used 64-token excerpts)
    n_top_train: int = 20  # top-activating train examples the explanation is read from
    n_random_train: int = 20  # random train examples, shared by all features
    n_top_heldout: int = 20  # top-activating held-out examples simulated
    n_random_heldout: int = 20  # random held-out examples simulated, shared by all features
    n_features: int | None = None  # sample this many live features (fixed seed); None = all live ones given
    min_train_examples: int = 1  # a feature firing in fewer train examples counts as dead
    fire_frac: float = 0.1  # detection: a context fires when its peak exceeds this share of the train max
    explainer: TokenExplainerConfig = field(default_factory=TokenExplainerConfig)
    seed: int = 0
    n_boot: int = 1000  # bootstrap resamples for the CI of the mean score
    # held-out examples from activation bands, for the Anthropic-style score; None: not collected
    bands: BandConfig | None = field(default_factory=BandConfig)
    keep_heldout_acts: bool = False  # keep the scored units' activations on every held-out token (ScoreResult.heldout)

    def check(self) -> None:
        if self.example_len < 1 or min(self.n_top_train, self.n_top_heldout) < 1:
            raise InterpError("examples need at least one token and at least one top example per split.")
        if self.explainer.prior_count <= 0:
            raise InterpError(f"prior_count must be positive, not {self.explainer.prior_count}.")
        if not 0 <= self.fire_frac < 1:
            raise InterpError(f"fire_frac is a share of the train max in [0, 1), not {self.fire_frac}.")


class TokenExplainer:
    """The default explainer: tokens and bigrams with weights (analyses/scoring/explain.py)."""

    name = "tokens"

    def __init__(self, cfg: TokenExplainerConfig = TokenExplainerConfig(), tokenizer=None):
        self.cfg, self.decode = cfg, token_decoder(tokenizer)

    def explain(self, ex: FeatureExamples) -> Explanation:
        return explain_tokens(ex.tokens, ex.prev, ex.acts, ex.valid, self.cfg, self.decode)


class TokenSimulator:
    """The default simulator: reads a token explanation's terms (analyses/scoring/simulate.py)."""

    name = "tokens"

    def simulate(self, explanation: Explanation, ex: FeatureExamples) -> torch.Tensor:  # [n, L]
        return simulate_tokens(explanation, ex.tokens, ex.prev)


def make_scorers(explainer: str = "tokens", simulator: str = "tokens", llm=None, tokenizer=None,
                 cfg: ScoringConfig = ScoringConfig(), n_llm_examples: int = 10):
    """(explainer, simulator) by name, "tokens" or "llm"; `llm` from analyses.scoring.llm.make_llm.
    The token simulator reads only token explanations; the LLM simulator reads any explanation. The
    LLM simulator of a local model (hf) is the all-at-once one (analyses/scoring/llm_slots.py); that
    of an endpoint generates its answer (analyses/scoring/llm_explain.py)."""
    for role, name in (("explainer", explainer), ("simulator", simulator)):
        if name not in ("tokens", "llm"):
            raise InterpError(f"unknown {role} {name!r}; choose tokens or llm.")
        if name == "llm" and llm is None:
            raise InterpError(f"the llm {role} needs a language model; give --llm-backend and --llm-model.")
    if explainer == "llm" and simulator == "tokens":
        raise InterpError("the token simulator cannot read an LLM's sentence; use --simulator llm with --explainer llm.")
    ex = TokenExplainer(cfg.explainer, tokenizer) if explainer == "tokens" else LLMExplainer(llm, tokenizer, n_llm_examples)
    if simulator == "tokens":
        sim = TokenSimulator()
    elif hasattr(getattr(llm, "backend", llm), "slot_logits"):  # a local model: all at once, one forward per batch
        sim = SlotSimulator(llm, tokenizer)
    else:  # an endpoint: one generated answer per example
        sim = LLMSimulator(llm, tokenizer)
    return ex, sim


def score_feature(explanation: Explanation, simulator, held: FeatureExamples, train_max: float, fire_frac: float,
                  bands: FeatureExamples | None = None) -> dict:
    """Simulate one feature's held-out examples from its explanation and compare with the truth.
    Truth and simulation are compared as given: the sign rule (analyses/bases.py) makes both >= 0."""
    band_score = None
    if bands is not None and len(bands.tokens):
        bsim = simulator.simulate(explanation, bands)
        band_score = pearson(bsim[bands.valid], bands.acts[bands.valid])
    sim = simulator.simulate(explanation, held)  # [n, L]
    v = held.valid
    top = torch.arange(len(v)) < held.n_top
    r_all = pearson(sim[v], held.acts[v])
    r_top = pearson(sim[top][v[top]], held.acts[top][v[top]])
    r_rand = pearson(sim[~top][v[~top]], held.acts[~top][v[~top]])
    auroc, n_pos, n_neg = detection_auroc(sim, held.acts, v, fire_frac * train_max)
    return {"score": r_all if r_all is not None else 0.0, "defined": r_all is not None, "score_top": r_top,
            "score_random": r_rand, "detection_auroc": auroc, "n_heldout_top": held.n_top,
            "n_heldout_random": held.n_random, "n_heldout_tokens": int(v.sum()),
            "n_firing_contexts": n_pos, "n_silent_contexts": n_neg,
            "score_bands": band_score, "n_band_examples": 0 if bands is None else len(bands.tokens)}


def score_examples(train: SplitExamples, heldout: SplitExamples, cfg: ScoringConfig = ScoringConfig(),
                   explainer=None, simulator=None, progress: Callable[[int], None] | None = None,
                   bands: bool = True) -> tuple[list[FeatureScore], dict]:
    """Explain every feature of `train` and score it on `heldout` (same features, same order);
    without `bands`, the band examples are not simulated (no band score).
    Returns (scores, seconds spent explaining and simulating)."""
    explainer = explainer or TokenExplainer(cfg.explainer)
    simulator = simulator or TokenSimulator()
    if not torch.equal(train.features, heldout.features):
        raise InterpError("the train and held-out examples are of different features; collect both for the same ids.")
    out, t_explain, t_sim = [], 0.0, 0.0
    for j in range(len(train.features)):
        t0 = time.perf_counter()
        ex = train.feature(j)
        explanation = explainer.explain(ex)
        t1 = time.perf_counter()
        train_max = float(train.max[j])
        row = score_feature(explanation, simulator, heldout.feature(j), train_max, cfg.fire_frac,
                            heldout.band_examples(j) if bands else None)
        prompts = simulator.take_prompts() if hasattr(simulator, "take_prompts") else []
        t_explain, t_sim = t_explain + t1 - t0, t_sim + time.perf_counter() - t1
        out.append(FeatureScore(feature=ex.feature, explanation=explanation, train_firing_examples=int(train.count[j]), train_max=train_max,
                                n_train_top=ex.n_top, n_train_random=ex.n_random, simulation_prompts=prompts, **row))
        if progress:
            progress(1)
    return out, {"explain": round(t_explain, 3), "simulate_and_score": round(t_sim, 3)}


def summarize(scores: list[FeatureScore], cfg: ScoringConfig) -> dict:
    """Mean score with its bootstrap CI, and the same for detection, over the scored features."""
    vals = [s.score for s in scores]
    mean, lo, hi = bootstrap_ci(vals, cfg.n_boot, 0.05, cfg.seed)
    det = [s.detection_auroc for s in scores if s.detection_auroc is not None]
    dmean, dlo, dhi = bootstrap_ci(det, cfg.n_boot, 0.05, cfg.seed)
    return {"n_scored": len(scores), "mean_score": mean, "ci95": [lo, hi],
            "n_undefined_scored_0": sum(not s.defined for s in scores),
            "mean_detection_auroc": dmean, "detection_ci95": [dlo, dhi], "n_detection": len(det),
            "kinds": summarize_kinds(scores, cfg.n_boot, cfg.seed)}


def score_features(
    dictionary: Dictionary,
    train_batches: Iterable[tuple[torch.Tensor, dict[str, torch.Tensor]]],  # (tokens [w, ctx], {hook: acts [w, ctx, d]})
    heldout_batches: Iterable[tuple[torch.Tensor, dict[str, torch.Tensor]]],
    features: torch.Tensor | None = None,  # [F] ids to consider; None = every feature of the dictionary
    cfg: ScoringConfig = ScoringConfig(),
    tokenizer=None,  # only to write explanations readably (and for LLM prompts)
    explainer=None,  # default TokenExplainer(cfg.explainer, tokenizer)
    simulator=None,  # default TokenSimulator()
    device: torch.device | str | None = None,
    out: str | Path | None = None,  # if given, write explanations.json and scores.json there
) -> ScoreResult:
    """Explain on the train split, simulate on the held-out split, score; see the module doc."""
    result = score_many({dictionary.hook_name: (dictionary, features)}, train_batches, heldout_batches, cfg,
                        tokenizer, explainer, simulator, device)[dictionary.hook_name]
    if out is not None:
        result.save(out)
    return result


def score_many(
    dictionaries: dict[str, tuple[Dictionary, torch.Tensor | None]],  # name -> (dictionary, ids or None = all)
    train_batches: Iterable[tuple[torch.Tensor, dict[str, torch.Tensor]]],
    heldout_batches: Iterable[tuple[torch.Tensor, dict[str, torch.Tensor]]],
    cfg: ScoringConfig = ScoringConfig(),
    tokenizer=None,
    explainer=None,
    simulator=None,
    device: torch.device | str | None = None,
    out: str | Path | None = None,  # if given, each result is written to out/<name>/
    cross=None,  # (explainer, simulator, n): also score n of each dictionary's sampled units so (ScoreResult.cross)
) -> dict[str, ScoreResult]:
    """score_features for many dictionaries (every layer's neurons and SAE features) with ONE pass
    over each split: the batches must hold every dictionary's hook. Each dictionary samples its
    features with its own fixed seed (derived from cfg.seed and its name).

    The cross-check (`cross`): n of each dictionary's scored units, drawn with a seed fixed by cfg.seed
    and the name, are explained and simulated a second time by the other explainer and simulator
    (an LLM's), from the SAME train and held-out examples, so the two scores of a unit are paired.
    The band examples are not simulated there (no band score), to spare the LLM 30 examples a unit."""
    cfg.check()
    started = time.perf_counter()
    ids = {name: torch.arange(d.n_features) if f is None else torch.as_tensor(f, dtype=torch.int64)
           for name, (d, f) in dictionaries.items()}
    trains = collect_many({name: (d, ids[name]) for name, (d, _) in dictionaries.items()}, train_batches, "train",
                          cfg.example_len, cfg.n_top_train, cfg.n_random_train, cfg.seed, device)
    t_train = time.perf_counter() - started
    sampling, dead = {}, {}
    for name, train in trains.items():
        picks, sampling[name] = sample_live(train.count, cfg.n_features, derived_seed(cfg.seed, "features", name), cfg.min_train_examples)
        # named one by one only when the caller chose the features; a whole dictionary's are counted
        dead[name] = ids[name][train.count < cfg.min_train_examples].tolist() if dictionaries[name][1] is not None else []
        if len(picks) == 0:
            raise InterpError(f"none of the {len(ids[name])} features of {name} fires on the {train.n_tokens:,} train tokens; give more text or other features.")
        trains[name] = train.select(picks)
    t0 = time.perf_counter()
    bands = {name: (t.max, cfg.bands) for name, t in trains.items()} if cfg.bands is not None else None
    helds = collect_many({name: (dictionaries[name][0], t.features) for name, t in trains.items()}, heldout_batches, "heldout",
                         cfg.example_len, cfg.n_top_heldout, cfg.n_random_heldout, cfg.seed, device, bands,
                         cfg.keep_heldout_acts)
    t_held = time.perf_counter() - t0
    explainer = explainer or TokenExplainer(cfg.explainer, tokenizer)
    simulator = simulator or TokenSimulator()
    results = {}
    for name, (dictionary, _) in dictionaries.items():
        scores, seconds = score_examples(trains[name], helds[name], cfg, explainer, simulator)
        summary = {**sampling[name], **summarize(scores, cfg), "dead_policy": "excluded (never fires on the train split)"}
        meta = {"name": name, "hook_name": dictionary.hook_name, "model_name": dictionary.model_name, "kind": dictionary.kind,
                "explainer": explainer.name, "simulator": simulator.name, "config": asdict(cfg),
                "n_train_tokens": trains[name].n_tokens, "n_heldout_tokens": helds[name].n_tokens,
                "heldout_random_examples": helds[name].rand_sid.tolist(),
                "seconds": {"train_pass_all": round(t_train, 3), "heldout_pass_all": round(t_held, 3), **seconds}}
        results[name] = ScoreResult(scores, dead[name], summary, meta, helds[name] if cfg.keep_heldout_acts else None)
        if cross is not None:
            results[name].cross = cross_check(trains[name], helds[name], cfg, name, meta, *cross)
        if out is not None:
            results[name].save(Path(out) / name)
    for r in results.values():
        r.meta["seconds"]["total_all"] = round(time.perf_counter() - started, 3)
    return results


def cross_check(train: SplitExamples, held: SplitExamples, cfg: ScoringConfig, name: str, meta: dict,
                explainer, simulator, n: int) -> ScoreResult:
    """n of the scored units (all if fewer) explained and simulated by another explainer and simulator,
    on the same examples; see score_many."""
    pos, info = sample_live(torch.ones(len(train.features), dtype=torch.int64), n, derived_seed(cfg.seed, "cross-check", name))
    t0 = time.perf_counter()
    scores, seconds = score_examples(train.select(pos), held.select(pos), cfg, explainer, simulator, bands=False)
    summary = {"n_sampled": len(scores), "n_of": info["n_total"], **summarize(scores, cfg)}
    cmeta = {**{k: meta[k] for k in ("name", "hook_name", "model_name", "kind", "n_train_tokens", "n_heldout_tokens")},
             "explainer": explainer.name, "simulator": simulator.name, "bands": False,
             "seconds": {**seconds, "total": round(time.perf_counter() - t0, 3), "per_unit": round((time.perf_counter() - t0) / max(1, len(scores)), 3)}}
    return ScoreResult(scores, [], summary, cmeta)
